"""Songs → notewise events (pitch token, duration token) with a cache.

Every note and chord of a score is read with its onset and length in beats; a song is
moved to C major / A minor (key estimated from its notes, as at serve time) when the
recipe asks, then encoded with ``engine.notewise_representation`` in the recipe's variant.
MIDI files give their melody track only (``melody_only``, see training.melody_extraction).
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from engine.key_finding import estimate_key
from engine.melody_representation import Note
from engine.notewise_representation import Event, check_variant, encode_events, transpose_event
from training.corpus import iter_scores, resolve_corpus
from training.notewise_config import NotewiseDataConfig

log = logging.getLogger(__name__)
CACHE_VERSION = 1
MIN_EVENTS = 4


@dataclass
class NotewiseCorpus:
    """Encoded songs split by song into training and validation sets."""

    train: list[list[Event]]
    val: list[list[Event]]
    dropped: dict[str, int]
    files: int


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


def _cache_key(paths: list[Path], cfg: NotewiseDataConfig) -> str:
    h = hashlib.sha256(f"notewise-v{CACHE_VERSION}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(json.dumps([cfg.max_songs, cfg.variant, cfg.transpose, cfg.melody_only]).encode())
    return h.hexdigest()[:20]


def encode_corpus(cfg: NotewiseDataConfig) -> tuple[list[list[Event]], dict[str, int], int]:
    """Encode every song of the corpus (cached); returns songs, drop counts, file count."""
    check_variant(cfg.variant)
    paths = resolve_corpus(cfg.corpus)
    cache = Path(cfg.cache_dir) / f"notewise-{_cache_key(paths, cfg)}.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        songs = [[tuple(e) for e in song] for song in stored["songs"]]
        log.info("using cached encoding %s (%d songs)", cache, len(songs))
        return songs, stored["dropped"], len(paths)
    songs: list[list[Event]] = []
    dropped: Counter[str] = Counter()
    with tqdm(total=len(paths), desc="parsing corpus", unit="file") as bar:
        for path in paths:
            if cfg.max_songs and len(songs) >= cfg.max_songs:
                break
            for _, score in iter_scores(path, melody_only=cfg.melody_only):
                if cfg.max_songs and len(songs) >= cfg.max_songs:
                    break
                events, reason = score_to_events(score, cfg.variant, cfg.transpose)
                if events is None:
                    dropped[reason] += 1
                else:
                    songs.append(events)
                bar.set_postfix(songs=len(songs), dropped=sum(dropped.values()))
            bar.update(1)
    log.info("encoded %d songs from %d files; dropped %s", len(songs), len(paths), dict(dropped))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{random.getrandbits(32):08x}.tmp")
    tmp.write_text(json.dumps({"songs": songs, "dropped": dict(dropped)}))
    tmp.replace(cache)
    return songs, dict(dropped), len(paths)


def load_notewise_corpus(cfg: NotewiseDataConfig, seed: int) -> NotewiseCorpus:
    """Encode the corpus and split it by song with a seeded shuffle."""
    songs, dropped, files = encode_corpus(cfg)
    if len(songs) < 2:
        raise ValueError(f"the corpus {cfg.corpus} gave {len(songs)} usable songs "
                         f"(dropped: {dropped}); at least 2 are needed")
    order = list(range(len(songs)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(songs) * cfg.val_fraction))
    return NotewiseCorpus(train=[songs[i] for i in order[n_val:]],
                          val=[songs[i] for i in order[:n_val]], dropped=dropped, files=files)
