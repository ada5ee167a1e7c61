"""`riffd serve --audio`: the spectral audio voice beside the MIDI voice, driven over ZeroMQ,
on the dummy-driver JACK server (a real PortAudio output stream)."""
import math
import time

import pytest

from daemon.client import RiffdError
from daemon.midi_peer import MidiPeer
from daemon.process import DaemonProcess

ARGS = ["--midi-api", "jack", "--tempo", "240", "--log-level", "WARNING"]


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_audio_and_midi_voices_play_at_once(jack_server, tmp_path):
    log = tmp_path / "serve.log"
    with DaemonProcess(ARGS + ["--client-name", "riffd-aud", "--audio"], log_path=log) as daemon:
        with daemon.client(timeout_s=10) as c, MidiPeer("audio-test-peer") as peer:
            peer.connect("riffd-aud:out", None)
            audio = c.status()["audio"]
            assert audio["enabled"] is True, audio
            assert audio["sample_rate"] == 48000
            tone = [0.3 * math.sin(2 * math.pi * 440 * i / 16000) for i in range(8000)]
            seeded = c.request("audio_seed", samples=tone, sample_rate=16000)
            assert seeded["seed_seconds"] == pytest.approx(0.5, abs=0.01)
            c.request("audio_gain", db=-6)
            c.request("audio_start")
            c.start()                                                    # the MIDI voice too
            assert wait_until(lambda: c.request("audio_status")["seconds_played"] >= 2.0, 30), \
                log.read_text()
            assert peer.wait_for(lambda rs: any(r.message[0] & 0xF0 == 0x90 for r in rs), 10)
            status = c.request("audio_status")
            assert status["playing"] is True and status["underflows"] == 0
            assert status["gain"] == pytest.approx(10 ** (-6 / 20), rel=1e-3)
            assert status["real_time_factor"] > 1
            with pytest.raises(RiffdError) as err:
                c.request("audio_seed", path=str(tmp_path / "missing.wav"))
            assert err.value.code == "bad_args" and "missing.wav" in err.value.message
            c.request("audio_stop")
            assert c.request("audio_status")["playing"] is False
            c.stop()
    assert daemon.proc.returncode == 0, log.read_text()


def test_audio_commands_without_audio_say_how_to_turn_it_on(jack_server, tmp_path):
    with DaemonProcess(ARGS + ["--client-name", "riffd-noaud"],
                       log_path=tmp_path / "serve.log") as daemon:
        with daemon.client() as c:
            assert c.status()["audio"]["enabled"] is False
            with pytest.raises(RiffdError) as err:
                c.request("audio_start")
            assert err.value.code == "unavailable" and "--audio" in err.value.message
            assert c.ping()["pong"] is True
