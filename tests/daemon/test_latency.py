"""Latency compensation pieces: the bounds, the protocol's checks, and the scheduler sending
notes early (or late) on real JACK ports, measured in frames at a peer."""

import time

import pytest

from riffd.daemon.latency import MAX_OUTPUT_LATENCY_MS, check_output_latency_ms, early_s, lead_s
from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.midi_ports import JackMidiPorts
from riffd.daemon.protocol import ProtocolError, decode_request, encode_request
from riffd.daemon.scheduler import Scheduler
from riffd.daemon.serve_config import ServeConfig, load_serve_config
from riffd.daemon.voice import VoiceSettings, check_settings

TOLERANCE_S = 0.002     # frame-accurate output: what the offsets may miss by, seconds


def test_bounds_and_message():
    assert check_output_latency_ms(20) == 20.0 and check_output_latency_ms(-500) == -500.0
    assert early_s(20) == pytest.approx(0.02) and early_s(-20) == pytest.approx(-0.02)
    assert lead_s(-20) == 0.0 and lead_s(35) == pytest.approx(0.035)
    with pytest.raises(ValueError, match=r"between -500 and 500 ms.*not 501.*riffd calibrate"):
        check_output_latency_ms(MAX_OUTPUT_LATENCY_MS + 1)
    with pytest.raises(ValueError, match="--output-latency-ms must be a number"):
        check_output_latency_ms(float("nan"), "--output-latency-ms")
    with pytest.raises(ValueError, match="output_latency_ms"):
        check_settings(VoiceSettings(output_latency_ms=-600))


def test_protocol_checks_the_control():
    ok = decode_request(encode_request("set", {"output_latency_ms": -12.5, "voice": "bass"}))
    assert ok.args == {"output_latency_ms": -12.5, "voice": "bass"}
    for bad in (600, "20", True):
        with pytest.raises(ProtocolError) as err:
            decode_request(encode_request("set", {"output_latency_ms": bad}))
        assert err.value.code == "bad_args"
        assert "output_latency_ms" in err.value.message and "-500 and 500 ms" in err.value.message
    added = decode_request(encode_request("add_voice", {"name": "b", "output_latency_ms": 30}))
    assert added.args["output_latency_ms"] == 30.0


def test_serve_config_and_daemon_refuse_out_of_range(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text("[serve]\noutput_latency_ms = 25\n")
    assert load_serve_config(path).output_latency_ms == 25.0
    from riffd.daemon.service import Riffd
    with pytest.raises(ValueError, match="--output-latency-ms must be between -500 and 500"):
        Riffd(ServeConfig(output_latency_ms=750.0))


@pytest.fixture
def ports(jack_server):
    with JackMidiPorts().open("riffd-lat") as p:
        yield p


@pytest.fixture
def peer(ports):
    with MidiPeer("riffd-lat-peer") as p:
        p.connect(ports.out_port_name, None)
        yield p


OFFSETS_MS = (0.0, 20.0, -20.0)      # per note, in turn
STEP_S = 0.05                        # grid spacing: wider than the offsets' spread, seconds


def _run(ports, peer):
    """12 notes on a grid, each sent with the next offset of OFFSETS_MS; returns (notes as
    (at, early), the scheduler's events, the peer's note-ons, xruns + skipped cycles)."""
    peer.clear()
    missed = ports.xruns + ports.missed_cycles + peer._ports.xruns + peer._ports.missed_cycles
    events = []
    notes = []
    sched = Scheduler(ports, on_event=events.append).start()
    try:
        t0 = time.monotonic() + 0.1          # later than the earliest offset needs
        for i in range(12):
            at, early = t0 + i * STEP_S, early_s(OFFSETS_MS[i % 3])
            notes.append((at, early))
            sched.schedule_on(at, 1, 60 + i, 90, early_s=early)
            sched.schedule_off(at + 0.03, 1, 60 + i, early_s=early)
        assert peer.wait_for(lambda r: len(r) >= 24, timeout=3.0)
    finally:
        sched.stop()
    ons = [m for m in peer.received() if m.message[0] == 0x90]
    missed = (ports.xruns + ports.missed_cycles + peer._ports.xruns
              + peer._ports.missed_cycles - missed)
    return notes, events, ons, missed


def test_scheduler_sends_each_note_its_offset_early(ports, peer):
    notes, events, ons, missed = _run(ports, peer)
    if missed:      # a skipped cycle shifts JACK's frame clock against the monotonic one
        notes, events, ons, missed = _run(ports, peer)
    assert [m.message[1] for m in ons] == [60 + i for i in range(12)]
    rate = peer.samplerate
    # in frames, relative to the first note (offset 0): note i arrives at its grid time less
    # its offset
    errors = [(m.frame - ons[0].frame) / rate - ((at - early) - notes[0][0])
              for m, (at, early) in zip(ons, notes)]
    assert max(abs(e) for e in errors) < TOLERANCE_S, (errors, f"{missed} missed cycles")
    # the record keeps the grid time (at) and says when each message left (send_at)
    on_events = [e for e in events if e["type"] == "note_on"]
    assert [e["at"] for e in on_events] == pytest.approx([at for at, _ in notes])
    assert [e["send_at"] for e in on_events] == pytest.approx([at - e for at, e in notes])
    offs = [m for m in peer.received() if m.message[0] == 0x80]
    assert len(offs) == 12
    for on, off in zip(ons, offs):           # each off 30 ms after its own on
        assert on.message[1] == off.message[1]
        assert (off.frame - on.frame) / rate == pytest.approx(0.03, abs=TOLERANCE_S)
