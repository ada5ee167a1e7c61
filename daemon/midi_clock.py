"""MIDI clock: riffd as the master (clock out) or following a DAW (clock in).

MIDI clock is 24 pulses (0xF8) per quarter note, plus transport messages: Start (0xFA),
Continue (0xFB), Stop (0xFC) and Song Position Pointer (0xF2, in 16ths = 6 pulses).

- :class:`ClockOut` (one thread) sends every pulse at its time on the :class:`~riffd.daemon.clock.Clock`,
  handed to the port ``latency_s`` + 20 ms early, so JACK writes it at its exact frame.
- :class:`ClockIn` (no thread: fed from the MIDI-in dispatcher) estimates the tempo from pulse
  intervals by the median interval over the last ``window`` pulses (robust to a late or lost
  pulse; lost pulses are counted from the time gap) and re-anchors the clock
  at every pulse, so beats fall on the sender's grid. A tempo jump (three intervals in a row off
  the fit by more than 10 %, and agreeing with each other) shortens the window, so the new tempo
  is taken up within a beat.

  Bunched pulses: when a JACK cycle is skipped (an xrun at the sender or in the server), the
  pulses due in it arrive together at the start of the next cycle, a gap followed by a burst of
  intervals near 0. The gap is not taken for lost pulses once the burst shows they were only
  late, and the burst is not taken for a tempo change: neither the count nor the tempo moves.
"""
from __future__ import annotations

import collections
import math
import statistics
import threading
import time
from typing import Callable

from riffd.daemon.clock import Clock

PPQ = 24
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
# Pulses are handed to the port this long (plus its latency) before they are due, seconds: the
# port keeps them in time order and writes each at its frame, so a generous margin costs
# nothing but the delay with which a tempo change reaches the pulses (20 ms).
LEAD_S = 0.02

# Pulses closer than this (seconds) came in one burst: JACK writes the pulses of a skipped cycle
# at the start of the next one, at most a few frames apart.
BUNCHED_S = 0.002

TransportCallback = Callable[[str], None]      # "start" | "stop" | "continue"


class ClockOut:
    """One thread: 24 pulses per quarter on ``ports`` at the clock's tempo, and transport.

    Args:
        ports: an open :class:`~riffd.daemon.midi_ports.MidiPorts` (``send(msg, at=)``).
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
        # (count index, seconds, on time?): a pulse delivered late in a burst is kept for the
        # count but left out of the fit
        self._times: collections.deque = collections.deque(maxlen=window)
        self._index = 0                     # pulse index since the song position below
        self._position_beats = 0.0          # song position of pulse index 0, beats
        self._offset_beats = 0.0            # clock beat of song position 0
        self._misfits: list[float] = []     # recent intervals off the fit, seconds per pulse
        self._gaps = 0
        self._last_gap = 0
        self._unconfirmed = 0               # pulses of the last gap taken for lost, not yet seen late
        self._gap_index = 0                 # count index of the pulse that ended that gap
        self.lost = 0                       # pulses inferred missing from the time gaps
        self.late = 0                       # pulses that arrived bunched after a skipped cycle
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
        if self._bunched(t):
            self.late += 1
            self._misfits.clear()
            if self._unconfirmed:            # the gap before this burst lost nothing: renumber
                self._take_back_one_lost()
            self._index += 1
            if times:                        # the burst's first pulse was late, too
                i, t_prev, _ = times[-1]
                times[-1] = (i, t_prev, False)
            times.append((self._index, t, False))
            return
        step = self._lost_pulses(t) + 1
        self._index += step
        if times:
            last_i, last_t, on_time = times[-1]
            if self._index != last_i + step:         # a relocation: the line starts anew
                times.clear()
            elif self.tempo is not None and step == 1 and on_time:
                self._check_tempo_jump(t - last_t)
        times.append((self._index, t, True))
        self._estimate()

    def _bunched(self, t: float) -> bool:
        """True when this pulse follows the last one by less than half the expected interval and
        by under BUNCHED_S: it was delivered late, together with its predecessor, at the start of
        a cycle (never a tempo: 300 BPM, the fastest followed, is 8.3 ms a pulse)."""
        if self.tempo is None or not self._times:
            return False
        interval = t - self._times[-1][1]
        return interval < min(BUNCHED_S, 0.5 * 60.0 / (self.tempo * PPQ))

    def _take_back_one_lost(self) -> None:
        """One pulse the last gap counted as lost has now arrived late: every pulse since the gap
        is one earlier in the count."""
        self._unconfirmed -= 1
        self._last_gap -= 1
        self.lost -= 1
        self._index -= 1
        gap_index = self._gap_index
        renumbered = [(i - 1 if i >= gap_index else i, t, ok) for i, t, ok in self._times]
        self._times.clear()
        self._times.extend(renumbered)
        self._gap_index -= 1

    def _check_tempo_jump(self, interval: float) -> None:
        """Three intervals in a row off the fit by more than 10 % that agree with each other
        within 5 % are a new tempo: forget the old one, keeping the last two pulses."""
        expected = 60.0 / (self.tempo * PPQ)
        if abs(interval / expected - 1) <= 0.10:
            self._misfits.clear()
            return
        misfits = self._misfits
        if misfits and abs(interval / statistics.median(misfits) - 1) > 0.05:
            misfits.clear()                  # not the same new tempo: start counting again
        misfits.append(interval)
        if len(misfits) >= 3:
            keep = list(self._times)[-2:]
            self._times.clear()
            self._times.extend(keep)
            misfits.clear()

    def _estimate(self) -> None:
        """Tempo from the median interval over the window; re-anchor the clock on the fit."""
        # medians, not least squares: a late or lost pulse (a loaded machine) moves neither;
        # pulses delivered in a burst are left out
        pairs = [(i, t) for i, t, on_time in self._times if on_time]
        slopes = [(t1 - t0) / (i1 - i0) for (i0, t0), (i1, t1) in zip(pairs, pairs[1:])
                  if i1 > i0]
        if len(slopes) < 2:
            return
        seconds_per_pulse = statistics.median(slopes)
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
        the gap is 2–24 intervals, within 10 % of a whole number, after a steady tempo. Two such
        gaps in a row are a tempo change instead: the line starts anew from here. Pulses that
        then arrive bunched were late, not lost (:meth:`_take_back_one_lost`)."""
        times = self._times
        self._unconfirmed = 0
        if self.tempo is None or len(times) < 3 or self._misfits:
            self._gaps = 0
            return 0
        ratio = (t - times[-1][1]) / (60.0 / (self.tempo * PPQ))
        n = round(ratio)
        if not 2 <= n <= PPQ or abs(ratio - n) > 0.10:
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
        self._unconfirmed = n - 1
        self._gap_index = self._index + n            # this pulse's index in the count
        self.lost += n - 1
        return n - 1

    def _notify(self, what: str) -> None:
        if self.on_transport is not None:
            self.on_transport(what)

    def status(self) -> dict:
        receiving = time.monotonic() - self.last_pulse_s < 0.5 if self.pulses else False
        tempo = None if self.tempo is None else round(self.tempo, 3)
        return {"pulses": self.pulses, "lost": self.lost, "late": self.late, "tempo": tempo,
                "receiving": receiving}
