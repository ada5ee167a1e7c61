"""`riffd serve --audio`: the spectral audio voice beside the MIDI voice, driven over ZeroMQ,
on the dummy-driver JACK server (riffd's own JACK client ``<client-name>-audio``)."""
import math
import os
import subprocess
import threading
import time

import pytest

from riffd.daemon.client import RiffdClient, RiffdError
from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.process import DaemonProcess
from tests.waiting import wait_until

ARGS = ["--midi-api", "jack", "--tempo", "240", "--log-level", "WARNING"]


def test_audio_and_midi_voices_play_at_once(jack_server, tmp_path):
    log = tmp_path / "serve.log"
    with DaemonProcess(ARGS + ["--client-name", "riffd-aud", "--audio"], log_path=log) as daemon:
        with daemon.client(timeout_s=10) as c, MidiPeer("audio-test-peer") as peer:
            peer.connect("riffd-aud:out", None)
            audio = c.status()["audio"]
            assert audio["enabled"] is True, audio
            assert audio["sample_rate"] == 48000
            assert audio["backend"] == "jack"            # follows --client-name
            assert audio["ports"] == ["riffd-aud-audio:out_0", "riffd-aud-audio:out_1"]
            # seen from another JACK client: the ports are there under that name, none under
            # the default name
            import jack
            probe = jack.Client("audio-name-probe", no_start_server=True)
            try:
                assert [p.name for p in probe.get_ports("riffd-aud-audio:")] == audio["ports"]
                assert probe.get_ports("riffd-audio:") == []
            finally:
                probe.close()
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
            fifo = tmp_path / "seed.wav"
            os.mkfifo(fifo)
            answers = {}

            def seed_from_fifo():
                with RiffdClient(daemon.control, timeout_s=10) as other:
                    asked = time.monotonic()
                    try:
                        other.request("audio_seed", path=str(fifo))
                        answers["seed"] = "accepted"
                    except RiffdError as exc:
                        answers["seed"] = exc
                    answers["seed_s"] = time.monotonic() - asked
            seeder = threading.Thread(target=seed_from_fifo, daemon=True)
            seeder.start()
            pings = 0
            while seeder.is_alive() and pings < 50:  # the control thread answers meanwhile
                assert c.ping()["pong"] is True
                pings += 1
            seeder.join(15)
            assert isinstance(answers.get("seed"), RiffdError), answers
            assert answers["seed"].code == "bad_args" and "FIFO" in answers["seed"].message
            assert answers["seed_s"] < 2.0, answers
            assert c.ping()["pong"] is True
            assert c.request("audio_status")["playing"] is True      # still playing
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


@pytest.mark.parametrize("options, words", [
    (["--max-model-params", "1000000"], "--max-model-params"),  # melody 0.34 M, spectral 1.8 M
    (["--max-model-mb", "4"], "--max-model-mb"),                # melody 1.3 MB, spectral 7.1 MB
])
def test_audio_models_over_the_serve_limits_are_refused(jack_server, tmp_path, options, words):
    """--audio-model (here the bundled one) is held to --max-model-mb / --max-model-params
    like a MIDI voice's model: riffd prints one line naming the limit and exits 1 (the limits
    let the bundled MIDI model through: the audio model is the one refused)."""
    from riffd.daemon.audio_control import BUNDLED_SPECTRAL_MODEL
    log = tmp_path / "serve.log"
    daemon = DaemonProcess(ARGS + ["--client-name", "riffd-audlim", "--audio-model",
                                   str(BUNDLED_SPECTRAL_MODEL), "--max-model-params",
                                   "100000000", *options], log_path=log)
    try:
        with pytest.raises(RuntimeError, match="exited with status 1 before it was ready"):
            daemon.start(timeout_s=60)
    finally:
        daemon.kill()
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("riffd serve: ")]
    assert len(lines) == 1 and words in lines[0], log.read_text()
    assert "spectral_default.safetensors" in lines[0], lines
    assert "Traceback" not in log.read_text()
    listed = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=5).stdout
    assert "riffd-audlim" not in listed
