"""The audio voice streams the bundled spectral model to the JACK audio device (dummy driver,
48 kHz, 256-frame periods) through sounddevice; a separate JACK client records it."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from daemon.audio_control import BUNDLED_SPECTRAL_MODEL, AudioCommandError, AudioController
from daemon.audio_ring import AudioRing

pytestmark = pytest.mark.jack


@pytest.fixture(scope="module")
def controller(jack_server):
    with AudioController(None, None, 256, "low", "cpu") as ctl:
        yield ctl


def _ports(env: dict) -> list[str]:
    done = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=5)
    return done.stdout.split()


def test_streams_5_seconds_without_underflow_and_jack_rec_hears_it(controller, tmp_path):
    env = dict(os.environ)
    assert "riffd-audio:out_0" in _ports(env), _ports(env)
    status = controller.status()
    assert status["sample_rate"] == 48000 and status["model_sample_rate"] == 16000
    wav = tmp_path / "rec.wav"
    recorder = subprocess.Popen(["jack_rec", "-f", str(wav), "-d", "4", "riffd-audio:out_0"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)                               # the recorder joins the graph
        before = controller.status()
        controller.handle("audio_start", {})
        deadline = time.monotonic() + 2
        while not controller.status()["playing"] and time.monotonic() < deadline:
            time.sleep(0.01)
        started = controller.status()
        assert started["playing"], started
        deadline = time.monotonic() + 20          # 5 s of JACK time; a loaded machine is slower
        while (controller.status()["seconds_played"] - started["seconds_played"] < 5.0
               and time.monotonic() < deadline):
            time.sleep(0.1)
        after = controller.status()
        assert recorder.wait(timeout=10) == 0, recorder.stderr.read()
    finally:
        if recorder.poll() is None:
            recorder.kill()
        controller.handle("audio_stop", {})
    assert after["error"] is None
    # the ring never ran dry. (PortAudio's own underflow flags are JACK xruns: with the
    # dummy driver and no real-time scheduling they follow the machine's load, and a silent
    # stream gets them too; benchmarks/spectral_rtf.py measures both.)
    assert after["underflows"] == 0, (before, after)
    assert after["seconds_played"] - started["seconds_played"] >= 5.0
    assert after["seconds_generated"] >= after["seconds_played"]
    # the generator writes whole chunks while the ring holds less than the high-water mark,
    # so the ring never holds more than that mark plus one chunk; how low it is at a given
    # moment depends on the machine's load (the underflow count above says it never ran dry)
    voice = controller.voice
    chunk = int(np.ceil(voice.generator.hop * voice.rate / voice.generator.sample_rate)) + 1
    assert 0.0 <= after["buffer_seconds"] <= (voice.high + chunk) / voice.rate + 1e-4, (
        after, voice.high, chunk)
    assert after["real_time_factor"] > 1
    audio, rate = sf.read(wav)
    assert rate == 48000 and len(audio) >= 3 * 48000
    assert np.sqrt(np.mean(audio ** 2)) > 1e-4                # not silence
    assert np.max(np.abs(audio)) <= 1.0


def test_stop_fades_out_and_gain_seed_commands(controller, tmp_path):
    controller.handle("audio_start", {})
    time.sleep(0.3)
    stopped = controller.handle("audio_stop", {})
    assert stopped["running"] is False and stopped["playing"] is False
    assert stopped["buffer_seconds"] == 0.0                 # the fade dropped the rest
    assert controller.handle("audio_gain", {"db": -6.0})["gain"] == pytest.approx(0.501, abs=1e-3)
    assert controller.handle("audio_gain", {"gain": 1.0})["gain"] == 1.0
    rate = 22050
    t = np.arange(rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    reply = controller.handle("audio_seed", {"samples": tone.tolist(), "sample_rate": rate})
    assert reply["seed_seconds"] == pytest.approx(1.0, abs=0.01)
    sf.write(tmp_path / "seed.wav", tone, rate)
    assert controller.handle("audio_seed", {"path": str(tmp_path / "seed.wav")})["seed_seconds"] > 0.9
    for cmd, args, match in [("audio_gain", {"gain": 3}, "0 to 2"),
                             ("audio_gain", {"db": 10}, "-60"),
                             ("audio_gain", {}, "exactly one"),
                             ("audio_seed", {"path": str(tmp_path / "nope.wav")}, "does not exist"),
                             ("audio_seed", {"samples": [0.1, "x"], "sample_rate": 16000}, "list of numbers"),
                             ("audio_seed", {"samples": [0.1], "sample_rate": 10}, "sample_rate"),
                             ("audio_start", {"now": 1}, "no arguments"),
                             ("audio_play", {}, "unknown")]:
        with pytest.raises(AudioCommandError, match=match):
            controller.handle(cmd, args)


def test_no_audio_device_gives_a_clear_error():
    """With no JACK server to reach (and no sound card here), opening fails with the fix."""
    code = ("from daemon.audio_control import AudioController, AudioUnavailable\n"
            "ctl = AudioController(None, None, 256, 'low', 'cpu')\n"
            "try:\n"
            "    ctl.open()\n"
            "except AudioUnavailable as exc:\n"
            "    print('UNAVAILABLE', exc)\n"
            "    assert ctl.status() == {'enabled': False, 'error': str(exc)}\n")
    env = dict(os.environ, JACK_DEFAULT_SERVER=f"riffd-no-such-server-{os.getpid()}",
               JACK_NO_START_SERVER="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, cwd=os.path.dirname(os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0, done.stderr
    assert "UNAVAILABLE" in done.stdout, done.stdout + done.stderr
    assert "start JACK" in done.stdout and "--audio-device" in done.stdout


def test_ring_buffer_wraps_and_counts_underflows():
    ring = AudioRing(10)
    out = np.ones(4, dtype=np.float32)
    assert ring.write(np.arange(8, dtype=np.float32)) == 8
    assert ring.read_into(out) == 4 and out.tolist() == [0, 1, 2, 3]
    assert ring.write(np.arange(8, 14, dtype=np.float32)) == 6        # wraps around the end
    assert ring.write(np.ones(3, dtype=np.float32)) == 0              # full
    got = np.empty(10, dtype=np.float32)
    assert ring.read_into(got) == 10 and got.tolist() == list(range(4, 14))
    assert ring.underflows == 0
    assert ring.read_into(out) == 0 and out.tolist() == [0, 0, 0, 0]
    assert ring.underflows == 1 and ring.missing_samples == 4
    ring.read_into(out, count_underflow=False)
    assert ring.underflows == 1


def test_bundled_model_is_small():
    assert BUNDLED_SPECTRAL_MODEL.stat().st_size <= 10 * 1024 * 1024
