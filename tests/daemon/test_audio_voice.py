"""The audio voice streams the bundled spectral model to a JACK server (dummy driver, 48 kHz,
256-frame periods) through riffd's own JACK client (the JACK sink), and through PortAudio's JACK
device when one is named (the PortAudio sink); a separate JACK client records it. Seed files and
audio models pass the same file checks as MIDI models."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from riffd.daemon.audio_control import (BUNDLED_SPECTRAL_MODEL, MAX_SEED_FILE_BYTES, AudioCommandError,
                                  AudioController)
from riffd.daemon.audio_ring import AudioRing
from riffd.engine.checkpoint import CheckpointError, ModelLimits
from riffd.engine.loading import BUNDLED_MODEL

pytestmark = pytest.mark.jack


@pytest.fixture(scope="module")
def controller(jack_server):
    with AudioController(None, None, 256, "low", "cpu") as ctl:
        yield ctl


def _ports(env: dict) -> list[str]:
    done = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=5)
    return done.stdout.split()


def _record(port: str, seconds: float, wav, env: dict) -> subprocess.Popen:
    return subprocess.Popen(["jack_rec", "-f", str(wav), "-d", str(seconds), port], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_streams_5_seconds_without_underflow_and_jack_rec_hears_it(controller, tmp_path):
    env = dict(os.environ)
    assert {"riffd-audio:out_0", "riffd-audio:out_1"} <= set(_ports(env)), _ports(env)
    status = controller.status()
    assert status["backend"] == "jack"
    assert status["ports"] == ["riffd-audio:out_0", "riffd-audio:out_1"]
    assert status["sample_rate"] == 48000 and status["model_sample_rate"] == 16000
    assert status["blocksize"] == 256                     # the server's period
    connections = subprocess.run(["jack_lsp", "-c", "riffd-audio:out_0"], env=env,
                                 capture_output=True, text=True, timeout=5).stdout
    assert "system:playback_1" in connections, connections
    wav = tmp_path / "rec.wav"
    recorder = _record("riffd-audio:out_0", 4, wav, env)
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
    assert after["real_time_factor_cpu"] >= after["real_time_factor"]   # CPU s ≤ wall s
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
                             ("audio_seed", {"path": str(tmp_path / "nope.wav")}, "no such file"),
                             ("audio_seed", {"path": str(tmp_path)}, "a directory"),
                             ("audio_seed", {"samples": [0.1, "x"], "sample_rate": 16000}, "list of numbers"),
                             ("audio_seed", {"samples": [0.1], "sample_rate": 10}, "sample_rate"),
                             ("audio_start", {"now": 1}, "no arguments"),
                             ("audio_play", {}, "unknown")]:
        with pytest.raises(AudioCommandError, match=match):
            controller.handle(cmd, args)


def test_seed_files_that_are_not_plain_audio_files_are_refused_at_once(controller, tmp_path):
    """A FIFO is never opened (reading it would wait for a writer); a file over the size
    bound is refused before it is read; a non-audio file says which formats work."""
    fifo = tmp_path / "seed.wav"
    os.mkfifo(fifo)
    big = tmp_path / "big.wav"
    with open(big, "wb") as f:
        f.truncate(MAX_SEED_FILE_BYTES + 1)                      # sparse: nothing is written
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    answers = {}

    def ask(name, path):
        started = time.monotonic()
        try:
            controller.handle("audio_seed", {"path": str(path)})
            answers[name] = ("accepted", time.monotonic() - started)
        except AudioCommandError as exc:
            answers[name] = (str(exc), time.monotonic() - started)

    # in a thread: were the FIFO opened, the test would still end (and fail) instead of hanging
    asker = threading.Thread(target=lambda: [ask(n, p) for n, p in
                                             (("fifo", fifo), ("big", big), ("text", text))],
                             daemon=True)
    asker.start()
    asker.join(20)
    assert not asker.is_alive(), f"audio_seed waited on a file: {answers}"
    assert "FIFO" in answers["fifo"][0] and answers["fifo"][1] < 2.0, answers
    assert "over the" in answers["big"][0] and "send samples" in answers["big"][0], answers
    assert "WAV, FLAC or OGG" in answers["text"][0], answers
    assert controller.status()["error"] is None            # the voice is still fine


def test_portaudio_sink_on_portaudios_jack_device(controller, tmp_path):
    """A named --audio-device goes through PortAudio (here its JACK device), with the same
    block logic: it plays without ring underflows and a JACK client hears it."""
    env = dict(os.environ)
    with AudioController(None, "JACK", 256, "low", "cpu", client_name="riffd-pa-audio") as pa:
        status = pa.status()
        assert status["backend"] == "portaudio" and status["sample_rate"] == 48000, status
        assert "riffd-pa-audio:out_0" in _ports(env), _ports(env)
        wav = tmp_path / "pa.wav"
        recorder = _record("riffd-pa-audio:out_0", 2, wav, env)
        try:
            time.sleep(0.5)                               # the recorder joins the graph
            pa.handle("audio_start", {})
            assert recorder.wait(timeout=15) == 0, recorder.stderr.read()
            after = pa.status()
        finally:
            if recorder.poll() is None:
                recorder.kill()
            pa.handle("audio_stop", {})
    assert after["playing"] and after["underflows"] == 0 and after["alive"], after
    audio, rate = sf.read(wav)
    assert rate == 48000 and np.sqrt(np.mean(audio ** 2)) > 1e-4      # not silence
    assert "riffd-pa-audio:out_0" not in _ports(env)                     # closed


@pytest.mark.parametrize("make, limits, words", [
    (lambda tmp: BUNDLED_SPECTRAL_MODEL, ModelLimits(max_params=1000,
     params_hint="raise the limit with `riffd serve --max-model-params N`"), "--max-model-params"),
    (lambda tmp: BUNDLED_SPECTRAL_MODEL, ModelLimits(max_bytes=1000,
     bytes_hint="raise the limit with `riffd serve --max-model-mb N`"), "--max-model-mb"),
    (lambda tmp: BUNDLED_MODEL, ModelLimits(), "needs a spectral_lstm checkpoint"),
    (lambda tmp: (os.mkfifo(tmp / "m.safetensors"), tmp / "m.safetensors")[1], ModelLimits(),
     "FIFO"),
])
def test_audio_models_get_the_midi_models_file_checks(tmp_path, make, limits, words):
    """--audio-model is checked like a MIDI voice's model: size, parameter count, kind, and
    only a regular file is opened (before any output is touched)."""
    ctl = AudioController(str(make(tmp_path)), None, 256, "low", "cpu", limits=limits)
    started = time.monotonic()
    with pytest.raises(CheckpointError, match=words):
        ctl.open()
    assert time.monotonic() - started < 10
    assert ctl.output is None and ctl.voice is None


def test_no_audio_device_gives_a_clear_error():
    """With no JACK server to reach (and no sound card here), opening fails with the fix."""
    code = ("from riffd.daemon.audio_control import AudioController, AudioUnavailable\n"
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


def test_the_voice_thread_sets_its_own_torch_thread_count(jack_server, monkeypatch):
    """torch.set_num_threads in the main thread does not reach the per-thread settings of
    OpenMP / MKL in other threads (a voice thread without its own call measured 10x the CPU per
    frame, the daemon's 12x real-time factor): the voice thread sets the process's count itself
    as it starts."""
    import threading as _threading

    import torch
    calls: list[tuple[str, int]] = []
    real = torch.set_num_threads

    def recording(n):
        calls.append((_threading.current_thread().name, n))
        real(n)
    monkeypatch.setattr(torch, "set_num_threads", recording)
    wanted = torch.get_num_threads()
    with AudioController(None, None, 256, "low", "cpu", client_name="riffd-omp-audio") as ctl:
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ctl.voice is not None
    assert calls == [("riffd-audio-voice", wanted)]
