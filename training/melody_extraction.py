"""Reading multi-track MIDI files: drums out, the melody track picked, its line made playable.

Times are in beats (quarter notes) = ticks / ticks per beat, so tempo changes never move a
note: a song that slows down keeps its bars. The tempo map and the time signatures are read
too (``MidiDocument.tempos``, ``.time_signatures``, both stamped in beats).

**Drums** are never notes of a melody or of a roll. A note is a drum hit when
  - it is on MIDI channel 10 (index 9), or
  - its channel was given a percussive General MIDI program (agogo, woodblock, taiko, melodic
    tom, synth drum, reverse cymbal) or a drum bank (bank select 120, GM2, or 127, XG), or
  - its track is named like drums ("Drums", "Perc", "Kit", "Snare", "Hi-hat"…), whatever
    its channel.

**The melody track** is, first, a track named like a melody ("Melody 1", "Lead", "Vocal",
"Voice", "Solo", "Theme", "Soprano", "Right Hand"…) with enough notes
(``MIN_MELODY_NOTES``). Among several such tracks, or when no track has such a name, the
document's heuristic decides: each track with notes gets four features (the variance of its
pitches, the number of distinct pitches, its length in beats from its first onset to its
last note-off, and its mean pitch), each divided by its largest value over the file's
tracks, and the highest weighted sum wins with the document's weights 0.4, 0.25, 0.25 and
0.1. Without a named track, a chordal track (two or more notes at more than
``CHORDAL_SHARE`` of its onsets: a pianist's comping, a pad) is accompaniment and only
chosen when every track is chordal.

**The melody line** is then quantized to the 16th grid (every onset and release moves by at
most ``GRID_TOLERANCE_BEATS`` = 0.125 beats, half a 16th; a note keeps at least one 16th) and
reduced to its skyline: where the track plays a chord, its top note is kept.
"""
from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from riffd.engine.keyed_generator import quantize_notes
from riffd.engine.melody_representation import STEP_BEATS, Note

WEIGHTS = {"pitch_variance": 0.4, "distinct_pitches": 0.25, "length_beats": 0.25,
           "mean_pitch": 0.1}
DRUM_CHANNEL = 9                          # MIDI channel 10, counted from 0
# General MIDI programs (from 0) that are unpitched percussion: agogo, woodblock, taiko drum,
# melodic tom, synth drum, reverse cymbal (tinkle bell and steel drums are pitched)
PERCUSSIVE_PROGRAMS = frozenset({113, 115, 116, 117, 118, 119})
DRUM_BANKS = frozenset({120, 127})       # bank select MSB: GM2 rhythm (120), XG drum kit (127)
# "Percussive Organ" and "Steel Drums" are pitched General MIDI instruments
DRUM_NAME = re.compile(r"(?<!steel )drum|perc(?!ussive)|\bkit\b|hi-?hat|snare|kick|cymbal|"
                       r"\btoms?\b|conga|bongo|tabla|shaker|tambourine|cajon|clap", re.IGNORECASE)
MELODY_NAME = re.compile(r"melod|\blead|vocal|voice|\bvox\b|\bsolo|\bsing(er|ers|ing)?\b|"
                         r"\btheme\b|\btune\b|sopran|right hand|\brh\b", re.IGNORECASE)
MIN_MELODY_NOTES = 8        # a named track with fewer notes (and fewer than the fullest
                            # track has) is not trusted
CHORDAL_SHARE = 0.5                       # share of onsets with 2+ notes: accompaniment
GRID_TOLERANCE_BEATS = STEP_BEATS / 2     # 0.125 beats: the most a time moves when quantized


@dataclass
class TrackNotes:
    """The pitched notes of one MIDI track (times in beats), its name, and, when the whole
    track is percussion, why (``drums``: "" for a pitched track)."""

    index: int
    name: str
    notes: list[Note]
    drums: str = ""
    drum_hits: int = 0                    # notes left out as drum hits


@dataclass
class MidiDocument:
    """A MIDI file's tracks with its tempo map and time signatures.

    tempos: (beat, beats per minute) at each tempo change; time_signatures: (beat,
    numerator, denominator) at each change. Both start with the file's first value (120 bpm
    and 4/4 when the file sets none).
    """

    path: str
    tracks: list[TrackNotes]
    tempos: list[tuple[float, float]] = field(default_factory=list)
    time_signatures: list[tuple[float, int, int]] = field(default_factory=list)


def _drum_channels(midi) -> set[int]:
    """Channels that a program change or bank select makes percussive, besides channel 10."""
    drums = {DRUM_CHANNEL}
    for track in midi.tracks:
        for msg in track:
            if msg.type == "program_change" and msg.program in PERCUSSIVE_PROGRAMS:
                drums.add(msg.channel)
            elif (msg.type == "control_change" and msg.control == 0
                  and msg.value in DRUM_BANKS):
                drums.add(msg.channel)
    return drums


