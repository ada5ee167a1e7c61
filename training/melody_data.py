"""Songs → 16th-note token sequences for the melody LSTM, with a cache.

Each song is transposed to C major / A minor from its analysed key, then encoded with
``riffd.engine.melody_representation``. Scores read from MusicXML, kern or ABC with chords, or
with durations outside the recipe's acceptable list, are dropped and counted (the
document's rule). MIDI files give their melody track's line, already one note at a time on
the 16th grid (``riffd.training.melody_extraction``); a length there that the list lacks is
fitted (``fit_duration``) instead of dropping the song.
"""
from __future__ import annotations

from riffd.engine.key_finding import Key
from riffd.engine.melody_representation import Note, OffGrid, encode_notes
from riffd.training.corpus import CorpusReport
from riffd.training.melody_config import MelodyDataConfig as DataConfig
from riffd.training.song_cache import encode_songs
from riffd.training.song_corpus import SongCorpus, split_songs

CACHE_VERSION = 3   # 2: MIDI files contribute only their melody track; 3: drums, skyline, fit
DURATION_TOLERANCE_BEATS = 0.25     # a 16th: how far a MIDI note's length may be snapped


def fit_duration(duration: float, acceptable: list[float]) -> float:
    """A MIDI note's length (beats, on the 16th grid) made one of the acceptable lengths.

    The nearest acceptable length within ``DURATION_TOLERANCE_BEATS`` (0.25 beats, the
    shorter on a tie) is taken: 1.25 beats becomes 1.0. A longer length further from the
    list is cut to the longest acceptable length below it and a rest fills the gap (2.5
    beats → 2.0 and a rest of 0.5; onsets never move); a shorter one takes the shortest.
    """
    if duration in acceptable:
        return duration
    near = min(acceptable, key=lambda a: (abs(a - duration), a))
    if abs(near - duration) <= DURATION_TOLERANCE_BEATS + 1e-9:
        return near
    below = [a for a in acceptable if a < duration]
    return max(below) if below else min(acceptable)


MelodyCorpus = SongCorpus[str]                # songs of melody tokens


def score_to_tokens(score, acceptable: set[float], transpose: bool) -> tuple[list[str] | None, str]:
    """Encode one music21 score; returns (tokens, "") or (None, reason it was dropped)."""
    from_midi = getattr(score, "riffd_quantized", False)      # see melody_extraction
    ordered = sorted(acceptable)
    notes: list[Note] = []
    for element in score.flatten().notesAndRests:
        if element.isChord:
            return None, "chords"
        duration = float(element.quarterLength)
        if duration == 0:
            continue                              # grace notes
        if duration not in acceptable:
            if not from_midi:
                return None, "durations"
            duration = fit_duration(duration, ordered)
        notes.append(Note(None if element.isRest else element.pitch.midi,
                          float(element.offset), duration))
    if not any(n.pitch is not None for n in notes):
        return None, "empty"
    shift = 0
    if transpose:
        analysed = score.analyze("key")
        shift = Key(analysed.tonic.pitchClass, analysed.mode).shift_to_reference()
    notes = [Note(None if n.pitch is None else n.pitch + shift, n.start, n.duration)
             for n in notes]
    try:
        return encode_notes(notes), ""
    except OffGrid:
        return None, "off grid"


def encode_corpus(cfg: DataConfig) -> tuple[list[list[str]], CorpusReport]:
    """Encode every song of the corpus (cached); returns songs and the corpus report."""
    acceptable = set(cfg.acceptable_durations)
    return encode_songs(f"melody-v{CACHE_VERSION}", cfg.corpus,
                        [cfg.max_songs, cfg.acceptable_durations, cfg.transpose],
                        lambda score: score_to_tokens(score, acceptable, cfg.transpose),
                        cfg.cache_dir, cfg.max_songs, melody_only=True)


def load_melody_corpus(cfg: DataConfig, seed: int) -> MelodyCorpus:
    """Encode the corpus and split it by song with a seeded shuffle."""
    songs, report = encode_corpus(cfg)
    return split_songs(songs, report, cfg.corpus, cfg.val_fraction, seed)
