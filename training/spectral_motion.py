"""How much audio moves: level, level changes and spectral change per frame, and the sampling
temperature that makes a spectral model's free-running output move as much as its training audio.

``motion(samples, rate, hop)`` measures, on frames of ``hop`` samples (0.125 s for the bundled
model):

* ``rms_dbfs``: the level of the whole clip (dB relative to full scale, 1.0);
* ``rms_variation_db``: the mean absolute change of the frame level (dBFS, floored at −80)
  from one frame to the next;
* ``spectral_flux``: the mean L1 distance between consecutive frames' normalised magnitude
  spectra (each spectrum divided by its sum; 0 = the same spectrum, 2 = nothing in common),
  independent of the level;
* ``centroid_std_hz``: the standard deviation of the spectral centroid (Hz).

A drone has a flux and a level variation near zero; a chorale has both well above.
``calibrate(checkpoint, clips)`` measures the training clips, renders a few free-running
continuations from training seeds at several temperatures, and writes into the checkpoint's
metadata ``motion`` (the training audio's figures and the chosen temperature's) and
``generation.temperature`` (the one whose output is closest to the training audio, counting
the level of every run's last 10 s, so that a temperature whose output runs away loses).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

LEVEL_FLOOR_DB = -80.0
TEMPERATURES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)
SEED_SECONDS = 8.0            # of each training clip, primes a calibration run
RUN_SECONDS = 30.0            # free-running audio per calibration run
TAIL_SECONDS = 10.0           # the end of each run whose level must stay near the training's


def motion(samples: np.ndarray, rate: int, hop: int) -> dict:
    """Motion figures of mono samples at ``rate`` Hz, framed every ``hop`` samples."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    count = len(x) // hop
    if count < 3:
        raise ValueError(f"{len(x)} samples make fewer than 3 frames of {hop}; use a longer clip")
    frames = x[:count * hop].reshape(count, hop)                                 # (T, hop)
    level = 20 * np.log10(np.maximum(np.sqrt(np.mean(frames ** 2, axis=1)), 1e-300))
    level = np.maximum(level, LEVEL_FLOOR_DB)                                    # (T,) dBFS
    window = np.hanning(2 * hop)
    starts = np.arange(0, len(x) - 2 * hop + 1, hop)
    mags = np.abs(np.fft.rfft(x[starts[:, None] + np.arange(2 * hop)] * window, axis=1))
    sums = mags.sum(axis=1)
    audible = sums > 1e-6
    p = mags[audible] / sums[audible, None]                                      # (T', bins)
    freqs = np.fft.rfftfreq(2 * hop, 1.0 / rate)
    rms = float(np.sqrt(np.mean(x ** 2)))
    return {
        "rms_dbfs": round(float(20 * np.log10(max(rms, 1e-300))), 3),
        "rms_variation_db": round(float(np.mean(np.abs(np.diff(level)))), 4),
        "spectral_flux": round(float(np.mean(np.abs(np.diff(p, axis=0)).sum(axis=1)))
                               if len(p) > 1 else 0.0, 5),
        "centroid_std_hz": round(float(np.std(p @ freqs)) if len(p) else 0.0, 2),
        "seconds": round(len(x) / rate, 3),
    }


def mean_motion(clips: list[np.ndarray], rate: int, hop: int) -> dict:
    """Figures averaged over clips, weighted by length (rms_dbfs: of the pooled power)."""
    figs = [motion(c, rate, hop) for c in clips]
    weights = np.array([f["seconds"] for f in figs])
    out = {k: round(float(np.average([f[k] for f in figs], weights=weights)), 5)
           for k in ("rms_variation_db", "spectral_flux", "centroid_std_hz")}
    power = np.average([10 ** (f["rms_dbfs"] / 10) for f in figs], weights=weights)
    out["rms_dbfs"] = round(float(10 * np.log10(power)), 3)
    out["seconds"] = round(float(weights.sum()), 3)
    return out


def distance(generated: dict, reference: dict, tail_levels=()) -> float:
    """How far generated figures are from the reference's: the worst of the flux and level
    variation ratios (natural log) and the level differences, of the whole and of each run's
    tail (``tail_levels``, dBFS; 6 dB counted as a factor 2)."""
    def ratio(key):
        return abs(np.log(max(generated[key], 1e-9) / max(reference[key], 1e-9)))
    level = max(abs(v - reference["rms_dbfs"]) for v in [generated["rms_dbfs"], *tail_levels])
    return float(max(ratio("spectral_flux"), ratio("rms_variation_db"), level / 6.0 * np.log(2)))


def free_run(generator, seed: np.ndarray, seconds: float) -> np.ndarray:
    """Prime with ``seed`` and generate ``seconds`` of audio (float32)."""
    generator.prime(seed)
    frames = int(np.ceil(seconds * generator.sample_rate / generator.hop))
    return np.concatenate([generator.next_frame() for _ in range(frames)])


def calibrate(checkpoint: str | Path, clips, temperatures=TEMPERATURES,
              run_seconds: float = RUN_SECONDS) -> dict:
    """Measure ``clips`` (AudioClip list, the training clips), pick the temperature whose
    free-running output is closest to them, and write both into ``checkpoint``'s metadata.
    ``run_seconds``: free-running seconds per run (the last third, at most 10 s, is the tail).
    Returns the ``motion`` entry written."""
    import torch

    from riffd.engine.checkpoint import load_checkpoint, save_checkpoint
    from riffd.engine.loading import load_model
    from riffd.engine.spectral_generator import SpectralGenerator

    model, metadata = load_model(checkpoint)
    generator = SpectralGenerator.from_metadata(model, metadata, "cpu")
    rate, hop = generator.sample_rate, generator.hop
    reference = mean_motion([c.samples for c in clips], rate, hop)
    longest = sorted(clips, key=lambda c: -len(c.samples))[:2]
    seeds = [c.samples[:int(SEED_SECONDS * rate)] for c in longest]
    if model.cfg.head != "laplace":
        temperatures = (0.0,)
    tried = []
    with torch.inference_mode():
        for t in temperatures:
            generator.temperature = t
            runs = [free_run(generator, s, run_seconds) for s in seeds]
            figs = mean_motion(runs, rate, hop)
            tail = int(min(TAIL_SECONDS, run_seconds / 3) * rate)
            tails = [motion(r[-tail:], rate, hop)["rms_dbfs"] for r in runs]
            tried.append({"temperature": t, **figs, "tail_rms_dbfs": tails,
                          "distance": round(distance(figs, reference, tails), 4)})
            log.info("temperature %.2f: %s", t, tried[-1])
    best = min(tried, key=lambda r: r["distance"])
    entry = {"training_audio": reference,
             "generated": {k: v for k, v in best.items() if k not in ("distance", "tail_rms_dbfs")},
             "calibration": tried, "frame_seconds": hop / rate}
    tensors, meta = load_checkpoint(checkpoint)
    meta.pop("format_version", None)
    meta["motion"] = entry
    meta["generation"] = {**(meta.get("generation") or {}), "temperature": best["temperature"]}
    save_checkpoint(checkpoint, tensors, meta)
    log.info("sampling temperature %.2f: flux %.4f (training audio %.4f), level variation "
             "%.2f dB (%.2f dB), level %.1f dBFS (%.1f dBFS)", best["temperature"],
             best["spectral_flux"], reference["spectral_flux"], best["rms_variation_db"],
             reference["rms_variation_db"], best["rms_dbfs"], reference["rms_dbfs"])
    return entry
