"""``riffd eval`` for spectral models: held-out error, spectral distance, generation speed.

On the checkpoint's held-out clips (its own corpus, rendered again from the cache):

* ``frame_mse``: next-frame mean squared error (normalised vectors, teacher forcing), with the
  "repeat the last frame" predictor as a reference;
* ``log_spectral_distance_db``: between predicted and true next frames' power spectra (dB),
  with the same reference;
* generation from a held-out seed, stateful against the documents' sliding window (T = 40):
  real-time factor (seconds of audio per second of compute), milliseconds per frame, and the
  log-spectral distance of the generated continuation to the true continuation.

Writes ``eval.json`` and ``eval.png`` (spectrograms of seed, truth and both generations) into
``--out`` (default: beside the checkpoint) and returns the JSON text.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from engine.spectral_representation import SpectralCodec
from training.spectral_render import held_out_clips, load_spectral, plot_spectrogram

log = logging.getLogger(__name__)
GENERATE_SECONDS = 5.0        # continuation compared and timed per generator
_EPS = 1e-10


def power_spectra(codec: SpectralCodec, vectors: np.ndarray) -> np.ndarray:
    """Normalised vectors (T, D) → power spectra (T, bins) of their frames."""
    v = np.asarray(vectors, np.float64) * codec.std + codec.mean
    bins = codec.settings.bins
    return v[:, :bins] ** 2 + v[:, bins:] ** 2


def log_spectral_distance(codec: SpectralCodec, reference: np.ndarray,
                          estimate: np.ndarray) -> float:
    """Mean over frames of the RMS difference (dB) between two sets of power spectra."""
    p, q = power_spectra(codec, reference), power_spectra(codec, estimate)
    diff = 10 * np.log10((p + _EPS) / (q + _EPS))
    return float(np.mean(np.sqrt(np.mean(diff ** 2, axis=1))))


def audio_lsd(codec: SpectralCodec, reference: np.ndarray, estimate: np.ndarray) -> float:
    """Log-spectral distance (dB) between two clips, framed by the model's codec."""
    n = min(len(reference), len(estimate))
    return log_spectral_distance(codec, codec.encode(reference[:n]), codec.encode(estimate[:n]))


@torch.no_grad()
def teacher_forced(model, codec: SpectralCodec, clips) -> dict[str, float]:
    """Next-frame MSE and LSD over whole held-out clips, model and repeat-last reference."""
    sq, sq_ref, count, lsd, lsd_ref, frames = 0.0, 0.0, 0, 0.0, 0.0, 0
    for clip in clips:
        v = codec.encode(clip.samples)                                   # (T, D)
        if len(v) < 2:
            continue
        pred = model(torch.from_numpy(v[None, :-1]))[0].numpy()          # (T - 1, D)
        target, last = v[1:], v[:-1]
        sq += float(np.sum((pred - target) ** 2))
        sq_ref += float(np.sum((last - target) ** 2))
        count += target.size
        lsd += log_spectral_distance(codec, target, pred) * len(target)
        lsd_ref += log_spectral_distance(codec, target, last) * len(target)
        frames += len(target)
    if not count:
        raise ValueError("the held-out clips are shorter than two frames; nothing to evaluate")
    return {"frame_mse": sq / count, "frame_mse_repeat_last": sq_ref / count,
            "log_spectral_distance_db": lsd / frames,
            "log_spectral_distance_db_repeat_last": lsd_ref / frames, "frames": frames}


def timed_generation(generator, seed: np.ndarray, seconds: float) -> tuple[np.ndarray, dict]:
    """Prime, then generate ``seconds``; returns the audio and speed figures."""
    generator.prime(seed)
    frames = max(1, int(np.ceil(seconds * generator.sample_rate / generator.hop)))
    times, out = [], []
    for _ in range(frames):
        started = time.perf_counter()
        out.append(generator.next_frame())
        times.append(time.perf_counter() - started)
    total = float(np.sum(times))
    audio = np.concatenate(out)
    return audio, {"real_time_factor": len(audio) / generator.sample_rate / total,
                   "ms_per_frame_median": 1000 * float(np.median(times)),
                   "ms_per_frame_p99": 1000 * float(np.percentile(times, 99)),
                   "frames": frames}


def evaluate(checkpoint: str | Path, out_dir: str | Path | None = None,
             seconds: float = GENERATE_SECONDS) -> dict:
    """Evaluate a spectral checkpoint; writes eval.json and eval.png, returns the report."""
    torch.set_num_threads(1)
    stateful = load_spectral(checkpoint)
    windowed = load_spectral(checkpoint, windowed=True)
    codec, rate = stateful.codec, stateful.sample_rate
    clips = held_out_clips(stateful.metadata)
    if not clips:
        raise ValueError(f"{checkpoint}: its held-out clips are not in its corpus any more; "
                         "evaluate with the corpus it was trained on")
    report: dict = {"checkpoint": str(checkpoint), "held_out_clips": [c.name for c in clips],
                    "sample_rate": rate, "hop_samples": stateful.hop,
                    "spectrum": codec.settings.spectrum, "overlap_add": codec.settings.overlap,
                    "architecture": stateful.model.cfg.architecture}
    with torch.inference_mode():
        report.update(teacher_forced(stateful.model, codec, clips))

    clip = max(clips, key=lambda c: len(c.samples))
    split = min(len(clip.samples) // 2, int(10 * rate))
    seed, truth = clip.samples[:split], clip.samples[split:split + int(seconds * rate)]
    parts = {"seed (held out)": seed, "true continuation": truth}
    for name, generator in (("stateful", stateful), ("sliding_window_T40", windowed)):
        audio, speed = timed_generation(generator, seed, seconds)
        speed["continuation_lsd_db"] = audio_lsd(codec, truth, audio) if len(truth) else None
        speed["peak"] = float(np.max(np.abs(audio)))
        report[name] = speed
        parts[f"{name} generation"] = audio
    report["real_time_factor"] = report["stateful"]["real_time_factor"]

    out = Path(out_dir) if out_dir else Path(checkpoint).parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report, indent=2))
    plot_spectrogram(out / "eval.png", parts, rate, f"{Path(checkpoint).name}: held out")
    log.info("frame MSE %.4f (repeat-last %.4f), LSD %.2f dB (repeat-last %.2f dB), "
             "real-time factor %.0f× stateful, %.0f× sliding window; report in %s",
             report["frame_mse"], report["frame_mse_repeat_last"],
             report["log_spectral_distance_db"], report["log_spectral_distance_db_repeat_last"],
             report["stateful"]["real_time_factor"],
             report["sliding_window_T40"]["real_time_factor"], out / "eval.json")
    return report


def evaluate_command(checkpoint, args) -> str:
    """The ``riffd eval`` entry point (args.out)."""
    return json.dumps(evaluate(checkpoint, getattr(args, "out", None)), indent=2)
