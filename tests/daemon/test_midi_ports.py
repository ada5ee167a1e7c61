"""MIDI ports on a real JACK server: names, sending, receiving, errors, backend choice."""

import os
import subprocess
import time

import pytest

from riffd.daemon.jack_server import JackServer
from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.midi_ports import JackMidiPorts, MidiPortError, RtMidiPorts, open_midi_ports
from tests.daemon.jack_midi_fixtures import peer, ports  # noqa: F401 (fixtures)

FRAME_TOLERANCE_S = 0.001  # frame-accurate placement: far below one period (5.3 ms)


def jack_ports(env=None):
    full = dict(os.environ, **(env or {}))
    out = subprocess.run(["jack_lsp"], env=full, capture_output=True, text=True, timeout=5)
    return out.stdout.split()


def test_ports_appear_and_disappear(jack_server):
    p = JackMidiPorts().open("riffd")
    assert (p.out_port_name, p.in_port_name) == ("riffd:out", "riffd:in")
    assert {"riffd:out", "riffd:in"} <= set(jack_ports())
    assert p.alive and p.latency_s == pytest.approx(jack_server.period_s)
    p.close()
    p.close()
    assert not {"riffd:out", "riffd:in"} & set(jack_ports())
    assert not p.alive
    with pytest.raises(MidiPortError, match="not open"):
        p.send([0x90, 60, 100])


def test_one_client_only(jack_server, ports):
    with pytest.raises(MidiPortError, match="already called 'riffd'"):
        JackMidiPorts().open("riffd")
    clients = {name.split(":")[0] for name in jack_ports()}
    assert "riffd-01" not in clients


def test_send_validates(ports):
    for bad in ([], [60, 100], [0x90, 200, 1], "x", [300]):
        with pytest.raises(ValueError):
            ports.send(bad)


def _frame_accuracy_run(ports, peer):
    """Send 8 timed notes and one immediate CC; return (t0, what the peer got, xruns meanwhile)."""
    peer.clear()
    xruns = ports.xruns + peer._ports.xruns
    step = 0.0371  # deliberately not a multiple of the period
    t0 = time.monotonic() + ports.latency_s + 0.01
    for i in range(8):
        ports.send(bytes([0x90, 60 + i, 100]), at=t0 + i * step)
    ports.send([0xB0, 7, 99])  # at=None: as soon as possible
    assert peer.wait_for(lambda r: len(r) >= 9, timeout=2.0)
    return t0, step, peer.received(), ports.xruns + peer._ports.xruns - xruns


def test_peer_receives_frame_accurately(ports, peer):
    t0, step, got, xruns = _frame_accuracy_run(ports, peer)
    if xruns:   # an xrun moves JACK's frame clock against the monotonic clock: measure again
        t0, step, got, xruns = _frame_accuracy_run(ports, peer)
    assert got[0].message == [0xB0, 7, 99]
    notes = got[1:]
    assert [m.message for m in notes] == [[0x90, 60 + i, 100] for i in range(8)]
    rate = peer.samplerate
    for i, m in enumerate(notes):
        assert m.seconds == m.frame / rate
        spacing = (m.frame - notes[0].frame) / rate
        assert spacing == pytest.approx(i * step, abs=FRAME_TOLERANCE_S), f"{xruns} xruns"
    # Monotonic stamps: the intended time, or one period later if JACK delayed it a cycle.
    offset = notes[0].monotonic - t0
    assert -0.002 < offset < ports.latency_s + 0.002


def _input_run(ports, peer):
    """The peer plays 5 notes 20 ms apart into riffd:in; return (t0, (message, time) list,
    xruns and skipped cycles meanwhile)."""
    missed = ports.xruns + ports.missed_cycles + peer._ports.xruns + peer._ports.missed_cycles
    got = []
    ports.set_input_callback(lambda message, time_s: got.append((message, time_s)))
    t0 = peer.play([(i * 0.02, [0x90, 48 + i, 64]) for i in range(5)])
    deadline = time.monotonic() + 2.0
    while len(got) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    ports.set_input_callback(None)
    return t0, got, (ports.xruns + ports.missed_cycles + peer._ports.xruns
                     + peer._ports.missed_cycles - missed)


def test_input_callback_gets_peer_messages_with_times(ports, peer):
    t0, got, missed = _input_run(ports, peer)
    if missed:  # a cycle JACK skipped delays (or drops) what was written in it: measure again
        t0, got, missed = _input_run(ports, peer)
    assert [m for m, _ in got] == [[0x90, 48 + i, 64] for i in range(5)], f"{missed} missed"
    offsets = [t - (t0 + i * 0.02) for i, (_, t) in enumerate(got)]
    assert max(offsets) - min(offsets) < FRAME_TOLERANCE_S, f"{missed} missed"
    assert -0.002 < offsets[0] < ports.latency_s + 0.002


def test_bad_input_callback_does_not_stop_input(ports, peer):
    calls = []

    def flaky(message, time_s):
        calls.append(message)
        if len(calls) == 1:
            raise RuntimeError("boom")

    ports.set_input_callback(flaky)
    peer.play([(0.0, [0x90, 1, 1]), (0.01, [0x90, 2, 2])])
    deadline = time.monotonic() + 2.0
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert calls == [[0x90, 1, 1], [0x90, 2, 2]]


