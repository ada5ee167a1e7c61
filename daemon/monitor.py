"""Hearing riffd without a DAW: a small pyo synth on the JACK audio device, and offline
rendering of a recording (a MIDI file) to WAV.

- :class:`MonitorSynth` boots ``pyo.Server(audio="jack")`` (the server's sample rate; its
  outputs are connected to the system playback ports when there are any) with a pool of
  ``polyphony`` voices: a detuned pair of band-limited saws through an ADSR envelope. It takes
  note-ons and note-offs from the scheduler as they go out.
- :func:`render_midi` renders a MIDI file to WAV with ``pyo.Server(audio="offline")``, far
  faster than real time. ``python -m riffd.daemon.monitor IN.mid OUT.wav`` does the same.

pyo is imported only here, with ``PYO_GUI_WX=0`` (no wxPython). pyo allows one server per
process: use either the monitor or offline rendering in one process.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

ATTACK_S, DECAY_S, SUSTAIN, RELEASE_S = 0.005, 0.15, 0.6, 0.12
GAIN = 0.25                 # peak amplitude of one full-velocity note


def _pyo():
    os.environ.setdefault("PYO_GUI_WX", "0")
    import pyo
    return pyo


def midi_to_hz(pitch: int) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


class MonitorSynth:
    """A polyphonic synth on the JACK audio device. ``note_on``/``note_off`` from any thread."""

    def __init__(self, client_name: str = "riffd-monitor", samplerate: int = 48000,
                 polyphony: int = 8):
        self.client_name = client_name
        self.samplerate = samplerate            # must equal the JACK server's rate, Hz
        self.polyphony = polyphony
        self._server = None
        self._voices: list = []
        self._playing: dict[tuple[int, int], int] = {}     # (channel, pitch) → voice index
        self._next = 0
        self._lock = threading.Lock()
        self.notes_played = 0

    def start(self) -> "MonitorSynth":
        pyo = _pyo()
        server = pyo.Server(sr=self.samplerate, audio="jack", jackname=self.client_name,
                            nchnls=2, duplex=0)
        server.setMidiInputDevice(99999)            # no MIDI input: notes come from riffd
        server.boot()
        if not server.getIsBooted():
            raise RuntimeError("the monitor synth could not open the JACK audio device; is a "
                               "JACK server running? (or start riffd without --monitor)")
        server.start()
        self._server = server
        for _ in range(self.polyphony):
            freq = pyo.SigTo(440.0, time=0.002)
            env = pyo.Adsr(ATTACK_S, DECAY_S, SUSTAIN, RELEASE_S, mul=0.0)
            osc = pyo.SuperSaw(freq=freq, detune=0.3, bal=0.6, mul=env)
            out = pyo.ButLP(osc, freq=3000).out()
            self._voices.append((freq, env, osc, out))
        return self

    def note_on(self, channel: int, pitch: int, velocity: int) -> None:
        if self._server is None:
            return
        with self._lock:
            index = self._next
            self._next = (self._next + 1) % self.polyphony
            for key, i in list(self._playing.items()):
                if i == index:
                    del self._playing[key]
            freq, env, _, _ = self._voices[index]
            freq.value = midi_to_hz(pitch)
            env.mul = GAIN * velocity / 127.0
            env.play()
            self._playing[(channel, pitch)] = index
            self.notes_played += 1

    def note_off(self, channel: int, pitch: int) -> None:
        if self._server is None:
            return
        with self._lock:
            index = self._playing.pop((channel, pitch), None)
            if index is not None:
                self._voices[index][1].stop()

    def on_event(self, event: dict) -> None:
        """The scheduler's event callback: note-ons and note-offs as they go out."""
        kind = event.get("type")
        if kind == "note_on":
            self.note_on(event["channel"], event["pitch"], event["velocity"])
        elif kind == "note_off":
            self.note_off(event["channel"], event["pitch"])

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()
            server.shutdown()
            self._voices.clear()


def midi_notes(path: str | Path) -> list[tuple[float, float, int, int]]:
    """The notes of a MIDI file: ``(start_s, end_s, pitch, velocity)``, times in seconds through
    the file's tempo map (every track merged)."""
    import mido
    now = 0.0
    open_notes: dict[tuple[int, int], list[tuple[float, int]]] = {}
    notes = []
    for msg in mido.MidiFile(str(path)):                 # msg.time: seconds since the last one
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            open_notes.setdefault((msg.channel, msg.note), []).append((now, msg.velocity))
        elif msg.type in ("note_off", "note_on"):
            stack = open_notes.get((msg.channel, msg.note))
            if stack:
                start, velocity = stack.pop(0)
                notes.append((start, max(now, start + 0.01), msg.note, velocity))
    return sorted(notes)


def render_midi(midi_path: str | Path, wav_path: str | Path, samplerate: int = 48000) -> dict:
    """Render a MIDI file to a mono 16-bit WAV with the monitor's sound, offline.

    Returns ``{"path", "notes", "seconds"}``. Raises ValueError for a file without notes.
    """
    notes = midi_notes(midi_path)
    if not notes:
        raise ValueError(f"{midi_path} has no notes to render")
    pyo = _pyo()
    seconds = max(end for _, end, _, _ in notes) + RELEASE_S + 0.2
    server = pyo.Server(sr=samplerate, nchnls=1, duplex=0, audio="offline")
    server.boot()
    server.recordOptions(dur=seconds, filename=str(wav_path), fileformat=0, sampletype=0)
    objects = []
    for start, end, pitch, velocity in notes:
        env = pyo.Adsr(ATTACK_S, DECAY_S, SUSTAIN, RELEASE_S, dur=end - start,
                       mul=GAIN * velocity / 127.0)
        osc = pyo.SuperSaw(freq=midi_to_hz(pitch), detune=0.3, bal=0.6, mul=env)
        env.play(delay=start)
        objects.append((env, osc.out()))
    server.start()                                      # offline: returns when rendered
    server.shutdown()
    return {"path": str(wav_path), "notes": len(notes), "seconds": round(seconds, 3)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m riffd.daemon.monitor IN.mid OUT.wav", file=sys.stderr)
        return 2
    try:
        result = render_midi(argv[0], argv[1])
    except (OSError, ValueError) as exc:
        print(f"riffd monitor: {exc}", file=sys.stderr)
        return 1
    print(f"rendered {result['notes']} notes, {result['seconds']} s, to {result['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
