"""A riffd that is SIGKILLed leaves its receiver holding a note; the next riffd ends it.

riffd plays to a separate JACK client (``riffd.daemon.midi_peer`` in its own process, which keeps
itself connected to ``riffd-crash:out``). riffd is SIGKILLed while a note sounds: no note-off
can go out, and the client holds the note. riffd is started again under the same client name:
it sends All Notes Off (CC 123) and All Sound Off (CC 120) on every channel when its ports
open and when a receiver connects while nothing sounds, so the hanging note ends.
"""
from __future__ import annotations

import collections
import time

from riffd.daemon.midi_peer import PeerProcess
from riffd.daemon.process import DaemonProcess

ARGS = ["--midi-api", "jack", "--client-name", "riffd-crash", "--tempo", "40",
        "--mode", "continuous", "--no-clock-out", "--log-level", "WARNING"]


def open_notes(received) -> collections.Counter:
    """{(channel 1..16, pitch): count} of note-ons not yet switched off (CCs ignored)."""
    sounding = collections.Counter()
    for m in received:
        status, kind = m.message[0], m.message[0] & 0xF0
        key = ((status & 0x0F) + 1, m.message[1]) if kind in (0x80, 0x90) else None
        if kind == 0x90 and m.message[2] > 0:
            sounding[key] += 1
        elif key is not None and sounding[key] > 0:
            sounding[key] -= 1
    return +sounding


def resets(received, channel: int) -> set[int]:
    """The channel-mode CCs (123, 120) that arrived on ``channel`` (1..16)."""
    return {m.message[1] for m in received if m.message[0] == 0xB0 | (channel - 1)
            and m.message[1] in (120, 123) and m.message[2] == 0}


def test_restarted_riffd_ends_the_notes_a_killed_one_left(jack_server, tmp_path):
    with PeerProcess("crash-peer", "riffd-crash:out") as peer:
        hanging = collections.Counter()
        for attempt in range(3):    # the kill can, rarely, fall just after a note-off
            first = DaemonProcess(ARGS, log_path=tmp_path / f"first-{attempt}.log").start()
            try:
                assert peer.wait_for(lambda r: peer.connections > attempt, timeout=10)
                with first.client() as c:
                    c.start()
                assert peer.wait_for(lambda r: open_notes(r), timeout=30), "riffd played nothing"
            finally:
                first.kill()                                  # SIGKILL: no clean-up at all
            time.sleep(0.5)
            hanging = open_notes(peer.received())
            if hanging:
                break
        assert hanging, "no note was sounding when riffd was killed, three times"
        killed_at = len(peer.received())
        time.sleep(0.5)
        assert open_notes(peer.received()) == hanging         # the client holds the note

        channels = {channel for channel, _pitch in hanging}
        with DaemonProcess(ARGS, log_path=tmp_path / "second.log") as second:
            ended = peer.wait_for(lambda r: all(resets(r[killed_at:], ch) == {120, 123}
                                                for ch in channels), timeout=10)
            with second.client() as c:
                status = c.status()
        after = peer.received()[killed_at:]
        assert ended, (peer.connections, [m.message for m in after])
        resolved = sum(n for (channel, _pitch), n in hanging.items()
                       if 123 in resets(after, channel))
        assert resolved == sum(hanging.values()) >= 1
        # the restarted riffd was never started: it sent no note, so nothing hangs from it
        assert not [m for m in after if m.message[0] & 0xF0 == 0x90]
        assert status["ports"]["alive"] and status["counters"]["notes_sent"] == 0
    assert second.proc.returncode == 0
