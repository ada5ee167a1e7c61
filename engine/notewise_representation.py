"""The notewise encoding: one event per note (or chord, or rest) with a pitch and a duration token.

Notes are grouped by onset. Each group becomes one event whose pitch token depends on the
variant (the LSTM document's three):
  ``chords``  a chord is its own token, the sorted pitches joined by dots (``"60.64.67"``)
  ``root``    a chord is its root's pitch (a single note is its pitch)
  ``rests``   as ``root``, and silences become events with the pitch token ``"r"``
Without rests, an event lasts until the next onset (a silence is added to the note before
it, so timing is kept); with rests an event lasts as long as its longest note, and a gap
before the next onset becomes a rest event. Durations are in beats (quarter notes),
snapped to the nearest value of ``DURATIONS``; longer silences are cut into several rests.
A song starts with the delimiter event ``("/", "/")``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from riffd.engine.melody_representation import Note

DURATIONS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)   # beats: 16th … whole note
VARIANTS = ("chords", "root", "rests")
DELIMITER = "/"
REST = "r"
PITCH_SPECIALS = (DELIMITER, REST)
DURATION_SPECIALS = (DELIMITER,)
CHORD_SEPARATOR = "."

Event = tuple[str, str]          # (pitch token, duration token)

# how strongly an interval above a candidate root says "this is the root" (triads, sevenths)
_ROOT_WEIGHTS = {0: 0, 3: 2, 4: 2, 7: 3, 10: 1, 11: 1, 6: 1, 8: 1, 9: 1}


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"notewise variant {variant!r} is unknown; use one of {', '.join(VARIANTS)}")
    return variant


def quantize_duration(beats: float) -> float:
    """The nearest value of ``DURATIONS`` (ties go to the shorter)."""
    return min(DURATIONS, key=lambda d: (abs(d - beats), d))


def duration_token(beats: float) -> str:
    return f"{quantize_duration(beats):g}"


def chord_root(pitches: Sequence[int]) -> int:
    """The root of a chord, as the lowest chord member with the root's pitch class.

    Each pitch class is scored by the intervals of the other members above it (a fifth
    counts most, then thirds, then sevenths); ties go to the bass.
    """
    ordered = sorted(set(pitches))
    classes = list(dict.fromkeys(p % 12 for p in ordered))         # bass first

    def score(root_pc: int) -> int:
        return sum(_ROOT_WEIGHTS.get((pc - root_pc) % 12, 0) for pc in classes)

    best = max(classes, key=lambda pc: (score(pc), -classes.index(pc)))
    return next(p for p in ordered if p % 12 == best)


def pitch_token(pitches: Sequence[int], variant: str) -> str:
    pitches = sorted(set(int(p) for p in pitches))
    if len(pitches) == 1:
        return str(pitches[0])
    if variant == "chords":
        return CHORD_SEPARATOR.join(str(p) for p in pitches)
    return str(chord_root(pitches))


def token_pitches(token: str) -> tuple[int, ...]:
    """MIDI pitches a pitch token plays (empty for the rest and the delimiter)."""
    if token in PITCH_SPECIALS:
        return ()
    return tuple(int(p) for p in token.split(CHORD_SEPARATOR))


def _rest_events(beats: float) -> list[Event]:
    events = []
    while beats >= DURATIONS[0] / 2:
        d = quantize_duration(min(beats, DURATIONS[-1]))
        events.append((REST, f"{d:g}"))
        beats -= d
    return events


def encode_events(notes: Sequence[Note], variant: str) -> list[Event]:
    """Notes (times in beats, rests ignored) → events of the variant, without delimiter."""
    check_variant(variant)
    groups: dict[float, list[Note]] = {}
    for n in notes:
        if n.pitch is not None and n.duration > 0:
            groups.setdefault(round(n.start * 48) / 48, []).append(n)
    onsets = sorted(groups)
    events: list[Event] = []
    if variant == "rests" and onsets and onsets[0] > 0:
        events.extend(_rest_events(onsets[0]))
    for i, onset in enumerate(onsets):
        group = groups[onset]
        token = pitch_token([n.pitch for n in group], variant)
        end = max(onset + n.duration for n in group)
        following = onsets[i + 1] if i + 1 < len(onsets) else None
        if following is None:
            events.append((token, duration_token(end - onset)))
        elif variant == "rests" and end < following:
            events.append((token, duration_token(end - onset)))
            events.extend(_rest_events(following - end))
        else:
            events.append((token, duration_token(following - onset)))
    return events


def decode_events(events: Iterable[Event], start: float = 0.0) -> list[Note]:
    """Events → notes one after the other from ``start`` (beats); a delimiter is skipped."""
    notes: list[Note] = []
    t = start
    for pitch, duration in events:
        if pitch == DELIMITER:
            continue
        d = float(duration)
        notes.extend(Note(p, t, d) for p in token_pitches(pitch))
        t += d
    return notes


def transpose_event(event: Event, semitones: int) -> Event:
    pitch, duration = event
    if pitch in PITCH_SPECIALS:
        return event
    return CHORD_SEPARATOR.join(str(p + semitones) for p in token_pitches(pitch)), duration


@dataclass
class NotewiseVocabulary:
    """Pitch and duration tokens ↔ ids; the specials come first in each list."""

    variant: str
    pitch_tokens: list[str]
    duration_tokens: list[str]

    def __post_init__(self):
        check_variant(self.variant)
        self._pitch = {t: i for i, t in enumerate(self.pitch_tokens)}
        self._duration = {t: i for i, t in enumerate(self.duration_tokens)}

    @classmethod
    def from_songs(cls, songs: Iterable[Sequence[Event]], variant: str) -> "NotewiseVocabulary":
        """Specials, then pitch tokens by lowest pitch, then durations by length."""
        pitches, durations = set(), set()
        for song in songs:
            for p, d in song:
                if p not in PITCH_SPECIALS:
                    pitches.add(p)
                if d not in DURATION_SPECIALS:
                    durations.add(d)
        return cls(variant, list(PITCH_SPECIALS) + sorted(pitches, key=token_pitches),
                   list(DURATION_SPECIALS) + sorted(durations, key=float))

    @classmethod
    def from_metadata(cls, data: dict) -> "NotewiseVocabulary":
        return cls(data["variant"], list(data["pitch_tokens"]), list(data["duration_tokens"]))

    def to_metadata(self) -> dict:
        return {"variant": self.variant, "pitch_tokens": self.pitch_tokens,
                "duration_tokens": self.duration_tokens}

    def encode(self, events: Iterable[Event]) -> tuple[list[int], list[int]]:
        """Events → (pitch ids, duration ids); an unknown token raises KeyError naming it."""
        pitch_ids, duration_ids = [], []
        for p, d in events:
            pitch_ids.append(self._pitch[p])
            duration_ids.append(self._duration[d])
        return pitch_ids, duration_ids

    def has(self, event: Event) -> bool:
        return event[0] in self._pitch and event[1] in self._duration

    def pitch_id(self, token: str) -> int:
        return self._pitch[token]

    def duration_id(self, token: str) -> int:
        return self._duration[token]

    def nearest_pitch_token(self, pitch: int) -> str:
        """The single-pitch token closest to ``pitch``, moved by octaves first."""
        singles = [int(t) for t in self.pitch_tokens if t not in PITCH_SPECIALS
                   and CHORD_SEPARATOR not in t]
        if not singles:
            raise ValueError("the vocabulary has no single-pitch token")
        lo, hi = min(singles), max(singles)
        p = pitch
        while p < lo:
            p += 12
        while p > hi:
            p -= 12
        return str(min(singles, key=lambda s: (abs(s - p), s)))