def read_midi(path: str | Path) -> MidiDocument:
    """Every track of a MIDI file with its pitched notes, its tempo map and time signatures.

    Data bytes above 127, which some editors write, are clipped rather than refused.
    Raises ``ValueError`` naming the file when it cannot be read as MIDI.
    """
    import mido
    try:
        midi = mido.MidiFile(str(path), clip=True)
    except Exception as exc:       # mido raises OSError, EOFError, ValueError, KeyError, …
        raise ValueError(f"{path} cannot be read as a MIDI file ({exc})") from exc
    return midi_document(midi, path)


def midi_document(midi, path: str | Path) -> MidiDocument:
    """The tracks (pitched notes, drum hits left out), tempo map and time signatures of a
    ``mido.MidiFile`` already read from ``path``."""
    import mido
    per_beat = midi.ticks_per_beat
    drum_channels = _drum_channels(midi)
    tracks, tempos, signatures = [], [], []
    for index, track in enumerate(midi.tracks):
        ticks, name = 0, (track.name or "").strip() or f"track {index}"
        whole_track_drums = "named like drums" if DRUM_NAME.search(name) else ""
        sounding: dict[tuple[int, int], list[int]] = {}
        notes: list[Note] = []
        hits = 0
        for msg in track:
            ticks += msg.time
            if msg.type == "set_tempo":
                tempos.append((ticks / per_beat, round(mido.tempo2bpm(msg.tempo), 3)))
            elif msg.type == "time_signature":
                signatures.append((ticks / per_beat, msg.numerator, msg.denominator))
            if msg.type not in ("note_on", "note_off"):
                continue
            if whole_track_drums or msg.channel in drum_channels:
                hits += msg.type == "note_on" and msg.velocity > 0
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault(key, []).append(ticks)
            elif sounding.get(key):
                start = sounding[key].pop(0)
                if ticks > start:
                    notes.append(Note(msg.note, start / per_beat, (ticks - start) / per_beat))
        for (_, pitch), starts in sounding.items():      # never released: end with the track
            notes.extend(Note(pitch, s / per_beat, (ticks - s) / per_beat)
                         for s in starts if ticks > s)
        notes.sort(key=lambda n: (n.start, n.pitch))
        if not whole_track_drums and hits and not notes:
            whole_track_drums = "drum channel"
        tracks.append(TrackNotes(index, name, notes, whole_track_drums, hits))
    tempos = sorted(tempos) or [(0.0, 120.0)]
    signatures = sorted(signatures) or [(0.0, 4, 4)]
    return MidiDocument(str(path), tracks, tempos, signatures)


def read_midi_tracks(path: str | Path) -> list[TrackNotes]:
    """Every track of a MIDI file with its pitched notes (drum hits left out), in beats."""
    return read_midi(path).tracks


def track_features(notes: list[Note]) -> dict[str, float]:
    """The four heuristics of one track (pitches in MIDI numbers, length in beats)."""
    pitches = [n.pitch for n in notes]
    return {"pitch_variance": statistics.pvariance(pitches) if len(pitches) > 1 else 0.0,
            "distinct_pitches": float(len(set(pitches))),
            "length_beats": max(n.start + n.duration for n in notes) - min(n.start for n in notes),
            "mean_pitch": statistics.fmean(pitches)}


def melody_scores(tracks: list[TrackNotes]) -> dict[int, float]:
    """Track index → weighted score, for the pitched tracks that have notes."""
    features = {t.index: track_features(t.notes) for t in tracks if t.notes and not t.drums}
    top = {name: max((f[name] for f in features.values()), default=0.0) for name in WEIGHTS}
    return {index: sum(weight * (f[name] / top[name] if top[name] > 0 else 0.0)
                       for name, weight in WEIGHTS.items())
            for index, f in features.items()}


def named_melody(track: TrackNotes, fullest: int = MIN_MELODY_NOTES) -> bool:
    """Whether a track's name says it holds the melody ("Melody 1", "Lead", "Vocal",
    "Soprano", "Right Hand"…) and it has enough notes to be one: ``MIN_MELODY_NOTES``, or
    as many as ``fullest`` (the note count of the file's fullest track) when that is fewer."""
    return (not track.drums and len(track.notes) >= min(MIN_MELODY_NOTES, fullest)
            and bool(track.notes) and MELODY_NAME.search(track.name) is not None)


def chordal(track: TrackNotes) -> bool:
    """Whether a track sounds chords at most of its onsets (an accompaniment)."""
    onsets: dict[float, int] = {}
    for n in quantize(track.notes):
        onsets[n.start] = onsets.get(n.start, 0) + 1
    return bool(onsets) and sum(c > 1 for c in onsets.values()) > CHORDAL_SHARE * len(onsets)


