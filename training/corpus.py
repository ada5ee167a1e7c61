"""Finding and parsing the files of a corpus.

A corpus spec is one of (``riffd.training.corpora`` has the names every family shares):
  ``essen:erk``      the Essen folk songs of music21's corpus whose file names start with
                     ``erk`` (``essen:all`` for all 31 files)
  a file or folder   MIDI, MusicXML, kern or ABC files (folders are searched recursively)
  a glob pattern     ``songs/**/*.mid``
"""
from __future__ import annotations

import glob
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger(__name__)

SCORE_SUFFIXES = {".mid", ".midi", ".xml", ".musicxml", ".mxl", ".krn", ".abc"}


REPORT_NAME = "corpus_report.json"      # written beside the checkpoints
LOGGED_ENTRIES = 20                       # the log names this many; the report names all


class CorpusError(ValueError):
    """A corpus spec names nothing usable."""


@dataclass
class CorpusReport:
    """What became of every file of a corpus: ``skipped`` files could not be read at all;
    ``dropped`` pieces were read but not used (chords in a melody, off-grid durations, too
    short…). Each entry names the file (and piece) and the reason."""

    files: int = 0
    songs: int = 0
    skipped: list[dict] = field(default_factory=list)    # {"file", "reason"}
    dropped: list[dict] = field(default_factory=list)    # {"file", "piece", "reason"}

    def skip(self, path: Path | str, reason: str) -> None:
        self.skipped.append({"file": str(path), "reason": reason})

    def drop(self, path: Path | str, piece: str, reason: str) -> None:
        self.dropped.append({"file": str(path), "piece": piece, "reason": reason})

    def drop_counts(self) -> dict[str, int]:
        """Dropped pieces by reason."""
        return dict(Counter(d["reason"] for d in self.dropped))

    def to_dict(self) -> dict:
        return {"files": self.files, "songs": self.songs,
                "skipped_files": len(self.skipped), "dropped_pieces": len(self.dropped),
                "dropped_by_reason": self.drop_counts(),
                "skipped": self.skipped, "dropped": self.dropped}

    @classmethod
    def from_dict(cls, data: dict) -> "CorpusReport":
        return cls(data["files"], data["songs"], list(data["skipped"]), list(data["dropped"]))

    def log_summary(self, logger: logging.Logger, where: Path | None = None) -> None:
        """One line of totals, then the skipped and dropped files with their reasons."""
        logger.info("corpus: %d files, %d songs used; %d files skipped, %d pieces dropped%s",
                    self.files, self.songs, len(self.skipped), len(self.dropped),
                    f" (all named in {where})" if where else "")
        entries = ([f"skipped {e['file']}: {e['reason']}" for e in self.skipped]
                   + [f"dropped {e['piece'] or e['file']} ({e['file']}): {e['reason']}"
                      for e in self.dropped])
        for line in entries[:LOGGED_ENTRIES]:
            logger.warning("  %s", line)
        if len(entries) > LOGGED_ENTRIES:
            logger.warning("  … and %d more%s", len(entries) - LOGGED_ENTRIES,
                           f" in {where}" if where else "")

    def write(self, folder: Path | str) -> Path:
        """Write ``corpus_report.json`` into ``folder`` (created); returns its path."""
        path = Path(folder) / REPORT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)
        return path


def _music21_paths(prefix: str) -> list[Path]:
    from music21 import corpus
    paths = sorted(Path(p) for p in corpus.getPaths() if "essenFolksong" in str(p))
    if prefix != "all":
        paths = [p for p in paths if p.name.startswith(prefix)]
    return paths


# corpus names → music21 corpus folders of folk tunes in ABC, one tune per piece
MUSIC21_FOLDERS = {"oneills": "oneills1850", "ryans": "ryansMammoth"}


def _music21_folder(name: str) -> list[Path]:
    """The score files of one of music21's corpus folders (e.g. ``oneills1850``)."""
    from music21 import corpus
    return sorted(Path(p) for p in corpus.getPaths() if Path(p).parent.name == name)


