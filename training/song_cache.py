"""Encoding a corpus song by song, cached on disk, and splitting it by song.

The symbolic families differ only in how one score becomes a song (tokens, events); the
walk over the files, the drop counts, the progress bar, the cache keyed by files and
settings, and the seeded split by song are the same, and live here.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from riffd.training.corpus import CorpusReport, iter_scores, resolve_corpus

log = logging.getLogger(__name__)

# encode(score) -> (song, "") or (None, reason the song was dropped)
EncodeScore = Callable[[Any], tuple[Any, str]]


def cache_key(kind: str, paths: Sequence[Path], settings: list) -> str:
    """A key that changes when a file, its size or time, or a setting changes."""
    h = hashlib.sha256(kind.encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(json.dumps(settings).encode())
    return h.hexdigest()[:20]


def encode_songs(kind: str, corpus: list[str], settings: list, encode: EncodeScore,
                 cache_dir: str, max_songs: int = 0,
                 melody_only: bool = True) -> tuple[list, CorpusReport]:
    """Encode every score of a corpus (``max_songs`` > 0 stops early), cached as JSON.

    ``kind`` names the encoding and its version (e.g. ``"melody-v2"``); ``settings`` are the
    recipe values the encoding depends on. Returns (songs, report): the report names every
    file skipped and every piece dropped, with the reason (cached with the songs).
    """
    paths = resolve_corpus(corpus)
    cache = Path(cache_dir) / f"{kind.split('-v')[0]}-{cache_key(kind, paths, settings)}.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        if "report" in stored:                   # older caches lack it: encode afresh
            log.info("using cached encoding %s (%d songs)", cache, len(stored["songs"]))
            return stored["songs"], CorpusReport.from_dict(stored["report"])
    songs: list = []
    report = CorpusReport(files=len(paths))
    with tqdm(total=len(paths), desc="parsing corpus", unit="file") as bar:
        for path in paths:
            for name, score in iter_scores(path, melody_only=melody_only, on_skip=report.skip):
                if max_songs and len(songs) >= max_songs:
                    break
                song, reason = encode(score)
                if song is None:
                    report.drop(path, name, reason)
                else:
                    songs.append(song)
                bar.set_postfix(songs=len(songs), dropped=len(report.dropped))
            bar.update(1)
            if max_songs and len(songs) >= max_songs:
                break
    report.songs = len(songs)
    log.info("encoded %d songs from %d files; skipped %d files; dropped %s", len(songs),
             len(paths), len(report.skipped), report.drop_counts())
    cache.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own per writer, so that two processes encoding at once do not collide
    tmp = cache.with_suffix(f".{random.getrandbits(32):08x}.tmp")
    tmp.write_text(json.dumps({"songs": songs, "report": report.to_dict()}))
    tmp.replace(cache)
    # what a later run reads back from the cache, so that both runs see the same types
    return json.loads(json.dumps(songs)), report


def split_by_song(songs: list, val_fraction: float, seed: int, corpus: list[str],
                  dropped: dict[str, int]) -> tuple[list, list]:
    """Shuffle songs with ``seed`` and hold out ``val_fraction`` of them (at least one)."""
    if len(songs) < 2:
        raise ValueError(f"the corpus {corpus} gave {len(songs)} usable songs "
                         f"(dropped: {dropped}); at least 2 are needed")
    order = list(range(len(songs)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(songs) * val_fraction))
    return [songs[i] for i in order[n_val:]], [songs[i] for i in order[:n_val]]
