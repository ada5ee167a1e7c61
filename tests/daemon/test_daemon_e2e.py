"""The daemon as a user meets it: a child process on a dummy-driver JACK server, a separate
JACK MIDI client on riffd:out / riffd:in, and real ZeroMQ sockets on loopback."""
import signal
import subprocess
import sys
import time

import pytest

from riffd.daemon.client import RiffdError
from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.process import DaemonProcess
from riffd.daemon.recording import pair_notes
from riffd.engine.melody_representation import Note
from tests.daemon.serve_helpers import FAST, note_ons, restoring_peer, serving, sounding, wait_quiet
from tests.waiting import ANSWER_WAIT_S


def hanging(peer) -> int:
    """Note-ons a listening client saw without their note-off (for a daemon that is gone)."""
    return pair_notes([(r.seconds, r.message) for r in peer.received()])[1]


def jack_ports():
    return subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split()


@pytest.fixture(scope="module")
def riffd(jack_server, tmp_path_factory):
    with serving(FAST, tmp_path_factory.mktemp("riffd") / "serve.log") as daemon:
        yield daemon


DEFAULTS = {"channel": 1, "velocity": 90, "temperature": 1.0, "top_k": 0, "top_p": 1.0,
            "length": 2, "rng_seed": -1}


@pytest.fixture
def peer(riffd):
    with restoring_peer(riffd, "riffd", DEFAULTS) as p:   # puts back whatever the test changed
        yield p


def test_ports_and_status(riffd):
    assert {"riffd:out", "riffd:in"} <= set(jack_ports())
    with riffd.client() as c:
        status = c.status()
    assert status["ports"] == {"api": "jack", "out": "riffd:out", "in": "riffd:in", "alive": True}
    assert status["device"] == "cpu" and status["model"]["family"] == "melody_lstm"
    assert status["tempo"] == 240 and status["playing"] is False
    assert {"notes_sent", "late_notes", "errors"} <= set(status["counters"])


def test_start_streams_notes_and_stop_leaves_nothing_hanging(riffd, peer):
    with riffd.client() as c:
        assert c.start()["playing"] is True
        assert peer.wait_for(lambda rs: sum(r.message[0] & 0xF0 == 0x90 for r in rs) >= 6, 10)
        assert c.status()["playing"] is True
        c.stop()
    wait_quiet(peer)
    assert sounding(riffd) == 0
    assert len(note_ons(peer.received())) >= 6


def test_a_played_phrase_gets_an_answer_in_its_key(riffd, peer):
    # E-flat major, played by a separate JACK client into riffd:in
    phrase = [(63, 0, .25), (67, .25, .25), (70, .5, .25), (68, .75, .25), (67, 1, .25),
              (65, 1.25, .25), (63, 1.5, .5)]
    messages = []
    for pitch, start, length in phrase:
        messages += [(start, [0x90, pitch, 90]), (start + length - 0.02, [0x80, pitch, 0])]
    with riffd.client() as c:
        phrases_before = c.status()["counters"]["phrases"]
        # a 2-bar answer can be 3 long notes: 4 bars, and draws that do not depend on luck
        c.set(length=4, rng_seed=5)
    peer.play(messages)
    assert peer.wait_for(lambda rs: sum(r.message[0] & 0xF0 == 0x90 for r in rs) >= 4,
                         ANSWER_WAIT_S)
    wait_quiet(peer, seconds=0.6)
    with riffd.client() as c:
        status = c.status()
    assert status["counters"]["phrases"] == phrases_before + 1
    assert status["key"] == "Eb major"
    answer = [Note(r.message[1], r.seconds, 0.25) for r in note_ons(peer.received())]
    assert len(answer) >= 4
    eb_major = {3, 5, 7, 8, 10, 0, 2}
    in_key = sum(n.pitch % 12 in eb_major for n in answer)
    assert in_key / len(answer) >= 0.7, [n.pitch for n in answer]
    assert sounding(riffd) == 0


def test_seed_over_zeromq_answers_and_panic_silences(riffd, peer):
    notes = [{"pitch": p, "start": i * 0.5, "duration": 0.5} for i, p in enumerate([62, 66, 69, 74])]
    with riffd.client() as c:
        reply = c.seed(notes)
        assert reply["key"] == "D major" and reply["notes"] == 4
        assert peer.wait_for(lambda rs: any(r.message[0] & 0xF0 == 0x90 for r in rs), 5)
        c.panic()
    wait_quiet(peer)
    assert sounding(riffd) == 0


