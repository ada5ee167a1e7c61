"""Ableton Link: riffd joins a Link session and its clock follows the session's timeline.

Link (https://ableton.github.io/link/) keeps tempo, beat phase and (optionally) start/stop in
step between the apps of a local network. Its discovery multicasts on every interface, so riffd
joins only when asked (``riffd serve --link`` or ``clock source=link``).

Library: LinkPython-extern (import ``link``), chosen over aalink because its API is synchronous
and thread-safe (``captureAppSessionState``, ``numPeers``, start/stop sync as a property), which
fits riffd's thread per role; aalink's interface is built around an asyncio event loop.

:class:`LinkClock` has the same shape as :class:`riffd.daemon.midi_clock.ClockIn`: it re-anchors the
daemon's :class:`~riffd.daemon.clock.Clock` so that beats fall on the session's grid, and reports
transport changes through ``on_transport("start" | "stop")``. One thread, ``riffd-link``, reads
the session every ``POLL_S`` seconds.

Time mapping. Link keeps time in integer microseconds of its own clock (``link.clock().micros()``;
on Linux ``CLOCK_MONOTONIC_RAW``, elsewhere the platform's monotonic clock), riffd in seconds
of ``time.monotonic()``. At every poll the thread reads ``monotonic, micros, monotonic`` a few
times and keeps the pair with the narrowest bracket: ``offset = (before + after) / 2 -
micros / 1e6``. The mapping error is half that bracket plus the microsecond rounding (measured
here: 1-4 µs); the two clocks drift apart by at most NTP's slew, 500 ppm (5 µs per poll), which
the next poll corrects.

Beat numbering. Link shares the phase within a quantum (``beats_per_bar`` beats: bar lines fall
together), not the beat count. riffd keeps its own count: ``clock beat = Link beat + offset``,
where ``offset`` is a whole number of bars chosen when riffd joins (or the meter changes), so
riffd's bar lines are the session's and its beat count moves by at most half a bar.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from riffd.daemon.clock import Clock

log = logging.getLogger(__name__)

POLL_S = 0.01          # how often the session is read, seconds
TEMPO_EPSILON = 1e-6   # BPM: smaller differences are not a tempo change
SAMPLES = 5            # (monotonic, micros, monotonic) readings per offset measurement

TransportCallback = Callable[[str], None]      # "start" | "stop"


class LinkUnavailable(OSError):
    """The ``link`` module (PyPI LinkPython-extern) is missing."""


def _link_module():
    try:
        import link
    except ImportError as exc:
        raise LinkUnavailable(f"Ableton Link needs the LinkPython-extern package ({exc}); "
                              "install it with: pip install LinkPython-extern") from None
    return link


class LinkClock:
    """Joins a Link session and drives ``clock`` from it while ``clock.source == "link"``.

    Args:
        clock: the daemon's clock; its ``beats_per_bar`` is the Link quantum.
        on_transport: called with ``"start"`` / ``"stop"`` when the session starts or stops
            playing (only with ``start_stop``), from the ``riffd-link`` thread.
        start_stop: take part in Link's start/stop sync.
    """

    def __init__(self, clock: Clock, on_transport: TransportCallback | None = None,
                 start_stop: bool = False):
        self.clock = clock
        self.on_transport = on_transport
        self.start_stop = start_stop
        self._link = None
        self._lock = threading.RLock()   # one reader/committer of the session at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._offset_beats: float | None = None   # clock beat - Link beat (whole bars)
        self._quantum = clock.beats_per_bar
        self._playing: bool | None = None       # the session's state at the last poll
        self.offset_s = 0.0                     # monotonic seconds - Link seconds
        self.offset_error_s = 0.0               # half the bracket of the last offset reading
        self.tempo = clock.tempo                # the session's tempo at the last poll, BPM
        self.phase = 0.0                        # beat phase in the bar at the last poll, beats
        self.peers = 0
        self.polls = 0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self._thread is not None

    def start(self) -> "LinkClock":
        """Join the session (start discovery) and follow it."""
        if self._thread is not None:
            return self
        if self._link is None:          # one Link instance for the daemon's life: enabling it
            link = _link_module()       # again resets its state, so it joins a running
            self._link = link.Link(self.clock.tempo)     # session without imposing its tempo
        self._link.startStopSyncEnabled = self.start_stop
        self._link.enabled = True
        self._offset_beats = None
        self._playing = None
        self._stop.clear()
        self._sync()                            # the clock is on the grid before start returns
        self._thread = threading.Thread(target=self._run, name="riffd-link", daemon=True)
        self._thread.start()
        log.info("Ableton Link: joined (start/stop sync %s)", "on" if self.start_stop else "off")
        return self

    def stop(self) -> None:
        """Leave the session (discovery stops)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(2.0)
        self._thread = None
        with self._lock:
            self._link.enabled = False
        self.peers = 0

    # -- commands ---------------------------------------------------------------------------
    def set_tempo(self, tempo: float) -> None:
        """Change the session's tempo (BPM) for every peer, from now on."""
        with self._lock:
            state = self._link.captureAppSessionState()
            state.setTempo(float(tempo), self._link.clock().micros())
            self._link.commitAppSessionState(state)
        self._sync()

    def set_playing(self, playing: bool) -> None:
        """Start or stop the session (with start/stop sync on; otherwise nothing is shared)."""
        if not self.start_stop or self._link is None:
            return
        with self._lock:
            state = self._link.captureAppSessionState()
            now = self._link.clock().micros()
            state.setIsPlaying(bool(playing), now)
            self._link.commitAppSessionState(state)
            self._playing = playing        # our own change: no transport echo back to riffd
        if self.clock.source == "link":
            self.clock.running = playing

    def set_start_stop(self, on: bool) -> None:
        """Turn start/stop sync on or off while joined."""
        self.start_stop = bool(on)
        if self._link is not None:
            with self._lock:
                self._link.startStopSyncEnabled = self.start_stop
        self._playing = None
        if not self.start_stop and self.clock.source == "link":
            self.clock.running = True

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._sync()
            except Exception:                      # never let the thread die silently
                log.exception("Ableton Link: reading the session failed")
                time.sleep(0.1)

    def _measure_offset(self) -> None:
        """monotonic seconds - Link seconds, from the narrowest of SAMPLES brackets."""
        clock = self._link.clock()
        best = None
        for _ in range(SAMPLES):
            before = time.monotonic()
            micros = clock.micros()
            after = time.monotonic()
            if best is None or after - before < best[0]:
                best = (after - before, (before + after) / 2 - micros / 1e6)
        self.offset_error_s = best[0] / 2 + 1e-6
        self.offset_s = best[1]

    def _sync(self) -> None:
        """Read the session and re-anchor the clock on it (any thread; cheap: ~20 µs)."""
        with self._lock:
            self._sync_locked()

    def _sync_locked(self) -> None:
        self._measure_offset()
        state = self._link.captureAppSessionState()
        now_us = self._link.clock().micros()
        self.peers = self._link.numPeers()
        quantum = self.clock.beats_per_bar
        tempo = state.tempo()
        link_beat = state.beatAtTime(now_us, quantum)
        t_s = now_us / 1e6 + self.offset_s
        if self._offset_beats is None or quantum != self._quantum:
            # whole bars, so riffd's bar lines are the session's (a jump of at most half a bar)
            here = self.clock.beat_at(t_s)
            self._offset_beats = round((here - link_beat) / quantum) * quantum
            self._quantum = quantum
        self.tempo = tempo
        self.phase = state.phaseAtTime(now_us, quantum)
        self.polls += 1
        if self.clock.source == "link":
            self.clock.anchor(t_s, link_beat + self._offset_beats, tempo,
                              min_change=TEMPO_EPSILON)
        if self.start_stop:
            playing = state.isPlaying()
            if playing != self._playing:
                first = self._playing is None
                self._playing = playing
                if self.clock.source == "link":
                    self.clock.running = playing
                    if not (first and not playing):     # joining a stopped session: quiet
                        self._notify("start" if playing else "stop")

    def _notify(self, what: str) -> None:
        if self.on_transport is not None:
            self.on_transport(what)

    def status(self) -> dict:
        """``enabled``, ``peers``, session ``tempo`` (BPM), ``beat`` phase in the bar (beats,
        0 ≤ phase < quantum), ``quantum`` (beats), ``playing``, ``start_stop`` sync, and the
        monotonic ↔ Link clock mapping error (µs)."""
        if self._thread is None:
            return {"enabled": False, "peers": 0, "tempo": None, "phase": None,
                    "quantum": self.clock.beats_per_bar, "playing": None,
                    "start_stop": self.start_stop, "mapping_error_us": None}
        return {"enabled": True, "peers": self.peers, "tempo": round(self.tempo, 4),
                "phase": round(self.phase, 4), "quantum": self._quantum,
                "playing": self._playing if self.start_stop else None,
                "start_stop": self.start_stop,
                "mapping_error_us": round(self.offset_error_s * 1e6, 1)}
