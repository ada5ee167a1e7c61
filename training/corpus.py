"""Finding and parsing the files of a corpus.

A corpus spec is one of:
  ``essen:erk``      the Essen folk songs of music21's corpus whose file names start with
                     ``erk`` (``essen:all`` for all 31 files)
  a file or folder   MIDI, MusicXML, kern or ABC files (folders are searched recursively)
  a glob pattern     ``songs/**/*.mid``
"""
from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

SCORE_SUFFIXES = {".mid", ".midi", ".xml", ".musicxml", ".mxl", ".krn", ".abc"}


class CorpusError(ValueError):
    """A corpus spec names nothing usable."""


def _music21_paths(prefix: str) -> list[Path]:
    from music21 import corpus
    paths = sorted(Path(p) for p in corpus.getPaths() if "essenFolksong" in str(p))
    if prefix != "all":
        paths = [p for p in paths if p.name.startswith(prefix)]
    return paths


def resolve_corpus(specs: list[str]) -> list[Path]:
    """All score files that the specs name, sorted, without duplicates."""
    found: list[Path] = []
    for spec in specs:
        if spec.startswith("essen:"):
            paths = _music21_paths(spec.split(":", 1)[1])
        elif any(ch in spec for ch in "*?["):
            paths = sorted(Path(p) for p in glob.glob(spec, recursive=True))
        elif Path(spec).is_dir():
            paths = sorted(p for p in Path(spec).rglob("*") if p.suffix.lower() in SCORE_SUFFIXES)
        elif Path(spec).is_file():
            paths = [Path(spec)]
        else:
            raise CorpusError(f"corpus entry {spec!r} is neither essen:NAME, a file, a folder "
                              "nor a glob that matches anything")
        paths = [p for p in paths if p.suffix.lower() in SCORE_SUFFIXES]
        if not paths:
            raise CorpusError(f"corpus entry {spec!r} matches no MIDI, MusicXML, kern or ABC file")
        found.extend(paths)
    return sorted(dict.fromkeys(found))


MIDI_SUFFIXES = {".mid", ".midi"}


def iter_scores(path: Path, melody_only: bool = False) -> Iterator[tuple[str, object]]:
    """Yield (name, music21 Score) for every piece in a file (ABC files hold many).

    With ``melody_only`` a MIDI file gives only its melody track, picked by
    ``training.melody_extraction``. A file that cannot be read is logged and skipped.
    """
    from music21 import converter, stream
    if melody_only and path.suffix.lower() in MIDI_SUFFIXES:
        from training.melody_extraction import melody_score
        try:
            yield f"{path.name}#melody", melody_score(path)
        except ValueError as exc:
            log.warning("skipping %s: %s", path, exc)
        return
    try:
        parsed = converter.parse(str(path))
    except Exception as exc:  # music21 raises many unrelated types on bad input
        log.warning("skipping %s: cannot be read (%s)", path, exc)
        return
    scores = parsed.scores if isinstance(parsed, stream.Opus) else [parsed]
    for i, score in enumerate(scores):
        yield f"{path.name}#{i}", score
