"""The corpora riffd trains on: one naming scheme for every model family.

A recipe's ``data.corpus`` lists entries of these kinds (``riffd train --list-corpora``
prints this table):

  ``chorales``       the 371 Bach chorales of music21's corpus (four parts)
  ``essen:NAME``     Essen folk songs of music21's corpus, the ABC files whose names start
                     with NAME (``essen:erk``, the melody document's set; ``essen:all``)
  ``oneills``        O'Neill's Music of Ireland (1850) of music21's corpus: Irish folk tunes
  ``ryans``          Ryan's Mammoth Collection (1883) of music21's corpus: fiddle tunes
  a folder, file or glob of your own scores: MIDI (.mid, .midi; multi-track files welcome:
                     drums are left out, the melody track is found), MusicXML, kern or ABC
  a folder, file or glob of audio: WAV, FLAC, OGG or MP3 (the spectral family only)

The spectral family renders the music21 corpora (``chorales``, ``essen:NAME``, ``oneills``,
``ryans``) to audio itself. Older names are still read, with a note in the log:
``bach_chorales`` (the GAN recipes) is ``chorales``, and ``render:chorales`` /
``render:essen:NAME`` (the spectral recipes) are ``chorales`` / ``essen:NAME``.
"""
from __future__ import annotations

import logging
import textwrap
from dataclasses import dataclass

log = logging.getLogger(__name__)

SYMBOLIC = ("melody_lstm", "notewise_lstm", "multilabel_lstm")
GANS = ("gan_cnn", "gan_bilstm")
SPECTRAL = ("spectral_lstm",)
ALIASES = {"bach_chorales": "chorales"}   # old name → name
RENDER_PREFIX = "render:"                 # the spectral recipes' old spelling


@dataclass(frozen=True)
class CorpusKind:
    """One kind of corpus entry: how it is written, what it is, which families take it."""

    spelling: str
    what: str
    families: tuple[str, ...]
    example: str


CORPUS_KINDS = (
    CorpusKind("chorales", "the 371 Bach chorales of music21's corpus, four parts "
               "(the spectral family renders them to audio)",
               ("multilabel_lstm",) + GANS + SPECTRAL, 'corpus = ["chorales"]'),
    CorpusKind("essen:NAME", "Essen folk songs of music21's corpus: the ABC files whose names "
               "start with NAME (essen:erk = the melody document's set, essen:all = all 31 "
               "files); one line each", SYMBOLIC + SPECTRAL, 'corpus = ["essen:erk"]'),
    CorpusKind("oneills", "O'Neill's Music of Ireland (1850): about 2,000 Irish folk tunes of "
               "music21's corpus (jigs, reels, hornpipes, airs)", SYMBOLIC + SPECTRAL,
               'corpus = ["oneills"]'),
    CorpusKind("ryans", "Ryan's Mammoth Collection (1883): about 1,000 fiddle tunes of "
               "music21's corpus (reels, hornpipes, jigs, strathspeys)", SYMBOLIC + SPECTRAL,
               'corpus = ["ryans"]'),
    CorpusKind("FOLDER, FILE or GLOB (scores)", "your own MIDI (.mid, .midi), MusicXML, kern "
               "or ABC files, folders searched recursively; multi-track MIDI is fine: drums "
               "are left out and the melody families take the melody track",
               SYMBOLIC, 'corpus = ["~/midi/game_music"]'),
    CorpusKind("FOLDER, FILE or GLOB (audio)", "your own WAV, FLAC, OGG or MP3 files",
               SPECTRAL, 'corpus = ["recordings/*.flac"]'),
)


def canonical_entry(entry: str) -> str:
    """A corpus entry in today's spelling; an old name is translated with a note."""
    new = ALIASES.get(entry)
    if new is None and entry.startswith(RENDER_PREFIX):
        new = entry[len(RENDER_PREFIX):]
    if new is None:
        return entry
    log.info("note: the corpus name %r is now written %r (the old name still works)",
             entry, new)
    return new


def canonical_corpus(entries: list[str] | str) -> list[str]:
    """Every entry of a ``data.corpus`` value (a list, or one name) in today's spelling."""
    return [canonical_entry(e) for e in ([entries] if isinstance(entries, str) else entries)]


def is_music21_corpus(entry: str) -> bool:
    """Whether an entry names one of music21's bundled corpora (not a file of the user's)."""
    from riffd.training.corpus import MUSIC21_FOLDERS
    return entry == "chorales" or entry in MUSIC21_FOLDERS or entry.startswith("essen:")


def families_for(spelling: str) -> tuple[str, ...]:
    """The families that take a corpus kind (by its spelling in ``CORPUS_KINDS``)."""
    return next(k.families for k in CORPUS_KINDS if k.spelling == spelling)


def list_corpora_text() -> str:
    """The table that ``riffd train --list-corpora`` prints."""
    lines = ["Corpora (the data.corpus entries of a recipe; several may be listed):", ""]
    for kind in CORPUS_KINDS:
        lines.append(f"  {kind.spelling}")
        lines.extend(textwrap.wrap(kind.what, 86, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6))
        lines.append(f"      families: {', '.join(kind.families)}")
        lines.append(f"      e.g.      {kind.example}")
        lines.append("")
    lines.extend(textwrap.wrap(
        "The GAN recipes name one corpus: corpus = \"chorales\". Old names are still read: "
        + ", ".join(f"{old} = {new}" for old, new in ALIASES.items())
        + ", render:chorales = chorales, render:essen:NAME = essen:NAME.", 92))
    lines.append("Set one with: riffd train RECIPE --set 'data.corpus=[\"songs/\"]'")
    return "\n".join(lines)
