"""What a musician expects of ``seed`` and ``panic``, through the real ports of a running daemon.

- A seed to a continuous voice re-primes it and it plays on, past an answer's length, in the
  seed's key.
- ``panic`` silences every note now (note-offs, then CC 123 and CC 120 on all 16 channels)
  and stops every voice; ``start`` plays again.

Notes are counted against riffd's own record (its ``note_on`` events and status counters);
the separate JACK client checks what went out on the wire (the CCs and their order).
"""
from __future__ import annotations

import time

import pytest

from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.process import DaemonProcess
from tests.reliability.event_log import EventLog
from tests.waiting import wait_until

SCALE = {"C major": {0, 2, 4, 5, 7, 9, 11}, "F# major": {6, 8, 10, 11, 1, 3, 5}}
ARGS = ["--midi-api", "jack", "--client-name", "riffd-seed", "--tempo", "240", "--length", "1",
        "--mode", "continuous", "--temperature", "0.8", "--log-level", "WARNING"]


def phrase(tonic: int) -> list[dict]:
    """A major scale up and its arpeggio, on ``tonic`` (MIDI pitch), in beats."""
    steps = [0, 2, 4, 5, 7, 9, 11, 12, 7, 4, 0, 4, 7, 12, 7, 0]
    return [{"pitch": tonic + s, "start": i * 0.5, "duration": 0.5} for i, s in enumerate(steps)]


@pytest.fixture(scope="module")
def riffd(jack_server, tmp_path_factory):
    log = tmp_path_factory.mktemp("riffd-seed") / "serve.log"
    with DaemonProcess(ARGS, log_path=log) as daemon:
        daemon.log = log
        yield daemon
    assert daemon.proc.returncode == 0, log.read_text()


class NoteOns(EventLog):
    def between(self, start: float, end: float) -> list[dict]:
        """riffd's note_on events due in [start, end) (monotonic seconds)."""
        return self.where("note_on", start, end, key="at")


@pytest.fixture
def events(riffd):
    try:
        with NoteOns(riffd.control, riffd.events, ["note_on"]) as collected:
            yield collected
    finally:
        with riffd.client() as c:                # whatever happened, leave the daemon quiet
            c.stop()


def in_key(events: list[dict], key: str) -> float:
    return sum(e["pitch"] % 12 in SCALE[key] for e in events) / max(1, len(events))


def test_a_seed_to_a_continuous_voice_reprimes_it_and_it_plays_on_in_the_seeds_key(riffd,
                                                                                   events):
    """With ``scale=major`` and no fixed ``key`` the scale follows the seed's key: a voice that
    took the new seed plays only that key's notes, one that kept the old seed the old key's."""
    with riffd.client() as c:
        spb = 60.0 / c.status()["clock"]["tempo"]          # 0.25 s
        answer_s = 4 * spb                                 # --length 1: one bar, 1 s
        c.set(scale="major")
        try:
            c.start()
            reply = c.seed(phrase(60))                     # C major, while playing
            assert reply["key"] == "C major" and reply["playing"] is True
            seeded_c = time.monotonic()
            # the seed takes over from the next beat (+ the voice's look-ahead): skip 0.5 s
            assert wait_until(lambda: time.monotonic() > seeded_c + 3 * answer_s
                              and len(events.between(seeded_c + 0.5, 1e18)) >= 6, 20)
            assert c.status()["playing"] is True           # past an answer's length
            reply = c.seed(phrase(66), play=False)         # F# major: taken, and it plays on
            assert reply["key"] == "F# major" and reply["playing"] is True
            seeded_fs = time.monotonic()
            assert wait_until(lambda: len(events.between(seeded_fs + 0.5, 1e18)) >= 6
                              and events.between(seeded_fs + 3 * answer_s, 1e18), 20)
            status = c.status()
            assert status["playing"] is True and status["key"] == "F# major", status["voices"]
            c.stop()
        finally:
            c.set(scale="")
    in_c = events.between(seeded_c + 0.5, seeded_fs)
    in_fs = events.between(seeded_fs + 0.5, seeded_fs + 3 * answer_s + 1.0)
    assert in_key(in_c, "C major") >= 0.9, [e["pitch"] for e in in_c]
    assert in_key(in_fs, "F# major") >= 0.9, [e["pitch"] for e in in_fs]
    # the two keys share only B and F: the notes moved with the seed
    assert in_key(in_fs, "C major") < 0.6, [e["pitch"] for e in in_fs]


def test_a_seed_to_an_idle_continuous_voice_starts_it(riffd, events):
    with riffd.client() as c:
        assert wait_until(lambda: not c.status()["playing"], 5)
        c.seed(phrase(62))                                 # D major
        seeded = time.monotonic()
        # still playing after 2 bars (an answer would have ended after 1)
        assert wait_until(lambda: events.between(seeded + 2.0, 1e18), 10)
        assert c.status()["playing"] is True
        c.stop()


