"""Spectral generation speed and streaming underflows.

1. Real-time factor (seconds of audio per second of compute) of every architecture at its
   configs/spectral_*.toml size (untrained weights: speed does not depend on them), and of the
   bundled model, alone and with resampling to 48 kHz as the audio voice does. One thread.
2. Cost per frame of stateful generation against the documents' sliding window (T = 40) after
   10 s, 60 s and 600 s of output (bundled model): median and p99 of the 40 frames up to each
   mark.
3. ``--minutes M``: stream M minutes of the bundled model to a private JACK server (dummy
   driver, 48 kHz, 256-frame periods) through the audio voice; ring underflows (the buffer ran
   dry) and PortAudio underflow flags (JACK xruns), with the flags of the same stream idle for
   ``--idle-seconds`` as a baseline.

    .venv/bin/python benchmarks/spectral_rtf.py                  # 1 and 2
    .venv/bin/python benchmarks/spectral_rtf.py --minutes 5      # 3 as well
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
from riffd.engine.spectral_generator import SpectralGenerator, WindowedSpectralGenerator  # noqa: E402
from riffd.engine.spectral_lstm import SpectralLSTM, SpectralLSTMConfig  # noqa: E402
from riffd.engine.spectral_representation import SpectralCodec, SpectralSettings  # noqa: E402

BUNDLED = ROOT / "engine" / "models" / "spectral_default.safetensors"
CONFIGS = ["spectral_lstm_base", "spectral_fc_lstm", "spectral_conv1d_lstm",
           "spectral_conv2d_lstm", "spectral_bilinear", "spectral_stacked"]


def _percentiles(times: list[float]) -> dict:
    ms = 1000 * np.asarray(times)
    return {"median_ms": round(float(np.median(ms)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def time_frames(generator, frames: int, post=None) -> dict:
    """Prime with 2 s of noise, then time ``frames`` calls of next_frame (+ ``post``)."""
    rng = np.random.default_rng(0)
    generator.prime((0.1 * rng.standard_normal(2 * generator.sample_rate)).astype(np.float32))
    for _ in range(3):                                   # warm-up
        generator.next_frame()
    times = []
    for _ in range(frames):
        started = time.perf_counter()
        samples = generator.next_frame()
        if post is not None:
            post(samples)
        times.append(time.perf_counter() - started)
    frame_s = generator.hop / generator.sample_rate
    return {"real_time_factor": round(frame_s / float(np.mean(times)), 1),
            "real_time_factor_at_median": round(frame_s / float(np.median(times)), 1),
            "params_M": round(sum(p.numel() for p in generator.model.parameters()) / 1e6, 2),
            **_percentiles(times)}


def architectures(frames: int, device: str = "cpu") -> dict:
    import tomllib
    out = {}
    for name in CONFIGS:
        recipe = tomllib.loads((ROOT / "configs" / f"{name}.toml").read_text())
        d = recipe["data"]
        settings = SpectralSettings(d["sample_rate"], d["frame_size"], d["hop"], d["spectrum"])
        torch.manual_seed(0)
        model = SpectralLSTM(SpectralLSTMConfig(input_dim=settings.dim, **recipe["model"]))
        generator = SpectralGenerator(model, SpectralCodec(settings), {}, device)
        out[name] = time_frames(generator, frames)
        print(f"  {name:22s} {out[name]}", flush=True)
    return out


def bundled(frames: int) -> dict:
    from riffd.daemon.audio_voice import StreamingResampler
    model, meta = load_model(BUNDLED)
    generator = SpectralGenerator.from_metadata(model, meta, "cpu")
    result = {"generate": time_frames(generator, frames)}
    resampler = StreamingResampler(generator.sample_rate, 48000)
    result["generate_and_resample_to_48k"] = time_frames(generator, frames, resampler.process)
    return result


def stateful_vs_window(marks=(10.0, 60.0, 600.0), span: int = 40) -> dict:
    """Both generators advance in lockstep (one frame each, alternately), so that load from
    other processes hits both alike; per mark, the last ``span`` frames' times."""
    model, meta = load_model(BUNDLED)
    codec = SpectralCodec.from_metadata(meta["representation"])
    generators = {"stateful": SpectralGenerator(model, codec, meta),
                  "sliding_window_T40": WindowedSpectralGenerator(model, codec, meta)}
    hop_s = codec.settings.hop / codec.settings.sample_rate
    targets = {int(round(m / hop_s)): m for m in marks}
    times: dict[str, list[float]] = {name: [] for name in generators}
    out: dict[str, dict] = {name: {} for name in generators}
    for generator in generators.values():
        generator.prime(np.zeros(codec.settings.hop, dtype=np.float32))
    for i in range(1, max(targets) + 1):
        for name, generator in generators.items():
            started = time.perf_counter()
            generator.next_frame()
            times[name].append(time.perf_counter() - started)
            if i in targets:
                out[name][f"{targets[i]:g}s"] = _percentiles(times[name][-span:])
    for name, row in out.items():
        print(f"  {name:20s} {row}", flush=True)
    return out


def stream(minutes: float, idle_seconds: float) -> dict:
    from riffd.daemon.jack_server import JackServer
    server = JackServer(f"riffd-bench-{os.getpid()}", rate=48000, period=256).start()
    os.environ.update(server.env)
    from riffd.daemon.audio_control import AudioController
    try:
        with AudioController(str(BUNDLED), None, 256, "low", "cpu") as ctl:
            time.sleep(idle_seconds)
            idle = ctl.status()
            ctl.handle("audio_start", {})
            started = time.monotonic()
            while time.monotonic() - started < minutes * 60:
                time.sleep(1.0)
            status = ctl.status()
            ctl.handle("audio_stop", {})
    finally:
        server.stop()
    return {"minutes": minutes, "ring_underflows": status["underflows"],
            "portaudio_underflow_flags_streaming":
                status["device_underflows"] - idle["device_underflows"],
            "portaudio_underflow_flags_idle_baseline": idle["device_underflows"],
            "idle_baseline_seconds": idle_seconds,
            "seconds_generated": status["seconds_generated"],
            "real_time_factor_in_voice": status["real_time_factor"],
            "buffer_seconds_at_end": status["buffer_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames timed per model")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="also stream this long to a private JACK server")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--skip-architectures", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict = {"torch_threads": 1, "cuda": torch.cuda.is_available()}
    if not args.skip_architectures:
        print("real-time factor per architecture (configs/ sizes, CPU):", flush=True)
        results["architectures"] = architectures(args.frames)
        if torch.cuda.is_available():
            print("real-time factor per architecture (configs/ sizes, CUDA):", flush=True)
            results["architectures_cuda"] = architectures(args.frames, "cuda")
    print("bundled model:", flush=True)
    results["bundled"] = bundled(args.frames * 4)
    print(f"  {results['bundled']}", flush=True)
    print("cost per frame, stateful vs sliding window:", flush=True)
    results["stateful_vs_window"] = stateful_vs_window()
    if args.minutes:
        print(f"streaming {args.minutes:g} min to JACK:", flush=True)
        results["stream"] = stream(args.minutes, args.idle_seconds)
        print(f"  {results['stream']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
