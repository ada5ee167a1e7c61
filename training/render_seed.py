"""Seed files for ``riffd render``: a MIDI file read into notes, or rendered to audio.

A seed is a user's file, so it is opened with :mod:`riffd.engine.safe_files` (a regular file of at
most ``MAX_SEED_BYTES``; never a FIFO or a device). Every problem is a :class:`SeedError`
whose message names the file, what is wrong with it and what to give instead.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from riffd.engine.melody_representation import Note
from riffd.engine.safe_files import MB, FileRefused, open_regular, read_regular

MAX_SEED_BYTES = 64 * MB          # largest seed file (MIDI or audio) render opens, bytes
MIDI_SUFFIXES = {".mid", ".midi", ".smf", ".kar"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff"}
DRUM_CHANNEL = 9                  # MIDI channel 10, counted from 0: never a seed's pitches
RENDER_RATE = 44100               # Hz, FluidSynth's rate before resampling
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


def read_seed_midi(path: str | Path) -> tuple[list[Note], float | None]:
    """The notes of a MIDI file (every track, drums on channel 10 left out), times in beats
    from the first note, and the file's first tempo in BPM (None when it sets none)."""
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
    per_beat = midi.ticks_per_beat
    notes: list[Note] = []
    tempo: float | None = None
    for track in midi.tracks:
        ticks = 0
        sounding: dict[tuple[int, int], list[int]] = {}
        for msg in track:
            ticks += msg.time
            if msg.type == "set_tempo" and tempo is None:
                tempo = float(mido.tempo2bpm(msg.tempo))
            if msg.type not in ("note_on", "note_off") or msg.channel == DRUM_CHANNEL:
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault(key, []).append(ticks)
            elif sounding.get(key):
                start = sounding[key].pop(0)
                if ticks > start:
                    notes.append(Note(msg.note, start / per_beat, (ticks - start) / per_beat))
    if not notes:
        raise SeedError(f"seed {path} holds no notes (drums on channel 10 do not count); "
                        "give a MIDI file with a melody or chords")
    origin = min(n.start for n in notes)
    notes = sorted((Note(n.pitch, n.start - origin, n.duration) for n in notes),
                   key=lambda n: (n.start, n.pitch))
    return notes, tempo


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
    soundfont = Path(__import__("pretty_midi").__file__).parent / "TimGM6mb.sf2"
    try:
        audio = pm.fluidsynth(fs=RENDER_RATE, synthesizer=str(soundfont))
    except Exception as exc:       # pyfluidsynth or libfluidsynth missing or broken
        raise SeedError(f"FluidSynth cannot render ({exc}); install it with "
                        "`apt-get install fluidsynth` (or `brew install fluid-synth`)") from None
    return resample(np.asarray(audio, dtype=np.float32), RENDER_RATE, sample_rate)


def midi_seed_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """A MIDI seed rendered to audio (piano, at its own tempo or 120 BPM) at ``sample_rate``."""
    notes, tempo = read_seed_midi(path)
    return synthesize(notes_to_pretty_midi({"seed": notes}, tempo or DEFAULT_TEMPO_BPM),
                      sample_rate)
