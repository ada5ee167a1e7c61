"""MIDI clock: riffd as the master (clock out) or following a DAW (clock in).

MIDI clock is 24 pulses (0xF8) per quarter note, plus transport messages: Start (0xFA),
Continue (0xFB), Stop (0xFC) and Song Position Pointer (0xF2, in 16ths = 6 pulses).

- :class:`ClockOut` (one thread) sends every pulse at its time on the :class:`~daemon.clock.Clock`,
  handed to the port ``latency_s`` + 20 ms early, so JACK writes it at its exact frame.
- :class:`ClockIn` (no thread: fed from the MIDI-in dispatcher) estimates the tempo from pulse
  intervals by the median interval over the last ``window`` pulses (robust to a late or lost
  pulse; lost pulses are counted from the time gap) and re-anchors the clock
  at every pulse, so beats fall on the sender's grid. A tempo jump (three intervals in a row off
  the fit by more than 10 %) shortens the window, so the new tempo is taken up within a beat.
"""
from __future__ import annotations

import collections
import math
import statistics
import threading
import time
from typing import Callable

from daemon.clock import Clock

PPQ = 24
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
# Pulses are handed to the port this long (plus its latency) before they are due, seconds: the
# port keeps them in time order and writes each at its frame, so a generous margin costs
# nothing but the delay with which a tempo change reaches the pulses (20 ms).
LEAD_S = 0.02

TransportCallback = Callable[[str], None]      # "start" | "stop" | "continue"