def melody_choice(tracks: list[TrackNotes]) -> tuple[TrackNotes, str]:
    """The track most likely to hold the melody and how it was chosen ("name" or
    "heuristic"); ties go to the earlier track."""
    scores = melody_scores(tracks)
    if not scores:
        raise ValueError("has no pitched notes (only drums, or no notes at all)")
    fullest = max(len(t.notes) for t in tracks if t.index in scores)
    named = {t.index for t in tracks if named_melody(t, fullest)}
    lines = {t.index for t in tracks if t.index in scores and not chordal(t)}
    pool = [i for i in scores if i in named] or [i for i in scores if i in lines] or list(scores)
    best = max(pool, key=lambda i: (scores[i], -i))
    return next(t for t in tracks if t.index == best), "name" if named else "heuristic"


def pick_melody(tracks: list[TrackNotes]) -> TrackNotes:
    """The track most likely to hold the melody (see ``melody_choice``)."""
    return melody_choice(tracks)[0]


def quantize(notes: list[Note], step: float = STEP_BEATS) -> list[Note]:
    """Snap onsets and releases to a grid of ``step`` beats (a note keeps at least one step).

    Each time moves to the nearest grid line, so by at most ``step / 2`` beats
    (``GRID_TOLERANCE_BEATS`` = 0.125 beats on the 16th grid): a performed 0.45-beat eighth
    becomes 0.5 beats, a triplet eighth at 0.333 beats starts at 0.25.
    """
    return quantize_notes(notes, step)


def skyline(notes: list[Note]) -> list[Note]:
    """A monophonic line from notes that may sound together (times in beats).

    At each onset the highest note is kept. A lower note that starts and ends under a
    higher one still sounding is accompaniment and left out; any other overlap cuts the
    earlier note where the next one starts (legato playing).
    """
    tops: dict[float, Note] = {}
    for n in notes:
        if n.start not in tops or n.pitch > tops[n.start].pitch:
            tops[n.start] = n
    line: list[Note] = []
    for n in (tops[s] for s in sorted(tops)):
        if line:
            prev = line[-1]
            prev_end = prev.start + prev.duration
            if n.pitch < prev.pitch and n.start + n.duration <= prev_end:
                continue
            if n.start < prev_end:
                line[-1] = Note(prev.pitch, prev.start, n.start - prev.start)
        line.append(n)
    return line


def melody_notes(tracks: list[TrackNotes]) -> list[Note]:
    """The melody track's line: quantized to the 16th grid, then its skyline."""
    return skyline(quantize(pick_melody(tracks).notes))


def extract_melody(path: str | Path) -> list[Note]:
    """The melody track's notes of a MIDI file, one at a time, on the 16th grid (beats)."""
    return melody_notes(read_midi_tracks(path))


def all_pitched_notes(tracks: list[TrackNotes]) -> list[Note]:
    """Every pitched note of a file's tracks (drums left out) on the 16th grid, by onset."""
    notes = [n for t in tracks if not t.drums for n in t.notes]
    if not notes:
        raise ValueError("has no pitched notes (only drums, or no notes at all)")
    return sorted(quantize(notes), key=lambda n: (n.start, n.pitch))


def notes_to_score(notes: list[Note], document: MidiDocument | None = None):
    """Notes (beats) as a one-part music21 score, so the corpus readers treat a MIDI file
    like any parsed score: notes with the same onset and length become a chord; the time
    signatures and tempo marks of ``document`` are placed at their beats. The score is
    flagged ``riffd_quantized`` (its times were put on the 16th grid here)."""
    from music21 import chord, meter, note, pitch, stream, tempo
    groups: dict[tuple[float, float], list[int]] = {}
    for n in notes:
        groups.setdefault((n.start, n.duration), []).append(n.pitch)
    part = stream.Part()
    if document is not None:
        for beat, numerator, denominator in document.time_signatures:
            part.insert(beat, meter.TimeSignature(f"{numerator}/{denominator}"))
        for beat, bpm in document.tempos:
            part.insert(beat, tempo.MetronomeMark(number=bpm))
    for (start, length), pitches in sorted(groups.items()):
        element = (note.Note(pitches[0]) if len(pitches) == 1
                   # Pitch objects: a chord of bare numbers spells itself slowly (~20 ms)
                   else chord.Chord([pitch.Pitch(midi=p) for p in sorted(set(pitches))]))
        element.quarterLength = length
        part.insert(start, element)
    score = stream.Score()
    score.insert(0, part)
    score.riffd_quantized = True
    return score


def midi_score(path: str | Path, melody_only: bool):
    """A MIDI file as a music21 score: its melody line (``melody_only``) or all its pitched
    notes, drums left out. Raises ``ValueError`` saying why the file gives nothing."""
    document = read_midi(path)
    notes = (melody_notes if melody_only else all_pitched_notes)(document.tracks)
    return notes_to_score(notes, document)


def melody_score(path: str | Path):
    """The melody line of a MIDI file as a music21 score (see ``midi_score``)."""
    return midi_score(path, melody_only=True)
