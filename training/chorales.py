"""The 371 Bach chorales of music21's corpus as pieces: notes of all parts merged, or rolls.

``load_chorales`` parses ``music21.corpus.chorales.Iterator()`` once (ties stripped, every
part merged into one note list, times in beats) and caches the result on disk keyed by
its settings, like ``riffd.training.melody_data`` does. Piano rolls are made from the cached
notes on demand (``piece_roll``, ``piece_bars``), so a change of pitch range needs no
re-parse.

Typical use (the multilabel and GAN families)::

    pieces = load_chorales(ChoraleSettings(max_pieces=20))
    train, val = split_pieces(pieces, val_fraction=0.1, seed=0)
    rolls = [piece_roll(p, OCTAVE_CUT) for p in train]      # (T, 24) bool each
    bars = piece_bars(train[0], OCTAVE_CUT)                 # (N, 16, 24) bool, 4/4 bars
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from riffd.engine.key_finding import Key
from riffd.engine.melody_representation import STEP_BEATS, Note
from riffd.engine.pianoroll import PitchRange, notes_to_roll

from riffd.training.corpus import CorpusReport

log = logging.getLogger(__name__)
CACHE_VERSION = 1       # the cache holds {"pieces", "report"} (older ones: the pieces alone)
N_CHORALES = 371


@dataclass(frozen=True)
class ChoraleSettings:
    """Which chorales and how they are prepared.

    max_pieces: parse only the first N chorales (0 = all 371; small values for tests).
    transpose: move each chorale to C major / A minor from music21's key analysis.
    cache_dir: where the parsed notes are cached (JSON).
    """

    max_pieces: int = 0
    transpose: bool = False
    cache_dir: str = ".cache/riffd"


@dataclass
class ChoralePiece:
    """One chorale: all parts merged into notes (beats), with its key and metre.

    key: the key it was written in (before any transposition); shift: semitones applied.
    bar_beats: beats per bar (4.0 in 4/4, 3.0 in 3/4). downbeat: beat where the first full
    bar begins (after a pickup), in beats from the start.
    """

    name: str
    notes: list[Note]
    key: Key
    shift: int
    bar_beats: float
    downbeat: float
    file: str = ""          # its file in music21's corpus, e.g. "bach/bwv269.mxl"

    def to_json(self) -> dict:
        return {"name": self.name, "notes": [[n.pitch, n.start, n.duration] for n in self.notes],
                "key": [self.key.tonic, self.key.mode], "shift": self.shift,
                "bar_beats": self.bar_beats, "downbeat": self.downbeat, "file": self.file}

    @classmethod
    def from_json(cls, d: dict) -> "ChoralePiece":
        return cls(d["name"], [Note(int(p), float(s), float(u)) for p, s, u in d["notes"]],
                   Key(int(d["key"][0]), d["key"][1]), int(d["shift"]),
                   float(d["bar_beats"]), float(d["downbeat"]), d.get("file", ""))


def _quantize(beats: float) -> float:
    return round(beats / STEP_BEATS) * STEP_BEATS


def score_to_piece(name: str, score, transpose: bool) -> ChoralePiece | None:
    """One music21 chorale → a ``ChoralePiece`` (None when it has no notes)."""
    analysed = score.analyze("key")
    key = Key(analysed.tonic.pitchClass, analysed.mode)
    shift = key.shift_to_reference() if transpose else 0
    notes: list[Note] = []
    for element in score.stripTies().flatten().notes:
        duration = float(element.quarterLength)
        if duration <= 0:
            continue                                         # grace notes
        start = _quantize(float(element.offset))
        end = max(start + STEP_BEATS, _quantize(float(element.offset) + duration))
        for pitch in element.pitches:
            notes.append(Note(pitch.midi + shift, start, end - start))
    if not notes:
        return None
    notes.sort(key=lambda n: (n.start, n.pitch))
    bar_beats, downbeat = 4.0, 0.0
    signatures = score.recurse().getElementsByClass("TimeSignature")
    if signatures:
        bar_beats = float(signatures[0].barDuration.quarterLength)
    measures = score.parts[0].getElementsByClass("Measure") if score.parts else []
    for measure in measures:
        if measure.number >= 1:
            downbeat = float(measure.offset)
            break
    return ChoralePiece(name, notes, key, shift, bar_beats, downbeat)


def _cache_path(settings: ChoraleSettings) -> Path:
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    h.update(json.dumps([settings.max_pieces, settings.transpose]).encode())
    return Path(settings.cache_dir) / f"chorales-{h.hexdigest()[:20]}.json"


def load_chorales(settings: ChoraleSettings) -> list[ChoralePiece]:
    """Parse (or read from the cache) the chorales as pieces, in corpus order."""
    return load_chorale_corpus(settings)[0]


def load_chorale_corpus(settings: ChoraleSettings) -> tuple[list[ChoralePiece], CorpusReport]:
    """The chorales as pieces, in corpus order, and the corpus report that names every
    chorale left out (by its file in music21's corpus, e.g. ``bach/bwv269.mxl``) and why.
    Parsed once with a progress bar on stderr, then read from the cache."""
    cache = _cache_path(settings)
    total = settings.max_pieces or N_CHORALES
    if cache.exists():
        stored = json.loads(cache.read_text())
        if isinstance(stored, list):          # an older cache: complete means nothing left out
            stored = {"pieces": stored, "report": CorpusReport(
                len(stored), len(stored)).to_dict()} if len(stored) == total else None
        if stored is not None:
            pieces = [ChoralePiece.from_json(d) for d in stored["pieces"]]
            log.info("using cached chorales %s (%d pieces)", cache, len(pieces))
            return pieces, CorpusReport.from_dict(stored["report"])
    from music21 import corpus
    pieces: list[ChoralePiece] = []
    report = CorpusReport()
    with tqdm(total=total, desc="parsing chorales", unit="piece") as bar:
        for i, score in enumerate(corpus.chorales.Iterator()):
            if settings.max_pieces and i >= settings.max_pieces:
                break
            report.files += 1
            meta = score.metadata
            title = meta.title if meta and meta.title else ""
            where = (meta.corpusFilePath if meta and meta.corpusFilePath else f"chorale {i}")
            name = f"{i:03d} {title}".strip()
            try:
                piece = score_to_piece(name, score, settings.transpose)
            except Exception as exc:  # music21's analysis raises many types on odd scores
                report.drop(where, name, f"cannot be analysed ({type(exc).__name__}: {exc})")
                piece = None
            else:
                if piece is None:
                    report.drop(where, name, "empty")
            if piece is not None:
                piece.file = where
                pieces.append(piece)
            bar.update(1)
    report.songs = len(pieces)
    log.info("parsed %d chorales (%d left out)", len(pieces), len(report.dropped))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{random.getrandbits(32):08x}.tmp")
    tmp.write_text(json.dumps({"pieces": [p.to_json() for p in pieces],
                               "report": report.to_dict()}))
    tmp.replace(cache)
    return pieces, report


def split_pieces(pieces: list[ChoralePiece], val_fraction: float,
                 seed: int) -> tuple[list[ChoralePiece], list[ChoralePiece]]:
    """Split by piece with a seeded shuffle: (train, held-out). Needs at least 2 pieces."""
    if len(pieces) < 2:
        raise ValueError(f"{len(pieces)} chorales cannot be split into training and held-out "
                         "sets; use max_pieces >= 2 (0 = all)")
    order = list(range(len(pieces)))
    random.Random(seed).shuffle(order)
    n_val = min(len(pieces) - 1, max(1, round(len(pieces) * val_fraction)))
    return [pieces[i] for i in order[n_val:]], [pieces[i] for i in order[:n_val]]


def piece_roll(piece: ChoralePiece, pitch_range: PitchRange,
               restrike_gap: bool = False) -> np.ndarray:
    """The whole piece as a ``(T, P)`` bool roll (see ``riffd.engine.pianoroll.notes_to_roll``)."""
    return notes_to_roll(piece.notes, pitch_range, restrike_gap=restrike_gap)


def piece_bars(piece: ChoralePiece, pitch_range: PitchRange, bar_steps: int = 16,
               restrike_gap: bool = False) -> np.ndarray:
    """The piece's full bars as ``(N, bar_steps, P)`` bool, from its first downbeat.

    Only pieces whose bar is ``bar_steps`` 16ths long give bars (4/4 for 16); others give
    an empty ``(0, bar_steps, P)`` array. An incomplete last bar is dropped.
    """
    empty = np.zeros((0, bar_steps, pitch_range.size), dtype=bool)
    if round(piece.bar_beats / STEP_BEATS) != bar_steps:
        return empty
    roll = notes_to_roll(piece.notes, pitch_range, restrike_gap=restrike_gap)   # (T, P)
    first = int(round(piece.downbeat / STEP_BEATS))
    n = (roll.shape[0] - first) // bar_steps
    if n <= 0:
        return empty
    return roll[first:first + n * bar_steps].reshape(n, bar_steps, pitch_range.size)


def settings_dict(settings: ChoraleSettings) -> dict:
    return asdict(settings)