def test_panic_ends_every_note_sends_cc_123_and_120_and_stops_the_voices(riffd, events):
    with MidiPeer("panic-peer") as peer:
        peer.connect("riffd-seed:out", None)
        with riffd.client() as c:
            c.request("add_voice", name="bass", channel=3, mode="continuous", low=36, high=55)
            try:
                c.start()
                assert wait_until(lambda: len(events.items) >= 8, 10)
                reply = c.panic()
                panicked = time.monotonic()
                assert reply["sounding"] == 0 and sorted(reply["stopped"]) == ["bass", "main"]
                status = c.status()
                assert status["playing"] is False
                assert [v["state"] for v in status["voices"]] == ["idle", "idle"]
                assert status["counters"]["sounding"] == 0
                time.sleep(0.5)                            # nothing plays on by itself
                assert not events.between(panicked + 0.1, panicked + 10)
                assert c.status()["counters"]["sounding"] == 0
                assert peer.wait_for(lambda rs: sum(r.message[:2] == [0xB0 | ch, cc]
                                                    for r in rs for ch in range(16)
                                                    for cc in (120, 123)) >= 32, 5)
                c.start()                                  # a musician plays on after a panic
                assert wait_until(lambda: len(events.between(panicked + 0.1, 1e12)) >= 4, 10)
                c.stop()
            finally:
                c.request("remove_voice", name="bass")
    rs = [r.message for r in peer.received()]
    first_cc = next(i for i, m in enumerate(rs) if m[0] & 0xF0 == 0xB0)
    ccs = {(m[0] & 0x0F, m[1]) for m in rs if m[0] & 0xF0 == 0xB0}
    assert ccs >= {(ch, cc) for ch in range(16) for cc in (120, 123)}
    # on the wire: every note that sounded before the CCs ended before them
    before = [m for m in rs[:first_cc] if len(m) == 3]
    on = {}
    for m in before:
        k = (m[0] & 0x0F, m[1])
        on[k] = on.get(k, 0) + (1 if m[0] & 0xF0 == 0x90 and m[2] else -1)
    assert all(v <= 0 for v in on.values()), on


def test_panic_of_one_voice_ends_its_notes_and_leaves_the_other_playing(riffd, events):
    with MidiPeer("panic-one-peer") as peer:
        peer.connect("riffd-seed:out", None)
        with riffd.client() as c:
            c.request("add_voice", name="bass", channel=3, mode="continuous", low=36, high=55)
            try:
                c.start()
                assert wait_until(lambda: len([e for e in events.items
                                               if e["voice"] == "bass"]) >= 4, 10)
                reply = c.request("panic", voice="bass")
                panicked = time.monotonic()
                assert reply["stopped"] == ["bass"]
                states = {v["name"]: v["state"] for v in c.status()["voices"]}
                assert states["bass"] == "idle" and states["main"] != "idle"
                # main plays on, bass is silent
                assert wait_until(lambda: len([e for e in events.between(panicked + 0.1, 1e12)
                                               if e["voice"] == "main"]) >= 4, 10)
                assert not [e for e in events.between(panicked + 0.1, 1e12)
                            if e["voice"] == "bass"]
                # CC 123 and 120 on the bass channel (3 → status nibble 2) only
                assert peer.wait_for(lambda rs: sum(r.message[:2] == [0xB2, cc]
                                                    for r in rs for cc in (120, 123)) >= 2, 5)
                c.stop()
            finally:
                c.request("remove_voice", name="bass")
    assert wait_until(lambda: not peer_sounding(peer.received(), channel=2), 1)
    played = [r.message for r in peer.received()]
    first_note = next(i for i, m in enumerate(played) if m[0] & 0xF0 == 0x90)
    # (a receiver that connects before riffd's first note gets CC 123/120 on every channel)
    ccs = {(m[0] & 0x0F, m[1]) for m in played[first_note:]
           if m[0] & 0xF0 == 0xB0 and m[1] in (120, 123)}
    assert ccs == {(2, 120), (2, 123)}


def peer_sounding(received, channel: int) -> dict:
    """Notes still on at the receiver on ``channel`` (0-based), counting CC 123 as all off."""
    on = {}
    for r in received:
        m = r.message
        if len(m) != 3 or m[0] & 0x0F != channel:
            continue
        if m[0] & 0xF0 == 0xB0 and m[1] == 123:
            on.clear()
        elif m[0] & 0xF0 in (0x80, 0x90):
            on[m[1]] = on.get(m[1], 0) + (1 if m[0] & 0xF0 == 0x90 and m[2] else -1)
    return {p: n for p, n in on.items() if n > 0}
