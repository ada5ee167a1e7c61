"""The melody document's encoding: one token per 16th-note step.

A step holds the MIDI pitch of a note that starts there (``"60"``), ``"r"`` for a rest
that starts there, or ``"_"`` while the previous note or rest is held. Songs are
separated by the delimiter ``"/"``. Time is measured in steps; one step is
``STEP_BEATS`` quarter notes (a 16th note).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

STEP_BEATS = 0.25          # one token = a 16th note = 0.25 quarter-note beats
HOLD = "_"
REST = "r"
DELIMITER = "/"
SPECIAL_TOKENS = (DELIMITER, REST, HOLD)


@dataclass(frozen=True)
class Note:
    """A note (or a rest when ``pitch`` is None) on the beat grid.

    ``start`` and ``duration`` are in beats (quarter notes).
    """

    pitch: int | None
    start: float
    duration: float


class OffGrid(ValueError):
    """A note does not start or end on the 16th-note grid."""


def _to_steps(beats: float) -> int:
    steps = beats / STEP_BEATS
    rounded = round(steps)
    if abs(steps - rounded) > 1e-6:
        raise OffGrid(f"{beats} beats is not a whole number of 16th notes")
    return rounded


def encode_notes(notes: Sequence[Note]) -> list[str]:
    """Encode monophonic notes (sorted by start) as step tokens.

    Gaps between notes become rests. Overlaps are cut: a note ends where the next one
    starts. Raises ``OffGrid`` when a start or duration is not on the 16th grid.
    """
    tokens: list[str] = []
    events = sorted(notes, key=lambda n: n.start)
    for i, note in enumerate(events):
        start = _to_steps(note.start)
        if start > len(tokens):                     # silence before this note
            tokens.append(REST)
            tokens.extend(HOLD * (start - len(tokens)))
        elif start < len(tokens):                   # overlap: cut the previous note
            del tokens[start:]
        length = _to_steps(note.duration)
        if length <= 0:
            continue
        tokens.append(REST if note.pitch is None else str(int(note.pitch)))
        tokens.extend(HOLD * (length - 1))
    return tokens


def decode_tokens(tokens: Iterable[str], start: float = 0.0) -> list[Note]:
    """Turn step tokens back into sounding notes (rests dropped), times in beats.

    A hold at the very beginning, or after a delimiter, has nothing to hold and is
    ignored. A delimiter ends the current note.
    """
    notes: list[Note] = []
    current_pitch: int | None = None
    current_start = 0
    step = 0

    def close(end_step: int) -> None:
        if current_pitch is not None and end_step > current_start:
            notes.append(Note(current_pitch, start + current_start * STEP_BEATS,
                              (end_step - current_start) * STEP_BEATS))

    for token in tokens:
        if token == HOLD:
            step += 1
            continue
        close(step)
        current_pitch = None
        if token not in (REST, DELIMITER):
            current_pitch = int(token)
            current_start = step
        step += 1
    close(step)
    return notes


def transpose_tokens(tokens: Iterable[str], semitones: int) -> list[str]:
    """Shift every pitch token by ``semitones``; special tokens are kept."""
    return [t if t in SPECIAL_TOKENS else str(int(t) + semitones) for t in tokens]


def transpose_notes(notes: Iterable[Note], semitones: int) -> list[Note]:
    """Shift every sounding note by ``semitones``."""
    return [n if n.pitch is None else Note(n.pitch + semitones, n.start, n.duration)
            for n in notes]


class Vocabulary:
    """Maps tokens to integer ids and back; special tokens come first."""

    def __init__(self, tokens: Sequence[str]):
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.tokens = list(tokens)
        self._index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def from_songs(cls, songs: Iterable[Sequence[str]]) -> "Vocabulary":
        """Build a vocabulary: the special tokens, then pitches from low to high."""
        pitches = sorted({int(t) for song in songs for t in song if t not in SPECIAL_TOKENS})
        return cls(list(SPECIAL_TOKENS) + [str(p) for p in pitches])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def id(self, token: str) -> int:
        return self._index[token]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self._index[t] for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def pitches(self) -> dict[int, int]:
        """Token id → MIDI pitch for every pitch token."""
        return {i: int(t) for i, t in enumerate(self.tokens) if t not in SPECIAL_TOKENS}

    def fit_pitch(self, pitch: int) -> int:
        """The nearest pitch the vocabulary knows, moved by octaves first.

        A seed note outside the trained range is moved by whole octaves into it when
        possible, else clamped to the closest known pitch.
        """
        known = sorted(self.pitches().values())
        if not known or pitch in known:
            return pitch
        lo, hi = known[0], known[-1]
        p = pitch
        while p < lo:
            p += 12
        while p > hi:
            p -= 12
        if p < lo:
            p = lo
        return min(known, key=lambda k: (abs(k - p), k))
