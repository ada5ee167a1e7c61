"""Does the spectral voice move? Free-running output against the training audio, and its speed.

1. Motion (``riffd.training.spectral_motion.motion``): level (dBFS), mean frame-to-frame level
   change (dB) and spectral flux, and the spread of the spectral centroid (Hz), of
   ``--seconds`` (30) of free-running output primed with the first 8 s of every held-out clip
   of the checkpoint, side by side with the training audio's figures (the checkpoint's
   training clips, rendered again from the cache). Targets: level within 6 dB, flux and level
   change within a factor of 2. The first and last 10 s of each run are also reported apart,
   to show whether the output settles.
2. Real-time factor offline: seconds of audio per second of compute, one torch thread, the
   stateful generator (step + phase vocoder + inverse FFT + overlap-add) and with the 48 kHz
   resampling of the audio voice.
3. Real-time factor in the daemon: ``riffd serve --audio --audio-model CHECKPOINT`` on a
   private JACK server (dummy driver, 48 kHz, 256-frame periods), ``audio_start``, then
   ``audio_status`` after ``--daemon-seconds``: ``real_time_factor`` (seconds generated per
   wall second spent inside generate + resample, which counts time the thread waits for the
   GIL or a CPU) and ``real_time_factor_cpu`` (per CPU second of that thread).

    .venv/bin/python benchmarks/spectral_motion.py [CHECKPOINT] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from riffd.engine.loading import load_model  # noqa: E402
from riffd.engine.spectral_generator import SpectralGenerator  # noqa: E402
from riffd.training.spectral_motion import mean_motion, motion  # noqa: E402
from riffd.training.spectral_render import held_out_clips, training_clips  # noqa: E402

BUNDLED = ROOT / "engine" / "models" / "spectral_default.safetensors"
SEED_SECONDS = 8.0


def free_running(checkpoint: Path, seconds: float) -> dict:
    model, metadata = load_model(checkpoint)
    generator = SpectralGenerator.from_metadata(model, metadata, "cpu")
    rate, hop = generator.sample_rate, generator.hop
    train_figs = mean_motion([c.samples for c in training_clips(metadata)], rate, hop)
    runs, per_seed, times = [], {}, []
    frames = int(np.ceil(seconds * rate / hop))
    for clip in held_out_clips(metadata):
        generator.prime(clip.samples[:int(SEED_SECONDS * rate)])
        out = []
        for _ in range(frames):
            started = time.perf_counter()
            out.append(generator.next_frame())
            times.append(time.perf_counter() - started)
        audio = np.concatenate(out)
        runs.append(audio)
        ten = int(10 * rate)
        per_seed[clip.name] = {"whole": motion(audio, rate, hop),
                               "first_10s": motion(audio[:ten], rate, hop),
                               "last_10s": motion(audio[-ten:], rate, hop)}
    generated = mean_motion(runs, rate, hop)
    ratios = {"level_difference_db": round(generated["rms_dbfs"] - train_figs["rms_dbfs"], 2),
              "spectral_flux_ratio": round(generated["spectral_flux"] / train_figs["spectral_flux"], 3),
              "rms_variation_ratio": round(generated["rms_variation_db"]
                                           / train_figs["rms_variation_db"], 3)}
    ok = (abs(ratios["level_difference_db"]) <= 6
          and 0.5 <= ratios["spectral_flux_ratio"] <= 2 and 0.5 <= ratios["rms_variation_ratio"] <= 2)
    frame_s = hop / rate
    return {"checkpoint": str(checkpoint), "temperature": generator.temperature,
            "training_audio": train_figs, "generated_mean": generated, "ratios": ratios,
            "targets_met": ok, "per_held_out_seed": per_seed,
            "offline_real_time_factor": round(frame_s / float(np.mean(times)), 1),
            "offline_real_time_factor_at_median": round(frame_s / float(np.median(times)), 1)}


def offline_with_resampling(checkpoint: Path, frames: int = 240) -> float:
    from riffd.daemon.audio_voice import StreamingResampler
    model, metadata = load_model(checkpoint)
    generator = SpectralGenerator.from_metadata(model, metadata, "cpu")
    resampler = StreamingResampler(generator.sample_rate, 48000)
    generator.prime(np.zeros(generator.hop, dtype=np.float32))
    started = time.perf_counter()
    for _ in range(frames):
        resampler.process(generator.next_frame())
    return round(frames * generator.hop / generator.sample_rate / (time.perf_counter() - started), 1)


def in_daemon(checkpoint: Path, seconds: float) -> dict:
    from riffd.daemon.jack_server import JackServer
    from riffd.daemon.process import DaemonProcess
    server = JackServer(f"riffd-motion-{os.getpid()}", rate=48000, period=256).start()
    try:
        env = {**server.env}
        args = ["--midi-api", "jack", "--client-name", "riffd-motion", "--audio",
                "--audio-model", str(checkpoint), "--log-level", "WARNING"]
        with DaemonProcess(args, env=env) as daemon, daemon.client(timeout_s=10) as c:
            c.request("audio_start")
            started = time.monotonic()
            time.sleep(seconds)
            status = c.request("audio_status")
            elapsed = time.monotonic() - started
            c.request("audio_stop")
    finally:
        server.stop()
    return {"seconds": round(elapsed, 1), "real_time_factor_wall": status["real_time_factor"],
            "real_time_factor_cpu": status.get("real_time_factor_cpu"),
            "seconds_generated": status["seconds_generated"],
            "seconds_played": status["seconds_played"], "underflows": status["underflows"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=str(BUNDLED))
    parser.add_argument("--seconds", type=float, default=30.0, help="free-running seconds per seed")
    parser.add_argument("--daemon-seconds", type=float, default=20.0)
    parser.add_argument("--skip-daemon", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint = Path(args.checkpoint)
    results = free_running(checkpoint, args.seconds)
    results["offline_real_time_factor_with_48k_resampling"] = offline_with_resampling(checkpoint)
    if not args.skip_daemon:
        results["daemon"] = in_daemon(checkpoint, args.daemon_seconds)
    summary = {k: v for k, v in results.items() if k != "per_held_out_seed"}
    print(json.dumps(summary, indent=2))
    for name, figs in results["per_held_out_seed"].items():
        print(f"  {name:16s} first 10 s {figs['first_10s']}\n  {'':16s} last 10 s  {figs['last_10s']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
