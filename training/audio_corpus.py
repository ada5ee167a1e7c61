"""Audio corpora for the spectral family: audio files, or scores rendered to audio offline.

A corpus spec is one of (the names every family shares, ``riffd.training.corpora``):
  ``chorales``           Bach chorales of music21's corpus, rendered with FluidSynth
  ``essen:erk``          Essen folk songs (ABC files whose names start with ``erk``), rendered
                         (``render:chorales`` and ``render:essen:erk`` are the old names)
  a file or folder       WAV, FLAC, OGG or MP3 files (folders are searched recursively)
  a glob pattern         ``music/**/*.flac``

Every clip is mixed to mono and resampled to the model's rate with a polyphase filter
(``scipy.signal.resample_poly``). Unreadable and silent files are skipped and counted.
Rendered audio (piano, TimGM6mb.sf2 from the pretty_midi package) is cached as WAV files in
``cache_dir`` under a key made of the render settings, so the second run needs no music21.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np

from riffd.engine.fluidsynth_render import RENDER_RATE, render_pretty_midi, scale_to_peak
from riffd.training.corpus import spec_files

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
SILENCE_PEAK = 1e-4          # a clip whose peak stays below this is silent


class AudioCorpusError(ValueError):
    """A corpus spec names nothing usable; the message says what to fix."""


@dataclass
class AudioClip:
    name: str
    samples: np.ndarray      # (S,) float32 mono at the corpus rate


@dataclass
class AudioCorpus:
    sample_rate: int
    clips: list[AudioClip] = field(default_factory=list)
    skipped_unreadable: int = 0
    skipped_silent: int = 0

    @property
    def seconds(self) -> float:
        return sum(len(c.samples) for c in self.clips) / self.sample_rate


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling from ``source_rate`` to ``target_rate`` Hz (float32 out)."""
    if source_rate == target_rate:
        return np.asarray(samples, dtype=np.float32)
    from scipy.signal import resample_poly
    g = gcd(int(source_rate), int(target_rate))
    return resample_poly(samples, target_rate // g, source_rate // g).astype(np.float32)


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate`` Hz.

    Raises ``ValueError`` naming the file and the fix when it cannot be decoded (an MP3 needs
    libsndfile ≥ 1.1; convert it with ``ffmpeg -i in.mp3 out.flac`` otherwise).
    """
    import soundfile as sf
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)   # (S, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        hint = (" (this libsndfile cannot decode MP3: convert it with "
                "`ffmpeg -i in.mp3 out.flac`)" if path.suffix.lower() == ".mp3" else "")
        raise ValueError(f"{path}: cannot read audio: {exc}{hint}") from exc
    return resample(data.mean(axis=1), rate, sample_rate)


def _audio_files(spec: str) -> list[Path]:
    """The audio files of one corpus entry (a file, a folder or a glob), sorted."""
    paths = spec_files(spec, AUDIO_SUFFIXES)
    if paths is None:
        raise AudioCorpusError(f"corpus entry {spec!r} is neither chorales, essen:NAME, an "
                               "audio file, a folder nor a matching glob (riffd train "
                               "--list-corpora lists what a corpus can be)")
    if not paths:
        raise AudioCorpusError(f"corpus entry {spec!r} holds no WAV, FLAC, OGG or MP3 file")
    return paths


# --- rendering scores offline ---------------------------------------------------------------
def _score_paths(what: str) -> list[Path]:
    from music21 import corpus
    if what == "chorales":
        return sorted(Path(p) for p in corpus.getComposer("bach") if Path(p).suffix == ".mxl")
    from riffd.training.corpus import MUSIC21_FOLDERS, resolve_corpus
    if what.startswith("essen:") or what in MUSIC21_FOLDERS:
        return resolve_corpus([what])
    raise AudioCorpusError(f"{what} is unknown; use chorales, essen:NAME, "
                           + " or ".join(MUSIC21_FOLDERS))


def _scores(what: str, count: int):
    """Yield (name, music21 score) up to ``count`` pieces."""
    from music21 import converter, stream
    made = 0
    for path in _score_paths(what):
        try:
            parsed = converter.parse(str(path))
        except Exception as exc:   # music21 raises many unrelated types on bad input
            log.warning("skipping %s: cannot be parsed (%s)", path.name, exc)
            continue
        for i, score in enumerate(parsed.scores if isinstance(parsed, stream.Opus) else [parsed]):
            yield f"{path.stem}#{i}", score
            made += 1
            if made >= count:
                return


def score_to_audio(score, tempo_bpm: float, program: int, max_seconds: float) -> np.ndarray:
    """Render a music21 score with FluidSynth (TimGM6mb.sf2) → mono float32 at RENDER_RATE
    (44.1 kHz), peak 1.

    Notes are read from the score (offsets in quarter notes at ``tempo_bpm``), so no MIDI
    file is written; ``program`` is the General MIDI instrument (0 = piano).
    """
    import pretty_midi
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    instrument = pretty_midi.Instrument(program=program)
    beat_s = 60.0 / tempo_bpm
    for element in score.flatten().notes:
        start = float(element.offset) * beat_s
        if start >= max_seconds:
            continue
        end = min(start + max(float(element.quarterLength), 0.125) * beat_s, max_seconds)
        for pitch in element.pitches:
            instrument.notes.append(pretty_midi.Note(velocity=90, pitch=int(pitch.midi),
                                                     start=start, end=end))
    pm.instruments.append(instrument)
    if not instrument.notes:
        return np.zeros(0, dtype=np.float32)
    return render_pretty_midi(pm, RENDER_RATE)


def rendered_clips(what: str, sample_rate: int, count: int, max_seconds: float,
                   tempo_bpm: float, program: int, cache_dir: str | Path) -> list[tuple[str, Path]]:
    """Render (or find in the cache) ``count`` pieces; returns (name, WAV path) pairs."""
    import soundfile as sf
    settings = {"what": what, "rate": sample_rate, "count": count, "max_seconds": max_seconds,
                "tempo": tempo_bpm, "program": program, "version": 1}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / f"rendered-{key}"
    index = folder / "index.json"
    if index.exists():
        names = json.loads(index.read_text())
        return [(n, folder / f"{i:04d}.wav") for i, n in enumerate(names)]
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, score in _scores(what, count):
        audio = scale_to_peak(resample(score_to_audio(score, tempo_bpm, program, max_seconds),
                                       RENDER_RATE, sample_rate), 0.9)
        sf.write(folder / f"{len(names):04d}.wav", audio, sample_rate, subtype="FLOAT")
        names.append(name)
    index.write_text(json.dumps(names))
    log.info("rendered %d pieces of %s into %s", len(names), what, folder)
    return [(n, folder / f"{i:04d}.wav") for i, n in enumerate(names)]


def load_audio_corpus(specs: list[str], sample_rate: int, *, render_pieces: int = 24,
                      render_max_seconds: float = 30.0, render_tempo_bpm: float = 100.0,
                      render_program: int = 0, cache_dir: str | Path = ".cache/riffd") -> AudioCorpus:
    """Every clip the specs name, mono at ``sample_rate`` Hz; skips are counted and logged."""
    from riffd.training.corpora import canonical_corpus, is_music21_corpus
    corpus = AudioCorpus(sample_rate)
    for spec in canonical_corpus(specs):
        if is_music21_corpus(spec):
            entries = rendered_clips(spec, sample_rate, render_pieces,
                                     render_max_seconds, render_tempo_bpm, render_program,
                                     cache_dir)
        else:
            entries = [(p.name, p) for p in _audio_files(spec)]
        for name, path in entries:
            try:
                samples = read_audio(path, sample_rate)
            except ValueError as exc:
                log.warning("skipping %s", exc)
                corpus.skipped_unreadable += 1
                continue
            if not samples.size or float(np.max(np.abs(samples))) < SILENCE_PEAK:
                log.warning("skipping %s: silent", path)
                corpus.skipped_silent += 1
                continue
            corpus.clips.append(AudioClip(name, samples))
    if not corpus.clips:
        raise AudioCorpusError(f"the corpus {specs} gave no usable audio "
                               f"({corpus.skipped_unreadable} unreadable, "
                               f"{corpus.skipped_silent} silent files skipped)")
    return corpus
