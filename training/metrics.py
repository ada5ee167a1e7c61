"""Objective metrics on piano rolls, for generated and real music alike (pure functions).

Rolls are ``(T, P)`` bool arrays on the 16th grid (``riffd.engine.pianoroll``), column ``i`` being
MIDI pitch ``pitch_range.low + i``. Bars are ``bar_steps`` frames (16 = one 4/4 bar).

EB   empty bars, %: bars in which nothing sounds.
UPC  used pitch classes per bar (0–12), averaged over the bars that are not empty
     (as MuseGAN's metrics do: an empty bar says nothing about pitch use).
QN   qualified notes, %: notes lasting at least ``min_steps`` (3) frames, out of all notes.
     A note is a run of consecutive on-frames of one pitch (``riffd.engine.pianoroll.roll_to_notes``).
pitch entropy  Shannon entropy in bits of the pitch-class histogram of note onsets
     (0 … log2(12) ≈ 3.58).
histogram distance  total variation distance between two pitch-class histograms weighted by
     sounding frames: half the L1 distance, 0 (same) … 1 (disjoint).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from riffd.engine.pianoroll import PitchRange, roll_to_notes

BAR_STEPS = 16
QUALIFIED_STEPS = 3


def to_bars(roll: np.ndarray, bar_steps: int = BAR_STEPS) -> np.ndarray:
    """``(T, P)`` → ``(T // bar_steps, bar_steps, P)``; an incomplete last bar is dropped."""
    roll = np.asarray(roll, dtype=bool)
    n = roll.shape[0] // bar_steps
    return roll[:n * bar_steps].reshape(n, bar_steps, roll.shape[1])


def _stack_bars(rolls: Sequence[np.ndarray], bar_steps: int) -> np.ndarray:
    bars = [to_bars(r, bar_steps) for r in rolls]
    bars = [b for b in bars if len(b)]
    if not bars:
        raise ValueError(f"no complete bar of {bar_steps} frames in the given rolls")
    return np.concatenate(bars)                                     # (N, bar_steps, P)


def _pitch_classes(pitch_range: PitchRange) -> np.ndarray:
    return (np.arange(pitch_range.size) + pitch_range.low) % 12     # (P,)


def empty_bars(rolls: Sequence[np.ndarray], bar_steps: int = BAR_STEPS) -> float:
    """EB: share of bars with no sounding frame, in %."""
    bars = _stack_bars(rolls, bar_steps)
    return 100.0 * float(np.mean(~bars.any(axis=(1, 2))))


def used_pitch_classes(rolls: Sequence[np.ndarray], pitch_range: PitchRange,
                       bar_steps: int = BAR_STEPS) -> float:
    """UPC: mean number of pitch classes sounding in a non-empty bar (0 when all are empty)."""
    bars = _stack_bars(rolls, bar_steps)
    pitches = bars.any(axis=1)                                      # (N, P)
    chroma = np.zeros((len(bars), 12), dtype=bool)
    for column, pc in enumerate(_pitch_classes(pitch_range)):
        chroma[:, pc] |= pitches[:, column]
    counts = chroma.sum(axis=1)
    non_empty = counts > 0
    return float(counts[non_empty].mean()) if non_empty.any() else 0.0


def note_lengths(rolls: Sequence[np.ndarray], pitch_range: PitchRange) -> np.ndarray:
    """Lengths in frames of every note (run of on-frames) of the rolls."""
    lengths = [round(n.duration / 0.25) for r in rolls for n in roll_to_notes(r, pitch_range)]
    return np.asarray(lengths, dtype=int)


def qualified_notes(rolls: Sequence[np.ndarray], pitch_range: PitchRange,
                    min_steps: int = QUALIFIED_STEPS) -> float:
    """QN: share of notes at least ``min_steps`` frames long, in % (0 with no notes)."""
    lengths = note_lengths(rolls, pitch_range)
    return 100.0 * float(np.mean(lengths >= min_steps)) if len(lengths) else 0.0


def onset_histogram(rolls: Sequence[np.ndarray], pitch_range: PitchRange) -> np.ndarray:
    """(12,) counts of note onsets per pitch class."""
    hist = np.zeros(12)
    for r in rolls:
        for n in roll_to_notes(r, pitch_range):
            hist[n.pitch % 12] += 1
    return hist


def pitch_entropy(rolls: Sequence[np.ndarray], pitch_range: PitchRange) -> float:
    """Entropy in bits of the pitch-class distribution of note onsets (0 with no notes)."""
    hist = onset_histogram(rolls, pitch_range)
    if hist.sum() == 0:
        return 0.0
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def pitch_class_histogram(rolls: Sequence[np.ndarray], pitch_range: PitchRange) -> np.ndarray:
    """(12,) share of sounding frames per pitch class (sums to 1; zeros when silent)."""
    hist = np.zeros(12)
    pcs = _pitch_classes(pitch_range)
    for r in rolls:
        np.add.at(hist, pcs, np.asarray(r, dtype=bool).sum(axis=0))
    total = hist.sum()
    return hist / total if total else hist


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance between two normalised histograms (0 … 1)."""
    return 0.5 * float(np.abs(np.asarray(a) - np.asarray(b)).sum())


def roll_metrics(rolls: Sequence[np.ndarray], pitch_range: PitchRange,
                 bar_steps: int = BAR_STEPS) -> dict:
    """EB, UPC, QN, pitch entropy and the pitch-class histogram of a set of rolls."""
    return {"empty_bars_pct": empty_bars(rolls, bar_steps),
            "used_pitch_classes": used_pitch_classes(rolls, pitch_range, bar_steps),
            "qualified_notes_pct": qualified_notes(rolls, pitch_range),
            "pitch_entropy_bits": pitch_entropy(rolls, pitch_range),
            "pitch_class_histogram": pitch_class_histogram(rolls, pitch_range).tolist()}


def compare(generated: dict, real: dict) -> dict:
    """Side by side: each metric for generated and real data, and the histogram distance."""
    keys = ("empty_bars_pct", "used_pitch_classes", "qualified_notes_pct", "pitch_entropy_bits")
    out = {k: {"generated": generated[k], "real": real[k]} for k in keys}
    out["pitch_class_histogram_distance"] = histogram_distance(
        generated["pitch_class_histogram"], real["pitch_class_histogram"])
    return out
