"""Songs → 16th-note token sequences for the melody LSTM, with a cache.

Each song is transposed to C major / A minor from its analysed key, then encoded with
``engine.melody_representation``. Songs with chords, or with durations outside the
recipe's acceptable list, are dropped and counted.
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

from engine.key_finding import Key
from engine.melody_representation import Note, OffGrid, encode_notes
from training.corpus import iter_scores, resolve_corpus
from training.melody_config import MelodyDataConfig as DataConfig

log = logging.getLogger(__name__)
CACHE_VERSION = 2   # 2: MIDI files contribute only their melody track


@dataclass
class MelodyCorpus:
    """Encoded songs split by song into training and validation sets."""

    train: list[list[str]]
    val: list[list[str]]
    dropped: dict[str, int]
    files: int


def score_to_tokens(score, acceptable: set[float], transpose: bool) -> tuple[list[str] | None, str]:
    """Encode one music21 score; returns (tokens, "") or (None, reason it was dropped)."""
    notes: list[Note] = []
    for element in score.flatten().notesAndRests:
        if element.isChord:
            return None, "chords"
        duration = float(element.quarterLength)
        if duration == 0:
            continue                              # grace notes
        if duration not in acceptable:
            return None, "durations"
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


def _cache_key(paths: list[Path], cfg: DataConfig) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(json.dumps([cfg.max_songs, cfg.acceptable_durations, cfg.transpose]).encode())
    return h.hexdigest()[:20]


def encode_corpus(cfg: DataConfig) -> tuple[list[list[str]], dict[str, int], int]:
    """Encode every song of the corpus (cached); returns songs, drop counts, file count."""
    paths = resolve_corpus(cfg.corpus)
    cache = Path(cfg.cache_dir) / f"melody-{_cache_key(paths, cfg)}.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        log.info("using cached encoding %s (%d songs)", cache, len(stored["songs"]))
        return stored["songs"], stored["dropped"], len(paths)
    acceptable = set(cfg.acceptable_durations)
    songs: list[list[str]] = []
    dropped: Counter[str] = Counter()
    with tqdm(total=len(paths), desc="parsing corpus", unit="file") as bar:
        for path in paths:
            if cfg.max_songs and len(songs) >= cfg.max_songs:
                break
            for _, score in iter_scores(path, melody_only=True):
                if cfg.max_songs and len(songs) >= cfg.max_songs:
                    break
                tokens, reason = score_to_tokens(score, acceptable, cfg.transpose)
                if tokens is None:
                    dropped[reason] += 1
                else:
                    songs.append(tokens)
                bar.set_postfix(songs=len(songs), dropped=sum(dropped.values()))
            bar.update(1)
    log.info("encoded %d songs from %d files; dropped %s", len(songs), len(paths), dict(dropped))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"songs": songs, "dropped": dict(dropped)}))
    tmp.replace(cache)
    return songs, dict(dropped), len(paths)


def load_melody_corpus(cfg: DataConfig, seed: int) -> MelodyCorpus:
    """Encode the corpus and split it by song with a seeded shuffle."""
    songs, dropped, files = encode_corpus(cfg)
    if len(songs) < 2:
        raise ValueError(f"the corpus {cfg.corpus} gave {len(songs)} usable songs "
                         f"(dropped: {dropped}); at least 2 are needed")
    order = list(range(len(songs)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(songs) * cfg.val_fraction))
    val = [songs[i] for i in order[:n_val]]
    train = [songs[i] for i in order[n_val:]]
    return MelodyCorpus(train=train, val=val, dropped=dropped, files=files)