def spec_files(spec: str, suffixes: set[str]) -> list[Path] | None:
    """The files with one of ``suffixes`` (lower case, with the dot) that a corpus entry
    names, sorted: a glob pattern's matches, a folder's files (searched recursively) or the
    file itself. None when the entry is neither a glob, a folder nor a file."""
    if any(ch in spec for ch in "*?["):
        paths = sorted(Path(p) for p in glob.glob(spec, recursive=True))
    elif Path(spec).is_dir():
        paths = sorted(Path(spec).rglob("*"))
    elif Path(spec).is_file():
        paths = [Path(spec)]
    else:
        return None
    return [p for p in paths if p.suffix.lower() in suffixes]


def resolve_corpus(specs: list[str]) -> list[Path]:
    """All score files that the specs name, sorted, without duplicates."""
    from riffd.training.corpora import canonical_corpus
    found: list[Path] = []
    for spec in canonical_corpus(specs):
        spec = str(Path(spec).expanduser()) if spec.startswith("~") else spec
        if spec == "chorales":
            raise CorpusError('the "chorales" corpus (four-part Bach chorales) trains the '
                              'multilabel, GAN and spectral families, alone in data.corpus; '
                              "for this family use essen:NAME or your own MIDI files "
                              "(riffd train --list-corpora lists them all)")
        if spec.startswith("essen:"):
            paths = _music21_paths(spec.split(":", 1)[1])
        elif spec in MUSIC21_FOLDERS:
            paths = _music21_folder(MUSIC21_FOLDERS[spec])
        else:
            paths = spec_files(spec, SCORE_SUFFIXES)
            if paths is None:
                raise CorpusError(f"corpus entry {spec!r} is neither essen:NAME, a file, a "
                                  "folder nor a glob that matches anything; check the path "
                                  "(riffd train --list-corpora lists what a corpus can be)")
        paths = [p for p in paths if p.suffix.lower() in SCORE_SUFFIXES]
        if not paths:
            raise CorpusError(f"corpus entry {spec!r} matches no MIDI, MusicXML, kern or ABC file")
        found.extend(paths)
    return sorted(dict.fromkeys(found))


MIDI_SUFFIXES = {".mid", ".midi"}


def publish_report(report: CorpusReport, output_dir: Path | str, is_main: bool,
                   logger: logging.Logger) -> dict:
    """Write the report beside the checkpoints (the main process only) and log its summary;
    returns the entries for the checkpoint's training summary."""
    where = Path(output_dir) / REPORT_NAME
    if is_main:
        report.write(output_dir)
        report.log_summary(logger, where)
    return {"corpus_report": REPORT_NAME, "skipped_files": [e["file"] for e in report.skipped]}


def iter_scores(path: Path, melody_only: bool = False,
                on_skip: Callable[[Path, str], None] | None = None
                ) -> Iterator[tuple[str, object]]:
    """Yield (name, music21 Score) for every piece in a file (ABC files hold many).

    MIDI files are read by ``riffd.training.melody_extraction`` (drums left out, times on the
    16th grid, tempo changes honoured): with ``melody_only`` a MIDI file gives only the line
    of its melody track, otherwise all its pitched notes. A file that cannot be read is
    logged and skipped: ``on_skip(path, reason)`` hears of it (e.g. :meth:`CorpusReport.skip`).
    """
    from music21 import converter, stream

    def skip(reason: str) -> None:
        log.warning("skipping %s: %s", path, reason)
        if on_skip is not None:
            on_skip(path, reason)

    if path.suffix.lower() in MIDI_SUFFIXES:
        from riffd.training.melody_extraction import midi_score
        try:
            score = midi_score(path, melody_only)
        except ValueError as exc:
            skip(str(exc).replace(f"{path} ", ""))
            return
        yield f"{path.name}#{'melody' if melody_only else 0}", score
        return
    try:
        parsed = converter.parse(str(path))
    except Exception as exc:  # music21 raises many unrelated types on bad input
        skip(f"cannot be read ({type(exc).__name__}: {exc})")
        return
    scores = parsed.scores if isinstance(parsed, stream.Opus) else [parsed]
    if not scores:
        skip("holds no score")
    for i, score in enumerate(scores):
        yield f"{path.name}#{i}", score
