"""Picking the melody track of a multi-track MIDI file (the LSTM document's heuristics).

Each track with notes (drums on channel 10 are never the melody) gets four features:
the variance of its pitches, the number of distinct pitches, its length (beats from its
first onset to its last note-off: a melody persists through the song) and its mean pitch.
Each feature is divided by its largest value over the file's tracks, and the track with
the highest weighted sum wins, with the document's weights 0.4, 0.25, 0.25 and 0.1.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from engine.melody_representation import STEP_BEATS, Note

WEIGHTS = {"pitch_variance": 0.4, "distinct_pitches": 0.25, "length_beats": 0.25,
           "mean_pitch": 0.1}
DRUM_CHANNEL = 9                          # MIDI channel 10, counted from 0


@dataclass
class TrackNotes:
    """The notes of one MIDI track (times in beats) and its name."""

    index: int
    name: str
    notes: list[Note]


def read_midi_tracks(path: str | Path) -> list[TrackNotes]:
    """Every track of a MIDI file with its non-drum notes (beats = ticks / ticks per beat)."""
    import mido
    try:
        midi = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path} cannot be read as a MIDI file ({exc})") from exc
    per_beat = midi.ticks_per_beat
    tracks = []
    for index, track in enumerate(midi.tracks):
        ticks, name = 0, track.name or f"track {index}"
        sounding: dict[tuple[int, int], list[int]] = {}
        notes: list[Note] = []
        for msg in track:
            ticks += msg.time
            if msg.type not in ("note_on", "note_off") or msg.channel == DRUM_CHANNEL:
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault(key, []).append(ticks)
            elif sounding.get(key):
                start = sounding[key].pop(0)
                if ticks > start:
                    notes.append(Note(msg.note, start / per_beat, (ticks - start) / per_beat))
        notes.sort(key=lambda n: (n.start, n.pitch))
        tracks.append(TrackNotes(index, name, notes))
    return tracks


def track_features(notes: list[Note]) -> dict[str, float]:
    """The four heuristics of one track (pitches in MIDI numbers, length in beats)."""
    pitches = [n.pitch for n in notes]
    return {"pitch_variance": statistics.pvariance(pitches) if len(pitches) > 1 else 0.0,
            "distinct_pitches": float(len(set(pitches))),
            "length_beats": max(n.start + n.duration for n in notes) - min(n.start for n in notes),
            "mean_pitch": statistics.fmean(pitches)}


def melody_scores(tracks: list[TrackNotes]) -> dict[int, float]:
    """Track index → weighted score, for the tracks that have notes."""
    features = {t.index: track_features(t.notes) for t in tracks if t.notes}
    top = {name: max((f[name] for f in features.values()), default=0.0) for name in WEIGHTS}
    return {index: sum(weight * (f[name] / top[name] if top[name] > 0 else 0.0)
                       for name, weight in WEIGHTS.items())
            for index, f in features.items()}


def pick_melody(tracks: list[TrackNotes]) -> TrackNotes:
    """The track most likely to hold the melody; ties go to the earlier track."""
    scores = melody_scores(tracks)
    if not scores:
        raise ValueError("the MIDI file has no notes outside the drum channel")
    best = max(scores, key=lambda i: (scores[i], -i))
    return next(t for t in tracks if t.index == best)


def quantize(notes: list[Note], step: float = STEP_BEATS) -> list[Note]:
    """Snap starts and ends to a grid of ``step`` beats (a note keeps at least one step)."""
    out = []
    for n in notes:
        start = round(n.start / step) * step
        end = max(start + step, round((n.start + n.duration) / step) * step)
        out.append(Note(n.pitch, start, end - start))
    return out


def extract_melody(path: str | Path) -> list[Note]:
    """The melody track's notes, on the 16th grid (times in beats)."""
    return quantize(pick_melody(read_midi_tracks(path)).notes)


def melody_score(path: str | Path):
    """The melody track as a music21 score (notes sounding together become chords), so the
    corpus readers treat it like any parsed score."""
    from music21 import chord, note, stream
    groups: dict[float, list[Note]] = {}
    for n in extract_melody(path):
        groups.setdefault(n.start, []).append(n)
    part = stream.Part()
    for start in sorted(groups):
        group = groups[start]
        length = min(n.duration for n in group)
        element = (note.Note(group[0].pitch) if len(group) == 1
                   else chord.Chord(sorted({n.pitch for n in group})))
        element.quarterLength = length
        part.insert(start, element)
    score = stream.Score()
    score.insert(0, part)
    return score