def test_server_death_makes_send_fail_clearly(monkeypatch):
    server = JackServer(f"riffd-doomed-{os.getpid()}")
    with server:
        monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
        p = JackMidiPorts().open("riffd")
        p.send([0x90, 60, 100])
        server.stop()
        deadline = time.monotonic() + 3.0
        while p.alive and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not p.alive
        with pytest.raises(MidiPortError, match="JACK server went away.*restart jackd"):
            p.send([0x80, 60, 0])
        started = time.monotonic()
        p.close()
        assert time.monotonic() - started < 2.0


def test_auto_falls_back_to_jack(jack_server):
    with open_midi_ports("auto") as p:
        assert p.api == "jack"
        assert p.out_port_name == "riffd:out"


def test_auto_without_server_lists_what_it_tried(monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"riffd-bogus-{os.getpid()}")
    started = time.monotonic()
    with pytest.raises(MidiPortError) as info:
        open_midi_ports("auto")
    text = str(info.value)
    assert "tried" in text and "jack:" in text and "jackd -d dummy" in text
    if not os.path.exists("/dev/snd/seq"):  # this machine: no ALSA sequencer
        assert "alsa:" in text and "snd-seq" in text
    assert time.monotonic() - started < 5.0


def test_unknown_api_is_rejected():
    with pytest.raises(ValueError, match="auto"):
        open_midi_ports("oss")


def test_windows_points_to_loopmidi():
    with pytest.raises(MidiPortError, match="loopMIDI"):
        RtMidiPorts("windows").open()


def test_rtmidi_backend_sends_future_messages_on_time(jack_server):
    # rtmidi through its JACK API: the same code path as ALSA/CoreMIDI on a desktop.
    with RtMidiPorts("jack").open("riffd-rt") as rt, MidiPeer() as peer:
        peer.connect("riffd-rt:out", None)
        for attempt in (1, 2):      # an xrun (a loaded machine) spoils a run: measure again
            peer.clear()
            xruns = peer._ports.xruns
            t0 = time.monotonic() + 0.03
            for i in range(4):
                rt.send([0x90, 70 + i, 90], at=t0 + i * 0.03)
            arrived = peer.wait_for(lambda r: len(r) >= 4, timeout=2.0)
            if peer._ports.xruns == xruns or attempt == 2:
                break
        assert arrived, f"{peer._ports.xruns - xruns} xruns"
        got = peer.received()
        assert [m.message[1] for m in got] == [70, 71, 72, 73]
        # No frame accuracy here: rtmidi sends immediately when riffd's (non-realtime) timer
        # thread wakes, so one period of jitter plus the wake-up delay of a loaded machine.
        # Sent all at once, the gaps would be 0.
        gaps = [(b.frame - a.frame) / peer.samplerate for a, b in zip(got, got[1:])]
        assert all(abs(g - 0.03) < 0.02 for g in gaps), gaps


def test_events_whose_cycle_passed_go_out_late_never_lost(ports, peer):
    """Events handed over after their cycle ran (what a missed cycle leaves behind) go out at
    the start of the next cycle, in order, each once, counted late; none is dropped."""
    late_before = ports.late_events
    past = time.monotonic() - 0.05
    expected = []
    for i in range(12):
        for message in ([0x90, 40 + i, 80], [0x80, 40 + i, 0]):
            expected.append(message)
            ports.send(message, at=past + i * 0.001)
    assert peer.wait_for(lambda r: len(r) >= len(expected), timeout=3.0)
    time.sleep(0.05)
    got = peer.received()
    assert [m.message for m in got] == expected
    assert ports.late_events - late_before == len(expected)
    assert ports.dropped == 0 and ports.write_failures == 0


def test_a_full_buffer_defers_events_to_the_next_cycle(ports, peer):
    """More due events than one cycle's port buffer holds: the rest wait for the next cycles
    (write failures counted), none is dropped."""
    sysex = [0xF0] + [0x11] * 1000 + [0xF7]          # 1002 bytes each
    count = 60                                        # ~60 kB: more than a 256-frame buffer
    for _ in range(count):
        ports.send(sysex)
    assert peer.wait_for(lambda r: len(r) >= count, timeout=3.0)
    assert all(m.message == sysex for m in peer.received())
    assert ports.write_failures > 0 and ports.dropped == 0


def test_reset_sends_notes_off_and_sound_off_on_every_channel(ports, peer):
    ports.send_reset()
    assert peer.wait_for(lambda r: len(r) >= 32, timeout=2.0)
    got = [m.message for m in peer.received()]
    assert got == [[0xB0 | c, cc, 0] for c in range(16) for cc in (123, 120)]


def test_reopen_after_the_server_comes_back(monkeypatch):
    server = JackServer(f"riffd-reopen-{os.getpid()}")
    server.start()
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    p = JackMidiPorts().open("riffd")
    try:
        server.kill()
        deadline = time.monotonic() + 3.0
        while p.alive and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not p.alive and "went away" in p.reason
        with pytest.raises(MidiPortError, match="is a JACK server running"):
            p.reopen()
        assert not p.alive
        server.start()
        p.reopen()
        assert p.alive and p.opened == 2 and p.reason == ""
        assert {"riffd:out", "riffd:in"} <= set(jack_ports())
        with MidiPeer() as peer:
            peer.connect("riffd:out", "riffd:in")
            p.send([0x90, 60, 100])
            assert peer.wait_for(lambda r: len(r) >= 1, timeout=2.0)
            assert peer.received()[0].message == [0x90, 60, 100]
    finally:
        p.close()
        server.stop()
