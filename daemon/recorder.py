"""Recording what riffd played and what it received to a standard MIDI file.

The recorder collects events with their monotonic times (seconds) from any thread (one lock):
generated notes from the scheduler (one track per voice, named after it), incoming notes and
CCs from ``riffd:in`` (track ``input``), and tempo changes from the clock. ``stop`` writes a
type-1 MIDI file: a conductor track with the tempo map (``set_tempo`` at each change), then
one track per voice and the input track. Seconds become ticks through that tempo map, so the
file plays back in time and its notes sit on the bars and beats riffd played on.

A recording is written only inside the record folder (:func:`record_path`), with the mode the
user's umask gives a new file (0644 under the usual 022), never through a symbolic link.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

TICKS_PER_BEAT = 480


def record_path(folder: str | Path, path: str | Path | None, default_name: str) -> Path:
    """Where a recording goes: ``path`` inside ``folder`` (``default_name`` when no path).

    A relative path is taken inside the folder; an absolute one must lie in it. A path that
    leaves the folder (``..``, an absolute path elsewhere, a symbolic link pointing out) raises
    ValueError naming the folder.
    """
    base = Path(folder).resolve()
    wanted = Path(path) if path else Path(default_name)
    target = (base / wanted).resolve()   # `..` and links resolved; absolute `wanted` replaces base
    if not target.is_relative_to(base) or target == base:
        raise ValueError(f"{wanted} is outside the record folder {base}; give a file name "
                         f"inside it (e.g. take1.mid or session/take1.mid), or start riffd "
                         f"with another --record-dir")
    return target


class Recorder:
    """Collects timed MIDI messages while recording; writes them with ``stop``."""

    def __init__(self, clock):
        self.clock = clock
        self._lock = threading.Lock()
        self._events: list[tuple[float, str, list]] = []     # (seconds, track, message)
        self._tempi: list[tuple[float, float]] = []           # (seconds, BPM)
        self.path: Path | None = None
        self.started_s = 0.0

    @property
    def recording(self) -> bool:
        return self.path is not None

    def start(self, path: str | Path) -> Path:
        """Start recording to ``path`` (written on stop). Raises ValueError when recording."""
        path = Path(path)
        if path.suffix.lower() not in (".mid", ".midi"):
            raise ValueError(f"a recording is a MIDI file: give a path ending in .mid, not {path}")
        with self._lock:
            if self.path is not None:
                raise ValueError(f"already recording to {self.path}; `record stop` first")
            self.started_s = time.monotonic()
            self._events = []
            self._tempi = [(self.started_s, self.clock.tempo)]
            self.path = path
        self.clock.add_tempo_listener(self._on_tempo)
        return path

    def add(self, track: str, message: list, at_s: float) -> None:
        """Record ``message`` on ``track`` at monotonic time ``at_s`` (ignored when idle)."""
        if self.path is None:
            return
        with self._lock:
            if self.path is not None and at_s >= self.started_s - 1.0:
                self._events.append((max(at_s, self.started_s), track, list(message)))

    def _on_tempo(self, at_s: float, bpm: float) -> None:
        with self._lock:
            if self.path is not None:
                self._tempi.append((max(at_s, self.started_s), bpm))

    def stop(self) -> dict:
        """Write the file; returns ``{"path", "notes", "tracks", "seconds"}``."""
        self.clock.remove_tempo_listener(self._on_tempo)
        with self._lock:
            if self.path is None:
                raise ValueError("not recording; `record start` first")
            path, events, tempi = self.path, sorted(self._events, key=lambda e: e[0]), self._tempi
            self.path = None
            stopped = time.monotonic()
        tracks = write_midi_file(path, events, tempi, self.started_s)
        notes = sum(1 for _, _, m in events if m[0] & 0xF0 == 0x90 and m[2] > 0)
        return {"path": str(path), "notes": notes, "tracks": tracks,
                "seconds": round(stopped - self.started_s, 3)}


def _beats(t: float, tempi: list[tuple[float, float]]) -> float:
    """Beats from tempi[0]'s time to ``t`` seconds through the piecewise-constant tempo map."""
    beats = 0.0
    for (t0, bpm), (t1, _) in zip(tempi, tempi[1:] + [(float("inf"), 0.0)]):
        if t <= t0:
            break
        beats += (min(t, t1) - t0) * bpm / 60.0
    return beats


def write_midi_file(path: Path, events: list[tuple[float, str, list]],
                    tempi: list[tuple[float, float]], origin_s: float) -> list[str]:
    """Write ``events`` (seconds, track name, message) with the tempo map ``tempi`` (seconds,
    BPM) as a type-1 MIDI file; returns the track names in file order."""
    import mido
    tempi = sorted(tempi)
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack()
    mid.tracks.append(conductor)
    conductor.append(mido.MetaMessage("track_name", name="tempo", time=0))
    last = 0
    for t, bpm in tempi:
        tick = round(_beats(t, tempi) * TICKS_PER_BEAT)
        conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=tick - last))
        last = tick
    names = sorted({name for _, name, _ in events if name != "input"})
    if any(name == "input" for _, name, _ in events):
        names.append("input")
    for name in names:
        track = mido.MidiTrack()
        mid.tracks.append(track)
        track.append(mido.MetaMessage("track_name", name=name, time=0))
        last = 0
        for t, _, message in (e for e in events if e[1] == name):
            tick = round(_beats(t, tempi) * TICKS_PER_BEAT)
            try:
                msg = mido.Message.from_bytes(message)
            except (ValueError, TypeError):
                continue
            track.append(msg.copy(time=max(0, tick - last)))
            last = max(last, tick)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a new file gets 0666 less the umask; O_NOFOLLOW: never write through a planted link
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                 0o666)
    with os.fdopen(fd, "wb") as f:
        mid.save(file=f)
    return ["tempo", *names]
