"""Pieces → piano rolls for the multilabel family.

``corpus = ["chorales"]`` (old name ``bach_chorales``, see ``riffd.training.corpora``) takes the Bach chorales of music21 (``riffd.training.chorales``, parsed
once and cached); other specs (``essen:erk``, MIDI/MusicXML files and folders) are parsed
with ``riffd.training.corpus`` (every part; chords kept). Rolls use the recipe's pitch range
(C4–B5 with octave cutting by default) on the 16th grid (``riffd.engine.pianoroll``).
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from riffd.engine.melody_representation import Note
from riffd.engine.pianoroll import PitchRange, notes_to_roll, transpose_to_reference
from riffd.training.chorales import ChoraleSettings, load_chorale_corpus, split_pieces
from riffd.training.corpora import canonical_corpus
from riffd.training.corpus import CorpusReport, iter_scores, resolve_corpus
from riffd.training.multilabel_config import MultilabelDataConfig
from riffd.training.notewise_data import score_notes

log = logging.getLogger(__name__)


@dataclass
class RollCorpus:
    """Piano rolls, (T, P) bool each, split by piece."""

    train: list[np.ndarray]
    val: list[np.ndarray]
    pitch_range: PitchRange
    report: CorpusReport = field(default_factory=CorpusReport)


def _corpus_notes(cfg: MultilabelDataConfig, report: CorpusReport) -> list[list[Note]]:
    """Every piece's notes (all parts; MIDI drums left out), with a progress bar on stderr."""
    pieces: list[list[Note]] = []
    paths = resolve_corpus(cfg.corpus)
    report.files = len(paths)
    with tqdm(total=len(paths), desc="parsing corpus", unit="file") as bar:
        for path in paths:
            for name, score in iter_scores(path, on_skip=report.skip):
                if cfg.max_songs and len(pieces) >= cfg.max_songs:
                    return pieces
                notes = score_notes(score)
                if notes:
                    pieces.append(transpose_to_reference(notes)[0] if cfg.transpose else notes)
                else:
                    report.drop(path, name, "empty")
                bar.set_postfix(pieces=len(pieces), dropped=len(report.dropped))
            bar.update(1)
    return pieces


def load_roll_corpus(cfg: MultilabelDataConfig, seed: int) -> RollCorpus:
    """Read the pieces and cut them into rolls; split by piece with a seeded shuffle."""
    pitch_range = PitchRange(cfg.low, cfg.high, cfg.fold)
    report = CorpusReport()
    corpus = canonical_corpus(cfg.corpus)
    if corpus == ["chorales"]:
        pieces, report = load_chorale_corpus(
            ChoraleSettings(cfg.max_songs, cfg.transpose, cfg.cache_dir))
        train, val = split_pieces(pieces, cfg.val_fraction, seed)
        train_notes, val_notes = [p.notes for p in train], [p.notes for p in val]
    else:
        if "chorales" in corpus:
            raise ValueError('"chorales" cannot be mixed with other corpus entries; '
                             'use corpus = ["chorales"] alone')
        notes = _corpus_notes(cfg, report)
        if len(notes) < 2:
            raise ValueError(f"the corpus {cfg.corpus} gave {len(notes)} pieces with notes; "
                             "at least 2 are needed")
        order = list(range(len(notes)))
        random.Random(seed).shuffle(order)
        n_val = min(len(notes) - 1, max(1, round(len(notes) * cfg.val_fraction)))
        train_notes = [notes[i] for i in order[n_val:]]
        val_notes = [notes[i] for i in order[:n_val]]

    def rolls(pieces: list[list[Note]]) -> list[np.ndarray]:
        return [notes_to_roll(n, pitch_range, restrike_gap=cfg.restrike_gap) for n in pieces]

    report.songs = len(train_notes) + len(val_notes)
    return RollCorpus(rolls(train_notes), rolls(val_notes), pitch_range, report)
