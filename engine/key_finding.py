"""Key finding for short phrases: Krumhansl–Schmuckler with Krumhansl–Kessler profiles.

The melody model is trained on songs transposed to C major / A minor. At serve time a
played phrase's key is estimated here, the phrase is moved into C/Am, and the answer
is moved back, so a phrase in E♭ gets an answer in E♭.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from engine.melody_representation import Note

_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class Key:
    """A key: ``tonic`` pitch class (0 = C) and ``mode`` ("major" or "minor")."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        return f"{PITCH_CLASS_NAMES[self.tonic]} {self.mode}"

    def shift_to_reference(self) -> int:
        """Semitones that move this key to C major or A minor, in −6 … +5."""
        target = 0 if self.mode == "major" else 9
        return (target - self.tonic + 6) % 12 - 6


def estimate_key(notes: Iterable[Note]) -> Key:
    """Estimate the key of notes, weighting each pitch class by its duration in beats.

    With no sounding notes the answer is C major.
    """
    histogram = np.zeros(12)
    for n in notes:
        if n.pitch is not None:
            histogram[n.pitch % 12] += max(n.duration, 1e-3)
    if not histogram.any():
        return Key(0, "major")
    best, best_score = Key(0, "major"), -np.inf
    for tonic in range(12):
        for mode, profile in (("major", _MAJOR), ("minor", _MINOR)):
            score = np.corrcoef(histogram, np.roll(profile, tonic))[0, 1]
            if np.isfinite(score) and score > best_score:
                best, best_score = Key(tonic, mode), score
    return best
