"""``riffd eval`` for spectral models: held-out error, spectral distance, generation speed.

On the checkpoint's held-out clips (its own corpus, rendered again from the cache):

* ``frame_mse``: next-frame mean squared error (normalised vectors, teacher forcing), with two
  references: "repeat the last frame" and "always the training mean";
* ``log_spectral_distance_db``: between predicted and true next frames' power spectra (dB),
  with the same reference;
* generation from a held-out seed, stateful against the documents' sliding window (T = 40):
  real-time factor (seconds of audio per second of compute), milliseconds per frame, the
  log-spectral distance of the generated continuation to the true continuation, and the
  ``edge_jump_ratio`` (sample steps across frame boundaries over steps elsewhere: clicks at
  block edges without overlap-add, about 1 with it).

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

from riffd.engine.spectral_representation import SpectralCodec
from riffd.training.spectral_render import held_out_clips, load_spectral, plot_spectrogram

log = logging.getLogger(__name__)
GENERATE_SECONDS = 5.0        # continuation compared and timed per generator
_EPS = 1e-10


def power_spectra(codec: SpectralCodec, vectors: np.ndarray) -> np.ndarray:
    """Normalised vectors (T, D) → power spectra (T, bins) of their frames."""
    return codec.magnitudes(vectors) ** 2


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
    sq, sq_ref, sq_mean, count, lsd, lsd_ref, frames = 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0
    for clip in clips:
        v = codec.encode(clip.samples)                                   # (T, D)
        if len(v) < 2:
            continue
        pred = model.point(model(torch.from_numpy(v[None, :-1])))[0].numpy()   # (T - 1, D)
        target, last = v[1:], v[:-1]
        sq += float(np.sum((pred - target) ** 2))
        sq_ref += float(np.sum((last - target) ** 2))
        sq_mean += float(np.sum(target.astype(np.float64) ** 2))   # predicting the mean (0)
        count += target.size
        lsd += log_spectral_distance(codec, target, pred) * len(target)
        lsd_ref += log_spectral_distance(codec, target, last) * len(target)
        frames += len(target)
    if not count:
        raise ValueError("the held-out clips are shorter than two frames; nothing to evaluate")
    return {"frame_mse": sq / count, "frame_mse_repeat_last": sq_ref / count,
            "frame_mse_training_mean": sq_mean / count,
            "log_spectral_distance_db": lsd / frames,
            "log_spectral_distance_db_repeat_last": lsd_ref / frames, "frames": frames}


def edge_jump_ratio(audio: np.ndarray, hop: int) -> float:
    """Mean |step| between samples across frame boundaries over the mean |step| elsewhere:
    about 1 when frames join smoothly, far above 1 when every block edge clicks."""
    steps = np.abs(np.diff(np.asarray(audio, np.float64)))
    if len(steps) < 2 * hop:
        return float("nan")
    edges = np.zeros(len(steps), dtype=bool)
    edges[hop - 1::hop] = True
    inside = float(np.mean(steps[~edges]))
    return float(np.mean(steps[edges]) / inside) if inside > 0 else float("nan")


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
        speed["edge_jump_ratio"] = edge_jump_ratio(audio, generator.hop)
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


def bundle(checkpoint: str | Path, destination: str | Path, report: dict) -> Path:
    """Copy a checkpoint's weights to ``destination`` with the evaluation in its metadata
    (``metrics``), as the bundled model is made."""
    from riffd.engine.checkpoint import load_checkpoint, save_checkpoint
    tensors, metadata = load_checkpoint(checkpoint)
    weights = {k: v for k, v in tensors.items() if not k.startswith("_")}
    keep = ("frame_mse", "frame_mse_repeat_last", "frame_mse_training_mean",
            "log_spectral_distance_db", "log_spectral_distance_db_repeat_last", "frames")
    metrics = {**metadata.get("metrics", {}), **{k: report[k] for k in keep},
               "stateful": report["stateful"], "sliding_window_T40": report["sliding_window_T40"],
               "held_out_clips": report["held_out_clips"]}
    metadata.pop("format_version", None)
    return save_checkpoint(destination, weights, {**metadata, "metrics": metrics})


def main(argv: list[str] | None = None) -> None:
    """``python -m riffd.training.spectral_eval CHECKPOINT [--bundle DEST]``."""
    import argparse
    parser = argparse.ArgumentParser(description="Evaluate a spectral checkpoint.")
    parser.add_argument("checkpoint")
    parser.add_argument("--out", help="report folder (default: beside the checkpoint)")
    parser.add_argument("--bundle", help="also write a weights-only copy with the metrics here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = evaluate(args.checkpoint, args.out)
    if args.bundle:
        log.info("wrote %s", bundle(args.checkpoint, args.bundle, report))


if __name__ == "__main__":
    main()
