"""Turning MIDI messages seen by a peer into notes, a MIDI file, a WAV and a piano roll."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence


@dataclass(frozen=True)
class TimedNote:
    """A note with start and end in seconds (any common origin), MIDI pitch and velocity."""

    pitch: int
    velocity: int
    start_s: float
    end_s: float


def pair_notes(messages: Iterable[tuple[float, Sequence[int]]]) -> tuple[list[TimedNote], int]:
    """Pair note-ons with note-offs; returns (notes, count of note-ons never switched off)."""
    open_notes: dict[tuple[int, int], list[tuple[float, int]]] = {}
    notes: list[TimedNote] = []
    for t, msg in messages:
        if len(msg) < 3:
            continue
        kind, channel, pitch, velocity = msg[0] & 0xF0, msg[0] & 0x0F, msg[1], msg[2]
        if kind == 0x90 and velocity > 0:
            open_notes.setdefault((channel, pitch), []).append((t, velocity))
        elif kind == 0x80 or kind == 0x90:
            stack = open_notes.get((channel, pitch))
            if stack:
                start, vel = stack.pop(0)
                notes.append(TimedNote(pitch, vel, start, t))
    hanging = sum(len(v) for v in open_notes.values())
    return sorted(notes, key=lambda n: n.start_s), hanging


def write_midi(path: Path, tracks: dict[str, list[TimedNote]], tempo_bpm: float) -> None:
    """One MIDI track per entry, times in seconds converted at ``tempo_bpm``."""
    import mido
    ticks_per_beat = 480
    mid = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    for index, (name, notes) in enumerate(tracks.items()):
        track = mido.MidiTrack()
        mid.tracks.append(track)
        track.append(mido.MetaMessage("track_name", name=name))
        if index == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)))
        events = []
        for n in notes:
            events.append((n.start_s, 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity)))
            events.append((n.end_s, 0, mido.Message("note_off", note=n.pitch, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))
        last_tick = 0
        for seconds, _, message in events:
            tick = round(seconds * tempo_bpm / 60 * ticks_per_beat)
            track.append(message.copy(time=max(0, tick - last_tick)))
            last_tick = max(last_tick, tick)
    mid.save(path)


def render_wav(midi_path: Path, wav_path: Path, sample_rate: int = 44100) -> str:
    """Render a MIDI file to a 16-bit WAV (peak at 90 % of full scale) with FluidSynth and the
    soundfont in pretty_midi (``riffd.engine.fluidsynth_render``).

    Returns a note on what was used.
    """
    import numpy as np
    import pretty_midi
    from scipy.io import wavfile

    from riffd.engine.fluidsynth_render import (pretty_midi_soundfont, render_pretty_midi,
                                                scale_to_peak)
    soundfont = pretty_midi_soundfont()
    pm = pretty_midi.PrettyMIDI(str(midi_path))
    audio = scale_to_peak(render_pretty_midi(pm, sample_rate, soundfont), 0.9)
    wavfile.write(wav_path, sample_rate, (audio * 32767).astype(np.int16))
    return f"FluidSynth with {soundfont.name}, {len(audio) / sample_rate:.1f} s at {sample_rate} Hz"


def plot_piano_roll(path: Path, tracks: dict[str, list[TimedNote]], title: str) -> None:
    """A piano roll: one colour per track, time in seconds, MIDI pitch on the y axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(12, 4))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    pitches, end = [], 1.0
    for (name, notes), colour in zip(tracks.items(), colours):
        for n in notes:
            ax.add_patch(Rectangle((n.start_s, n.pitch - 0.4), n.end_s - n.start_s, 0.8,
                                   color=colour, alpha=0.85))
            pitches.append(n.pitch)
            end = max(end, n.end_s)
        ax.plot([], [], color=colour, linewidth=8, label=f"{name} ({len(notes)} notes)")
    low, high = (min(pitches) - 2, max(pitches) + 2) if pitches else (55, 80)
    ax.set(xlim=(0, end + 0.5), ylim=(low, high), xlabel="time (s)", ylabel="MIDI pitch",
           title=title)
    for c in range(int(low), int(high) + 1):
        if c % 12 == 0:
            ax.axhline(c, color="grey", linewidth=0.4)
            ax.text(0.05, c + 0.2, f"C{c // 12 - 1}", fontsize=7, color="grey")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
