"""Piano rolls: notes (in beats) ↔ multi-hot frames on the 16th-note grid.

A piano roll is a ``np.ndarray`` of shape ``(T, P)`` and dtype bool: ``T`` frames of
``STEP_BEATS`` (a 16th note, 0.25 beats) each, ``P`` pitches of a ``PitchRange``
(column ``i`` is MIDI pitch ``range.low + i``). ``roll[t, i]`` is True while that pitch
sounds during frame ``t``.

Octave cutting (the multilabel document's preprocessing): a ``PitchRange`` with
``fold=True`` moves a note outside the range by whole octaves until it lies inside, so
every note keeps its pitch class. ``OCTAVE_CUT`` is C4–B5 (MIDI 60–83, 24 pitches);
``FULL_PIANO`` is A0–C8 (21–108, 88 pitches).

Re-struck notes. A roll alone cannot tell one long note from the same pitch struck twice
in a row. Two ways out, both offered:
  * an onset roll (``note_onsets``): True on the frame where a note begins; pass it to
    ``roll_to_notes`` / ``roll_to_steps`` and a True onset inside a run starts a new note;
  * ``notes_to_roll(..., restrike_gap=True)``: a note followed at once by the same pitch
    loses its last frame (when it has more than one), so the roll shows a one-frame gap.
Without either, consecutive on-frames always merge into one note (the rule
``roll_to_notes`` applies when ``onsets`` is None).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from riffd.engine.generator import Step
from riffd.engine.key_finding import Key, estimate_key
from riffd.engine.melody_representation import STEP_BEATS, Note


@dataclass(frozen=True)
class PitchRange:
    """The pitches of a roll's columns: MIDI ``low`` … ``high`` inclusive.

    fold: notes outside the range are moved by octaves into it (octave cutting); when
    False they are dropped. Folding needs the range to span at least one octave.
    """

    low: int = 60
    high: int = 83
    fold: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high <= 127:
            raise ValueError(f"pitch range {self.low}–{self.high} must satisfy "
                             "0 <= low <= high <= 127 (MIDI numbers)")
        if self.fold and self.size < 12:
            raise ValueError(f"pitch range {self.low}–{self.high} spans {self.size} pitches; "
                             "octave folding needs at least 12 (or set fold=False)")

    @property
    def size(self) -> int:
        """Number of pitches (columns of a roll)."""
        return self.high - self.low + 1

    def fit(self, pitch: int) -> int | None:
        """The pitch moved into the range (by octaves when folding), None when dropped."""
        if self.low <= pitch <= self.high:
            return pitch
        if not self.fold:
            return None
        while pitch < self.low:
            pitch += 12
        while pitch > self.high:
            pitch -= 12
        return pitch

    def index(self, pitch: int) -> int | None:
        """Column of a pitch after fitting it, None when it is dropped."""
        fitted = self.fit(pitch)
        return None if fitted is None else fitted - self.low

    def pitch(self, index: int) -> int:
        """MIDI pitch of column ``index``."""
        return self.low + index

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "fold": self.fold}


OCTAVE_CUT = PitchRange(60, 83, fold=True)
FULL_PIANO = PitchRange(21, 108, fold=True)


def _steps(beats: float) -> int:
    return int(round(beats / STEP_BEATS))


def roll_length(notes: Iterable[Note]) -> int:
    """Frames needed to hold every note (the end of the last note), in 16ths."""
    return max((_steps(n.start + n.duration) for n in notes if n.pitch is not None), default=0)


def notes_to_roll(notes: Sequence[Note], pitch_range: PitchRange = OCTAVE_CUT,
                  n_steps: int | None = None, restrike_gap: bool = False) -> np.ndarray:
    """Notes (beats, any order, rests ignored) → a ``(T, P)`` bool roll.

    Starts and ends are rounded to the nearest 16th; a note keeps at least one frame.
    ``n_steps`` fixes T (notes beyond it are cut); by default T is the end of the last
    note. ``restrike_gap``: see the module docstring.
    """
    sounding = [n for n in notes if n.pitch is not None]
    T = roll_length(sounding) if n_steps is None else int(n_steps)
    roll = np.zeros((T, pitch_range.size), dtype=bool)          # (T, P)
    spans: list[tuple[int, int, int]] = []                      # (column, start, end) frames
    for n in sounding:
        column = pitch_range.index(int(n.pitch))
        if column is None:
            continue
        start = _steps(n.start)
        end = max(start + 1, _steps(n.start + n.duration))
        spans.append((column, start, end))
    if restrike_gap:
        starts = {(c, s) for c, s, _ in spans}
        spans = [(c, s, e - 1 if (c, e) in starts and e - s > 1 else e) for c, s, e in spans]
    for column, start, end in spans:
        roll[max(start, 0):max(min(end, T), 0), column] = True
    return roll


def note_onsets(notes: Sequence[Note], pitch_range: PitchRange = OCTAVE_CUT,
                n_steps: int | None = None) -> np.ndarray:
    """The ``(T, P)`` bool onset roll: True on the frame where each note begins."""
    sounding = [n for n in notes if n.pitch is not None]
    T = roll_length(sounding) if n_steps is None else int(n_steps)
    onsets = np.zeros((T, pitch_range.size), dtype=bool)
    for n in sounding:
        column, start = pitch_range.index(int(n.pitch)), _steps(n.start)
        if column is not None and 0 <= start < T:
            onsets[start, column] = True
    return onsets


def roll_to_notes(roll: np.ndarray, pitch_range: PitchRange = OCTAVE_CUT,
                  onsets: np.ndarray | None = None, start: float = 0.0) -> list[Note]:
    """A ``(T, P)`` roll → notes sorted by start then pitch, times in beats from ``start``.

    Consecutive on-frames of a pitch merge into one note, unless ``onsets`` (same shape)
    is True on a frame inside the run, which then begins a new note.
    """
    roll = _check_roll(roll, pitch_range)
    T, P = roll.shape
    notes: list[Note] = []
    for column in range(P):
        on = roll[:, column]
        t = 0
        while t < T:
            if not on[t]:
                t += 1
                continue
            begin = t
            t += 1
            while t < T and on[t] and not (onsets is not None and onsets[t, column]):
                t += 1
            notes.append(Note(pitch_range.pitch(column), start + begin * STEP_BEATS,
                              (t - begin) * STEP_BEATS))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes


def roll_to_steps(roll: np.ndarray, pitch_range: PitchRange = OCTAVE_CUT,
                  previous: np.ndarray | None = None,
                  onsets: np.ndarray | None = None) -> list[Step]:
    """A ``(T, P)`` roll → T ``Step``s for the daemon (see ``riffd.engine.generator``).

    A pitch on in frame t and in frame t−1 is held (unless ``onsets`` marks it, then it is
    re-struck); otherwise it starts. ``previous``: the ``(P,)`` frame before the roll (the
    last frame of the previous bar), so a note can be held across the bar line.
    """
    roll = _check_roll(roll, pitch_range)
    before = np.zeros(roll.shape[1], dtype=bool) if previous is None else previous.astype(bool)
    steps: list[Step] = []
    for t in range(roll.shape[0]):
        frame = roll[t]
        held = frame & before
        if onsets is not None:
            held &= ~onsets[t].astype(bool)
        started = frame & ~held
        steps.append(Step(starts=tuple(pitch_range.low + int(i) for i in np.flatnonzero(started)),
                          holds=tuple(pitch_range.low + int(i) for i in np.flatnonzero(held))))
        before = frame
    return steps


def transpose_to_reference(notes: Sequence[Note]) -> tuple[list[Note], Key, int]:
    """Move notes to C major / A minor from their estimated key.

    Returns (moved notes, the key they were in, the shift in semitones, −6 … +5).
    """
    key = estimate_key(notes)
    shift = key.shift_to_reference()
    moved = [n if n.pitch is None else Note(n.pitch + shift, n.start, n.duration) for n in notes]
    return moved, key, shift


def _check_roll(roll: np.ndarray, pitch_range: PitchRange) -> np.ndarray:
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != pitch_range.size:
        raise ValueError(f"a piano roll must have shape (frames, {pitch_range.size}) for the "
                         f"pitch range {pitch_range.low}–{pitch_range.high}; got {roll.shape}")
    return roll.astype(bool, copy=False)