def test_set_changes_what_is_played(riffd, peer):
    with riffd.client() as c:
        c.set(channel=5, velocity=33, temperature=0.7, top_k=5, top_p=0.9)
        c.start()
        assert peer.wait_for(lambda rs: len([r for r in rs if r.message[0] & 0xF0 == 0x90]) >= 3, 10)
        c.stop()
        settings = c.status()["settings"]
        c.set(**DEFAULTS)
    assert settings["channel"] == 5 and settings["top_k"] == 5 and settings["temperature"] == 0.7
    ons = note_ons(peer.received())
    assert all(r.message[0] == 0x94 and r.message[2] == 33 for r in ons)


@pytest.mark.parametrize("payload,code,words", [
    (b"not json", "not_json", "JSON"),
    (b"[1, 2]", "not_object", "object"),
    (b'{"v": 1, "cmd": "dance"}', "unknown_command", "dance"),
    (b'{"v": 1, "cmd": "set", "args": {"tempo": "fast"}}', "bad_args", "tempo"),
    (b'{"v": 1, "cmd": "set", "args": {"tempo": 900}}', "bad_args", "300"),
    (b'{"v": 1, "cmd": "set", "args": {"top_k": true}}', "bad_args", "top_k"),
    (b'{"v": 7, "cmd": "ping"}', "bad_version", "7"),
    (b'{"v": 1, "cmd": "seed", "args": {"notes": [{"pitch": 200, "start": 0, "duration": 1}]}}',
     "bad_args", "pitch"),
])
def test_bad_messages_get_an_error_and_the_daemon_keeps_playing(riffd, peer, payload, code, words):
    import json
    import zmq
    ctx = zmq.Context.instance()
    with riffd.client() as c:
        c.start()
        sock = ctx.socket(zmq.DEALER)
        sock.connect(riffd.control)
        try:
            sock.send(payload)
            assert sock.poll(3000)
            reply = json.loads(sock.recv())
        finally:
            sock.close(linger=0)
        assert reply["ok"] is False and reply["error"]["code"] == code
        assert words in reply["error"]["message"]
        peer.clear()
        assert peer.wait_for(lambda rs: any(r.message[0] & 0xF0 == 0x90 for r in rs), 5)
        assert c.status()["playing"] is True
        c.stop()


def test_oversized_and_multi_frame_messages_are_refused(riffd, peer):
    import json
    import zmq
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(riffd.control)
    try:
        sock.send(b'{"v": 1, "cmd": "ping", "pad": "' + b"x" * 300_000 + b'"}')
        assert sock.poll(3000)
        assert json.loads(sock.recv())["error"]["code"] == "too_large"
        sock.send_multipart([b'{"v": 1, "cmd": "ping"}', b"extra"])
        assert sock.poll(3000)
        assert json.loads(sock.recv())["error"]["code"] == "bad_frames"
    finally:
        sock.close(linger=0)
    with riffd.client() as c:
        assert c.ping()["pong"] is True
        with pytest.raises(RiffdError) as err:
            c.request("set")
        assert err.value.code == "bad_args"


def test_sigterm_ends_every_note_and_removes_the_ports(jack_server, tmp_path):
    # a second daemon beside the module's one, under its own client name
    daemon = DaemonProcess(FAST + ["--client-name", "riffd-term"],
                           log_path=tmp_path / "serve.log").start()
    try:
        with MidiPeer("sigterm-peer") as peer:
            peer.connect("riffd-term:out", None)
            with daemon.client() as c:
                c.start()
            assert peer.wait_for(lambda rs: sum(r.message[0] & 0xF0 == 0x90 for r in rs) >= 4, 10)
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(15) == 0, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
            assert hanging(peer) == 0
        assert "riffd-term:out" not in jack_ports() and "riffd-term:in" not in jack_ports()
    finally:
        daemon.kill()


def test_shutdown_command_exits_cleanly(jack_server, tmp_path):
    daemon = DaemonProcess(FAST + ["--client-name", "riffd-down"],
                           log_path=tmp_path / "serve.log").start()
    try:
        with daemon.client() as c:
            c.start()
            time.sleep(0.5)
            assert c.shutdown()["stopping"] is True
        assert daemon.wait(15) == 0
    finally:
        daemon.kill()


def test_a_pickle_given_as_model_is_refused_clearly(jack_server, tmp_path):
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(b"\x80\x04\x95junk")
    result = subprocess.run([sys.executable, "-m", "riffd.daemon", "serve", "--model", str(bad),
                             "--midi-api", "jack"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "pickled" in result.stderr and str(bad) in result.stderr


def test_no_midi_system_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    result = subprocess.run([sys.executable, "-m", "riffd.daemon", "serve"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "jack" in result.stderr.lower() and "tried" in result.stderr.lower()
