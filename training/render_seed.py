"""Seed files for ``riffd render``: a MIDI file read into notes, or rendered to audio.

A seed is a user's file, so it is opened with :mod:`riffd.engine.safe_files` (a regular file of at
most ``MAX_SEED_BYTES``; never a FIFO or a device). Every problem is a :class:`SeedError`
whose message names the file, what is wrong with it and what to give instead.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from riffd.engine.fluidsynth_render import RENDER_RATE, FluidSynthError, render_pretty_midi
from riffd.engine.melody_representation import Note
from riffd.engine.safe_files import MB, FileRefused, open_regular, read_regular
from riffd.training.melody_extraction import midi_document

MAX_SEED_BYTES = 64 * MB          # largest seed file (MIDI or audio) render opens, bytes
MIDI_SUFFIXES = {".mid", ".midi", ".smf", ".kar"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff"}
DEFAULT_TEMPO_BPM = 120.0


class SeedError(ValueError):
    """A seed file that cannot be used; the message says why and what to give instead."""


def seed_kind(path: str | Path) -> str:
    """``"midi"``, ``"audio"`` or ``"other"`` for a seed file: MIDI from its first bytes (a
    Standard MIDI File starts with ``MThd``) or its suffix, audio from its suffix (WAV, FLAC,
    …); raises SeedError for a missing or non-regular file."""
    path = Path(path)
    try:
        with open_regular(path, MAX_SEED_BYTES, "cut the seed shorter") as f:
            head = f.read(4)
    except FileRefused as exc:
        raise SeedError(f"seed {exc}") from None
    if head == b"MThd":
        return "midi"
    if path.suffix.lower() in MIDI_SUFFIXES:
        return "midi"                     # a damaged MIDI file: read_seed_midi says so
    return "audio" if path.suffix.lower() in AUDIO_SUFFIXES else "other"


def read_seed_midi(path: str | Path) -> tuple[list[Note], float]:
    """The notes of a MIDI file (every track; drums left out as training leaves them out, see
    :mod:`riffd.training.melody_extraction`), times in beats from the first note, and the
    file's first tempo in BPM (120, MIDI's default, when it sets none)."""
    import mido
    path = Path(path)
    try:
        data = read_regular(path, MAX_SEED_BYTES, "cut the seed shorter")
    except FileRefused as exc:
        raise SeedError(f"seed {exc}") from None
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:       # mido raises OSError, EOFError, ValueError, KeyError, …
        raise SeedError(f"seed {path} is not a readable MIDI file ({exc}); give a Standard "
                        "MIDI File (.mid), e.g. one exported from your DAW") from None
    document = midi_document(midi, path)
    notes = [n for track in document.tracks for n in track.notes]
    if not notes:
        raise SeedError(f"seed {path} holds no notes (drums do not count: channel 10, drum "
                        "programs and tracks named like drums); give a MIDI file with a "
                        "melody or chords")
    origin = min(n.start for n in notes)
    notes = sorted((Note(n.pitch, n.start - origin, n.duration) for n in notes),
                   key=lambda n: (n.start, n.pitch))
    return notes, document.tempos[0][1]


def notes_to_pretty_midi(tracks: dict[str, list[Note]], tempo_bpm: float,
                         velocity: int = 90, program: int = 0):
    """A ``pretty_midi.PrettyMIDI`` with one instrument per entry (notes in beats, converted
    to seconds at ``tempo_bpm``)."""
    import pretty_midi
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    beat_s = 60.0 / tempo_bpm
    for name, notes in tracks.items():
        instrument = pretty_midi.Instrument(program=program, name=name)
        for n in notes:
            instrument.notes.append(pretty_midi.Note(velocity=velocity, pitch=int(n.pitch),
                                                     start=n.start * beat_s,
                                                     end=(n.start + n.duration) * beat_s))
        pm.instruments.append(instrument)
    return pm


def synthesize(pm, sample_rate: int = RENDER_RATE) -> np.ndarray:
    """Render a ``PrettyMIDI`` with FluidSynth and the TimGM6mb soundfont that ships with
    pretty_midi (the soundfont the audio corpora use) → mono float32 at ``sample_rate`` Hz."""
    from riffd.training.audio_corpus import resample
    try:
        audio = render_pretty_midi(pm, RENDER_RATE)
    except FluidSynthError as exc:     # the message names what to install
        raise SeedError(str(exc)) from None
    return resample(audio, RENDER_RATE, sample_rate)


def midi_seed_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """A MIDI seed rendered to audio (piano, at its own tempo or 120 BPM) at ``sample_rate``."""
    notes, tempo = read_seed_midi(path)
    return synthesize(notes_to_pretty_midi({"seed": notes}, tempo or DEFAULT_TEMPO_BPM),
                      sample_rate)
