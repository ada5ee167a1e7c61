"""A symbolic family's encoded songs, split by song into training and validation sets.

The melody and notewise families differ in what a song is (a list of tokens, a list of
events); the corpus they hand their trainers and the seeded split by song are the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from riffd.training.corpus import CorpusReport
from riffd.training.song_cache import split_by_song

Item = TypeVar("Item")                      # one token (melody) or event (notewise)


@dataclass
class SongCorpus(Generic[Item]):
    """Encoded songs split by song into training and validation sets."""

    train: list[list[Item]]
    val: list[list[Item]]
    dropped: dict[str, int]                  # songs left out, by reason
    files: int                               # files the corpus read
    report: CorpusReport = field(default_factory=CorpusReport)


def split_songs(songs: list[list[Item]], report: CorpusReport, corpus: list[str],
                val_fraction: float, seed: int) -> SongCorpus[Item]:
    """Hold out ``val_fraction`` of the songs (at least one) after a shuffle with ``seed``;
    ``corpus`` (the recipe's specs) and the report's drop counts name what went wrong when
    fewer than 2 songs are left."""
    dropped = report.drop_counts()
    train, val = split_by_song(songs, val_fraction, seed, corpus, dropped)
    return SongCorpus(train=train, val=val, dropped=dropped, files=report.files, report=report)
