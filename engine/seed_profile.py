"""What a played phrase says about how to answer it: register, dynamics and density.

A musician who plays high and soft expects an answer high and soft; a few long notes ask
for a calm answer. The voice reads these from the seed phrase with the helpers here:

- ``register``: the seed's median pitch. ``octave_offset`` moves a model that knows only
  a certain range by whole octaves so it plays there (the key stays the same);
  ``register_window`` is the pitch range an answer keeps to around it.
- ``Dynamics``: the seed's velocities over the phrase (level and shape), read back at any
  point of the answer.
- ``starts_per_bar``: how many notes the seed starts per bar (its density).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from riffd.engine.melody_representation import Note

REGISTER_SPAN = 9          # semitones either side of the seed's median an answer keeps to
MIN_WINDOW = 12            # semitones: a register window is at least an octave wide
DENSITY_HEADROOM = 2.0     # an answer may start this many times the seed's notes per bar


def register(notes: Iterable[Note]) -> float | None:
    """Median MIDI pitch of the sounding notes (None without any)."""
    pitches = [n.pitch for n in notes if n.pitch is not None]
    return float(statistics.median(pitches)) if pitches else None


def octave_offset(median: float | None, low: int, high: int) -> int:
    """Whole octaves (semitones, a multiple of 12) to take off a phrase at ``median`` so it
    sits nearest the middle of a model's range ``low``…``high`` (MIDI pitches); the model's
    answer is moved back by as much. 0 when the phrase is already nearest there."""
    if median is None or high < low:
        return 0
    centre = (low + high) / 2
    return 12 * round((median - centre) / 12)


def register_window(median: float | None, low: int, high: int,
                    span: int = REGISTER_SPAN) -> tuple[int, int]:
    """The pitch range (MIDI, inclusive) an answer to a seed at ``median`` keeps to, inside
    the voice's own ``low``…``high``: ``span`` semitones either side of the median, widened
    to an octave at the voice's edge. When the seed lies outside the voice's range (a bass
    voice answering a high phrase), the voice's range stays as it is."""
    if median is None:
        return low, high
    lo, hi = max(low, math.floor(median - span)), min(high, math.ceil(median + span))
    if hi < lo:
        return low, high
    if hi - lo < MIN_WINDOW:
        lo = max(low, hi - MIN_WINDOW)
        hi = min(high, lo + MIN_WINDOW)
    return lo, hi


def starts_per_bar(notes: Sequence[Note], beats_per_bar: float) -> float:
    """Notes the phrase starts per bar: its note count over its length in bars (beats from
    the first start to the last end, rounded up to whole beats, at least one)."""
    sounding = [n for n in notes if n.pitch is not None]
    if not sounding:
        return 0.0
    span = (max(n.start + n.duration for n in sounding) - min(n.start for n in sounding))
    return len(sounding) / (max(math.ceil(span - 1e-6), 1) / beats_per_bar)


def density_limit(notes: Sequence[Note], beats_per_bar: float) -> int:
    """Most note starts per bar for an answer to ``notes``: ``DENSITY_HEADROOM`` times the
    seed's own rate, rounded up (at least 1)."""
    return max(1, math.ceil(DENSITY_HEADROOM * starts_per_bar(notes, beats_per_bar) - 1e-9))


@dataclass(frozen=True)
class Dynamics:
    """The seed's velocity contour: velocities (1–127) at positions 0…1 through the phrase,
    smoothed over three neighbouring notes so one accent does not make a bar loud."""

    positions: tuple[float, ...]
    velocities: tuple[float, ...]

    @classmethod
    def from_seed(cls, notes: Sequence[Note], velocities: Sequence[int]) -> "Dynamics | None":
        """The contour of a seed whose note ``i`` was played at ``velocities[i]`` (None when
        they do not match the notes)."""
        pairs = sorted((n.start, int(v)) for n, v in zip(notes, velocities)
                       if n.pitch is not None and v is not None and v > 0)
        if not pairs or len(velocities) != len(notes):
            return None
        starts = np.array([p[0] for p in pairs], dtype=float)
        values = np.array([p[1] for p in pairs], dtype=float)
        span = starts[-1] - starts[0]
        positions = (starts - starts[0]) / span if span > 0 else np.zeros_like(starts)
        if len(values) >= 3:                        # moving average over 3 notes
            padded = np.concatenate([values[:1], values, values[-1:]])
            values = np.convolve(padded, np.ones(3) / 3, mode="valid")
        return cls(tuple(float(p) for p in positions), tuple(float(v) for v in values))

    @property
    def level(self) -> float:
        """Mean velocity of the seed."""
        return float(np.mean(self.velocities))

    def at(self, position: float) -> int:
        """Velocity (1–127) at ``position`` (0 = the start, 1 = the end of the phrase)."""
        value = float(np.interp(min(max(position, 0.0), 1.0), self.positions, self.velocities))
        return min(127, max(1, round(value)))
