"""The daemon's musical clock: tempo and meter, beats ↔ monotonic seconds.

The clock is a straight line through one anchor point: beat ``b`` sounds at
``anchor_s + (b - anchor_beat) * 60 / tempo`` seconds of ``time.monotonic()``. A tempo change
re-anchors at the moment of the change, so no beat jumps. The source is ``internal`` (the
clock runs by itself), ``midi`` (:class:`riffd.daemon.midi_clock.ClockIn` re-anchors it at every
incoming pulse, so that beats fall on the DAW's grid) or ``link`` (:class:`riffd.daemon.link_clock.
LinkClock` re-anchors it on an Ableton Link session's timeline every 10 ms).

Thread safety: one lock; every method may be called from any thread.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable

SOURCES = ("internal", "midi", "link")

TempoListener = Callable[[float, float], None]     # (monotonic seconds, BPM)


class Clock:
    """Tempo (BPM), meter (beats per bar) and the beat ↔ seconds mapping.

    Args:
        tempo: beats per minute.
        beats_per_bar: meter numerator (quarter-note beats).
        source: ``"internal"``, ``"midi"`` or ``"link"``.
    """

    def __init__(self, tempo: float, beats_per_bar: int = 4, source: str = "internal"):
        if source not in SOURCES:
            raise ValueError(f"clock source must be one of {', '.join(SOURCES)}, not {source!r}")
        if not 20 <= tempo <= 300:
            raise ValueError(f"tempo must be 20..300 BPM, not {tempo}")
        self._lock = threading.Lock()
        self._tempo = float(tempo)
        self.beats_per_bar = beats_per_bar
        self.source = source
        self.running = source != "midi"          # MIDI source: until a Start/Continue arrives
        self._anchor_s = time.monotonic()
        self._anchor_beat = 0.0
        self._listeners: list[TempoListener] = []

    # -- reading ---------------------------------------------------------------------------
    @property
    def tempo(self) -> float:
        """Beats per minute."""
        return self._tempo

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self._tempo

    def beat_at(self, t_s: float) -> float:
        """The beat (float) that sounds at monotonic time ``t_s``."""
        with self._lock:
            return self._anchor_beat + (t_s - self._anchor_s) * self._tempo / 60.0

    def time_at(self, beat: float) -> float:
        """Monotonic seconds at which ``beat`` sounds (at the current tempo)."""
        with self._lock:
            return self._anchor_s + (beat - self._anchor_beat) * 60.0 / self._tempo

    def now_beat(self) -> float:
        return self.beat_at(time.monotonic())

    def next_beat(self, after_s: float, unit_beats: float = 1.0) -> float:
        """The first multiple of ``unit_beats`` (1 = beat, ``beats_per_bar`` = bar) sounding at
        or after monotonic time ``after_s``."""
        b = self.beat_at(after_s)
        return math.ceil(b / unit_beats - 1e-9) * unit_beats

    def next_bar(self, after_s: float) -> float:
        return self.next_beat(after_s, self.beats_per_bar)

    # -- changing ----------------------------------------------------------------------------
    def set_tempo(self, tempo: float, at_s: float | None = None) -> None:
        """Change the tempo from monotonic time ``at_s`` (now when None) on, keeping the beat."""
        at = time.monotonic() if at_s is None else at_s
        with self._lock:
            beat = self._anchor_beat + (at - self._anchor_s) * self._tempo / 60.0
            self._anchor_s, self._anchor_beat, self._tempo = at, beat, float(tempo)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(at, float(tempo))

    def anchor(self, t_s: float, beat: float, tempo: float, min_change: float = 0.5) -> None:
        """Place ``beat`` at monotonic time ``t_s`` with ``tempo`` (MIDI clock in and Link use
        it). Tempo listeners hear of changes of at least ``min_change`` BPM (MIDI clock's
        estimate jitters; Link's tempo is exact)."""
        with self._lock:
            changed = abs(tempo - self._tempo) >= min_change
            self._anchor_s, self._anchor_beat, self._tempo = t_s, float(beat), float(tempo)
            listeners = list(self._listeners) if changed else []
        for listener in listeners:
            listener(t_s, float(tempo))

    def locate(self, beat: float, at_s: float | None = None) -> None:
        """Jump: ``beat`` sounds at ``at_s`` (now when None); the tempo stays."""
        at = time.monotonic() if at_s is None else at_s
        with self._lock:
            self._anchor_s, self._anchor_beat = at, float(beat)

    def add_tempo_listener(self, listener: TempoListener) -> None:
        """Call ``listener(t_s, bpm)`` after every tempo change (the recorder's tempo map)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_tempo_listener(self, listener: TempoListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def status(self) -> dict:
        return {"tempo": round(self._tempo, 3), "beats_per_bar": self.beats_per_bar,
                "source": self.source, "running": self.running,
                "beat": round(self.now_beat(), 3), "beat0_s": self.time_at(0.0)}