class ClockOut:
    """One thread: 24 pulses per quarter on ``ports`` at the clock's tempo, and transport.

    Args:
        ports: an open :class:`~daemon.midi_ports.MidiPorts` (``send(msg, at=)``).
        clock: the daemon's clock.
    """

    def __init__(self, ports, clock: Clock):
        self.ports = ports
        self.clock = clock
        self.pulses_sent = 0
        self.transport = "stopped"
        self.song_origin_beat = 0.0      # clock beat where song position 0 is
        self._pending: collections.deque = collections.deque()    # transport messages
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_pulse = 0             # index k: pulse at clock beat k / 24

    def start(self) -> "ClockOut":
        self._stop.clear()
        self._next_pulse = math.ceil(self.clock.beat_at(time.monotonic() + 0.02) * PPQ)
        self._thread = threading.Thread(target=self._run, name="riffd-clock-out", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (a running transport gets a Stop first)."""
        if self._thread is None:
            return
        if self.transport == "playing":
            self.send_transport("stop")
            deadline = time.monotonic() + 0.5
            while self._pending and time.monotonic() < deadline:
                time.sleep(0.005)
        self._stop.set()
        self._wake.set()
        self._thread.join(2.0)
        self._thread = None

    def send_transport(self, what: str) -> None:
        """Queue ``"start"`` (song position 0), ``"stop"`` or ``"continue"``; each goes out with
        the next pulse."""
        if what not in ("start", "stop", "continue"):
            raise ValueError(f"transport must be start, stop or continue, not {what!r}")
        self._pending.append(what)
        self._wake.set()

    def song_position(self, beat: float) -> int:
        """Song position in 16ths (MIDI beats) of clock beat ``beat``."""
        return max(0, int(round((beat - self.song_origin_beat) * 4)))

    def _run(self) -> None:
        while not self._stop.is_set():
            beat = self._next_pulse / PPQ
            at = self.clock.time_at(beat)
            now = time.monotonic()
            lead = self.ports.latency_s + LEAD_S
            if at < now - 1.0:                         # far behind (a suspended machine): resync;
                                                       # shorter stalls send late pulses, none lost
                self._next_pulse = math.ceil(self.clock.beat_at(now + lead) * PPQ)
                continue
            wait = at - lead - now
            if wait > 0:
                self._wake.wait(min(wait, 0.1))
                self._wake.clear()
                continue
            try:
                while self._pending:
                    self._send_transport(self._pending.popleft(), beat, at)
                self.ports.send([CLOCK], at=at)
                self.pulses_sent += 1
            except Exception:                          # port gone: keep the thread alive
                time.sleep(0.05)
            self._next_pulse += 1

    def _send_transport(self, what: str, beat: float, at: float) -> None:
        if what == "start":
            self.song_origin_beat = beat
            self.ports.send([SONG_POSITION, 0, 0], at=at)
            self.ports.send([START], at=at)
            self.transport = "playing"
        elif what == "continue":
            pos = self.song_position(beat)
            self.ports.send([SONG_POSITION, pos & 0x7F, (pos >> 7) & 0x7F], at=at)
            self.ports.send([CONTINUE], at=at)
            self.transport = "playing"
        else:
            self.ports.send([STOP], at=at)
            self.transport = "stopped"

    def status(self) -> dict:
        return {"enabled": self._thread is not None, "pulses_sent": self.pulses_sent,
                "transport": self.transport}


class ClockIn:
    """Follows incoming MIDI clock: tempo from pulse intervals, beats on the sender's grid.

    ``feed(message, time_s)`` takes every real-time message from ``riffd:in`` (times in
    monotonic seconds, frame-accurate on JACK). While ``clock.source == "midi"`` it re-anchors
    the clock at each pulse. ``on_transport(what)`` is called for Start/Stop/Continue.
    """

    def __init__(self, clock: Clock, on_transport: TransportCallback | None = None,
                 window: int = 24):
        self.clock = clock
        self.on_transport = on_transport
        self.window = window
        self.pulses = 0                     # pulses received in all
        self.tempo: float | None = None     # latest estimate, BPM
        self._times: collections.deque = collections.deque(maxlen=window)   # (index, seconds)
        self._index = 0                     # pulse index since the song position below
        self._position_beats = 0.0          # song position of pulse index 0, beats
        self._offset_beats = 0.0            # clock beat of song position 0
        self._misfits = 0
        self._gaps = 0
        self._last_gap = 0
        self.lost = 0                       # pulses inferred missing from the time gaps
        self.last_pulse_s = 0.0

    def feed(self, message: list, time_s: float) -> None:
        status = message[0] if message else 0
        if status == CLOCK:
            self._pulse(time_s)
        elif status == START:
            self._locate(0.0, time_s)
            self.clock.running = True
            self._notify("start")
        elif status == CONTINUE:
            self.clock.running = True
            self._notify("continue")
        elif status == STOP:
            self.clock.running = False
            self._notify("stop")
        elif status == SONG_POSITION and len(message) >= 3:
            self._locate((message[1] | (message[2] << 7)) / 4.0, time_s)

    def _locate(self, position_beats: float, time_s: float) -> None:
        """The next pulse is at song position ``position_beats``; keep the clock's beat numbering
        continuous by putting song position 0 on a bar line of the current clock."""
        bar = self.clock.beats_per_bar
        here = self.clock.beat_at(time_s)
        self._offset_beats = math.ceil(here / bar) * bar - position_beats
        self._position_beats = position_beats
        self._index = -1                      # the next pulse gets index 0

    def _pulse(self, t: float) -> None:
        self.pulses += 1
        self.last_pulse_s = t
        times = self._times
        step = self._lost_pulses(t) + 1
        self._index += step
        if times:
            last_i, last_t = times[-1]
            if self._index != last_i + step:         # a relocation: the line starts anew
                times.clear()
            elif self.tempo is not None and step == 1:
                expected = 60.0 / (self.tempo * PPQ)
                interval = t - last_t
                self._misfits = self._misfits + 1 if abs(interval / expected - 1) > 0.10 else 0
                if self._misfits >= 3:               # tempo jump: forget the old tempo
                    keep = list(times)[-2:]
                    times.clear()
                    times.extend(keep)
                    self._misfits = 0
        times.append((self._index, t))
        if len(times) < 3:
            return
        # medians, not least squares: one late or lost pulse (a loaded machine) moves neither
        pairs = list(times)
        seconds_per_pulse = statistics.median(
            (t1 - t0) / (i1 - i0) for (i0, t0), (i1, t1) in zip(pairs, pairs[1:]))
        if seconds_per_pulse <= 0:
            return
        tempo = min(300.0, max(20.0, 60.0 / (seconds_per_pulse * PPQ)))
        self.tempo = tempo
        if self.clock.source == "midi":
            fitted_t = statistics.median(t + (self._index - i) * seconds_per_pulse
                                         for i, t in pairs)
            beat = self._offset_beats + self._position_beats + self._index / PPQ
            self.clock.anchor(fitted_t, beat, tempo)

    def _lost_pulses(self, t: float) -> int:
        """Pulses missing before this one (an overloaded JACK client can miss a cycle's input):
        the gap is 2–6 intervals, within 10 % of a whole number, after a steady tempo. Two such
        gaps in a row are a tempo change instead: the line starts anew from here."""
        times = self._times
        if self.tempo is None or len(times) < 3 or self._misfits:
            self._gaps = 0
            return 0
        ratio = (t - times[-1][1]) / (60.0 / (self.tempo * PPQ))
        n = round(ratio)
        if not 2 <= n <= 6 or abs(ratio - n) > 0.10:
            self._gaps = 0
            return 0
        self._gaps += 1
        if self._gaps >= 2:                          # it keeps happening: a slower tempo
            self._gaps = 0
            self._index -= self._last_gap            # the previous gap was not lost pulses
            self.lost -= self._last_gap
            times.clear()
            return 0
        self._last_gap = n - 1
        self.lost += n - 1
        return n - 1

    def _notify(self, what: str) -> None:
        if self.on_transport is not None:
            self.on_transport(what)

    def status(self) -> dict:
        receiving = time.monotonic() - self.last_pulse_s < 0.5 if self.pulses else False
        tempo = None if self.tempo is None else round(self.tempo, 3)
        return {"pulses": self.pulses, "lost": self.lost, "tempo": tempo,
                "receiving": receiving}
