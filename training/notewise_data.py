"""Songs → notewise events (pitch token, duration token) with a cache.

Every note and chord of a score is read with its onset and length in beats; a song is
moved to C major / A minor (key estimated from its notes, as at serve time) when the
recipe asks, then encoded with ``riffd.engine.notewise_representation`` in the recipe's variant.
MIDI files give their melody track only (``melody_only``, see training.melody_extraction).
"""
from __future__ import annotations

from riffd.engine.key_finding import estimate_key
from riffd.engine.melody_representation import Note
from riffd.engine.notewise_representation import Event, check_variant, encode_events, transpose_event
from riffd.training.corpus import CorpusReport
from riffd.training.notewise_config import NotewiseDataConfig
from riffd.training.song_cache import encode_songs
from riffd.training.song_corpus import SongCorpus, split_songs

CACHE_VERSION = 2          # 2: MIDI drums left out, melody skyline
MIN_EVENTS = 4


NotewiseCorpus = SongCorpus[Event]            # songs of (pitch, duration) events


def score_notes(score) -> list[Note]:
    """Every sounding note of a music21 score (chords give one Note per pitch), in beats."""
    notes = []
    for element in score.flatten().notes:
        duration = float(element.quarterLength)
        if duration <= 0:
            continue                                    # grace notes
        pitches = [p.midi for p in element.pitches]
        notes.extend(Note(p, float(element.offset), duration) for p in pitches)
    return notes


def score_to_events(score, variant: str, transpose: bool) -> tuple[list[Event] | None, str]:
    """Encode one score; returns (events, "") or (None, why it was dropped)."""
    notes = score_notes(score)
    if not notes:
        return None, "empty"
    events = encode_events(notes, variant)
    if len(events) < MIN_EVENTS:
        return None, "too short"
    if transpose:
        shift = estimate_key(notes).shift_to_reference()
        events = [transpose_event(e, shift) for e in events]
    return events, ""


def encode_corpus(cfg: NotewiseDataConfig) -> tuple[list[list[Event]], CorpusReport]:
    """Encode every song of the corpus (cached); returns songs and the corpus report."""
    check_variant(cfg.variant)
    songs, report = encode_songs(
        f"notewise-v{CACHE_VERSION}", cfg.corpus,
        [cfg.max_songs, cfg.variant, cfg.transpose, cfg.melody_only],
        lambda score: score_to_events(score, cfg.variant, cfg.transpose),
        cfg.cache_dir, cfg.max_songs, melody_only=cfg.melody_only)
    return [[tuple(e) for e in song] for song in songs], report


def load_notewise_corpus(cfg: NotewiseDataConfig, seed: int) -> NotewiseCorpus:
    """Encode the corpus and split it by song with a seeded shuffle."""
    songs, report = encode_corpus(cfg)
    return split_songs(songs, report, cfg.corpus, cfg.val_fraction, seed)
