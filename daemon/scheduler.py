"""Note scheduler: one thread that hands timed notes to the MIDI output port.

Times are ``time.monotonic()`` seconds. Each event is handed to the port ``lookahead`` seconds
before it is due (``ports.latency_s`` + 10 ms) together with its ``at`` time, so a buffering
backend (JACK) places it at its exact frame; Python's wake-up jitter only has to stay under the
10 ms margin.

Sounding notes are tracked as a multiset keyed by ``(channel, pitch)``: every note-on that went
out gets exactly one note-off, whether the note ends normally, its pending events are cancelled
(:meth:`Scheduler.cancel_pending`), the user panics (:meth:`Scheduler.all_notes_off`) or the
scheduler stops. When the port's server went away, :meth:`Scheduler.reset_sounding` forgets the
sounding notes (they died with the server) so that no note-off is owed to the new one.

Latency compensation: a note may be scheduled with ``early_s`` (seconds, see
:mod:`riffd.daemon.latency`): it is *sent* at ``at - early_s`` so that it sounds at ``at`` on a synth
that takes ``early_s`` to sound it (a negative value delays it). The queue is ordered by send
time; ``at`` stays the intended (grid) time. A note-off must use its note-on's ``early_s`` (the
voice keeps it per note), so each note's off still leaves after its on. Events report both
times: ``at`` (grid) and ``send_at`` (when the message leaves riffd's port).

Realtime: given a :class:`~riffd.daemon.realtime.RealtimeState`, the scheduler thread asks for
SCHED_FIFO (below JACK's process thread) as it starts.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import sys
import threading
import time
from typing import Callable

from riffd.daemon.midi_ports import MidiPortError, MidiPorts

EventCallback = Callable[[dict], None]

NOTE_OFF, NOTE_ON = 0, 1  # at equal times offs go first, so a repeated pitch re-triggers
SAFETY_S = 0.002          # hand-over margin on top of the port latency, seconds
LATE_S = 0.001            # an event handed over later than this past its deadline counts late
IDLE_WAIT_S = 0.1         # longest sleep with nothing due, seconds
CC_ALL_NOTES_OFF = 123


def _check(channel: int, pitch: int, velocity: int | None = None) -> None:
    if not 1 <= channel <= 16:
        raise ValueError(f"channel must be 1..16, not {channel}")
    if not 0 <= pitch <= 127:
        raise ValueError(f"pitch must be 0..127, not {pitch}")
    if velocity is not None and not 1 <= velocity <= 127:
        raise ValueError(f"velocity must be 1..127, not {velocity}")


class Scheduler:
    """Sends scheduled note-ons and note-offs to ``ports`` on time.

    Args:
        ports: an open :class:`~riffd.daemon.midi_ports.MidiPorts`.
        on_event: called after each message is sent (on the scheduler thread, outside its lock)
            with a dict such as ``{"type": "note_on", "channel": 1, "pitch": 60,
            "velocity": 90, "at": t, "send_at": t - early, "tag": None}``; ``at`` (the
            intended, grid time) and ``send_at`` (when it leaves the port: ``at - early_s``)
            in monotonic seconds.

    Counters: ``notes_sent`` (note-ons sent), ``late_notes`` (events handed over too late to
    sound within 1 ms of ``at``), ``errors`` (sends that failed), ``events_dropped`` (note
    events that could not be handed to the port: it was closed or its server gone).
    """

    def __init__(self, ports: MidiPorts, on_event: EventCallback | None = None,
                 realtime=None) -> None:
        self.ports = ports
        self.on_event = on_event
        self.realtime = realtime
        self.notes_sent = 0
        self.late_notes = 0
        self.errors = 0
        self.events_dropped = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._heap: list = []   # (send_at, kind, seq, channel, pitch, velocity, tag, at)
        self._seq = itertools.count()
        self._sounding: collections.Counter = collections.Counter()  # (channel, pitch) -> count
        self._channels_used: set[int] = set()
        self._horizon = 0.0            # latest send time handed to the port, monotonic s

    @property
    def lookahead_s(self) -> float:
        """How long before its time an event is handed to the port, seconds."""
        return self.ports.latency_s + SAFETY_S

    # ------------------------------------------------------------------ thread
    def start(self) -> "Scheduler":
        """Start the scheduler thread."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="riffd-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread, then silence every sounding note (:meth:`all_notes_off`)."""
        self._stop.set()
        with self._wake:
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.all_notes_off()

    def __enter__(self) -> "Scheduler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------- scheduling
    def schedule_on(self, at_s: float, channel: int, pitch: int, velocity: int, tag=None,
                    early_s: float = 0.0) -> None:
        """Queue a note-on to sound at monotonic time ``at_s`` (seconds); channel 1..16. It
        leaves the port ``early_s`` seconds before ``at_s`` (negative: after)."""
        _check(channel, pitch, velocity)
        self._push(at_s, NOTE_ON, channel, pitch, velocity, tag, early_s)

    def schedule_off(self, at_s: float, channel: int, pitch: int, tag=None,
                     early_s: float = 0.0) -> None:
        """Queue a note-off at monotonic time ``at_s`` (seconds); channel 1..16. ``tag`` names
        the owner (a voice) for :meth:`cancel_pending`; ``early_s`` as for the note's on."""
        _check(channel, pitch)
        self._push(at_s, NOTE_OFF, channel, pitch, 0, tag, early_s)

    def send_message(self, message, at_s: float | None = None) -> None:
        """Hand one non-note message (program change, CC) to the port now, to sound at ``at_s``
        (monotonic seconds; None = as soon as possible)."""
        with self._wake:
            self._send_raw(list(message), at_s, None)

    def safe_time(self) -> float:
        """The earliest send time (monotonic seconds) at which a note-off cannot overtake a
        note-on already handed to the port (a note-off scheduled with ``early_s`` leaves at
        ``at_s - early_s``: give it ``at_s = safe_time() + early_s``)."""
        with self._lock:
            return max(time.monotonic(), self._horizon) + 0.0005

    def _push(self, at_s, kind, channel, pitch, velocity, tag, early_s) -> None:
        at_s = float(at_s)
        with self._wake:
            item = (at_s - float(early_s), kind, next(self._seq), channel, pitch, velocity,
                    tag, at_s)
            heapq.heappush(self._heap, item)
            if self._heap[0] is item:
                self._wake.notify()  # new earliest event: re-plan the sleep

    def cancel_pending(self, tag=None) -> None:
        """Drop queued note-ons not yet sent, and the note-offs that would have ended them.

        Notes already sounding keep their earliest pending note-off; a sounding note with none
        keeps sounding until its off arrives or :meth:`all_notes_off`. With ``tag`` only the
        events of that owner (a voice) are touched.
        """
        with self._wake:
            mine = [item for item in self._heap if tag is None or item[6] == tag]
            keep = [item for item in self._heap if tag is not None and item[6] != tag]
            offs = sorted(item for item in mine if item[1] == NOTE_OFF)
            budget = collections.Counter(self._sounding)
            for item in keep:
                if item[1] == NOTE_OFF:
                    budget[(item[3], item[4])] -= 1
            for item in offs:
                key = (item[3], item[4])
                if budget[key] > 0:
                    budget[key] -= 1
                    keep.append(item)
            heapq.heapify(keep)
            self._heap = keep
            self._wake.notify()

    def all_notes_off(self) -> None:
        """Panic: drop everything pending, end every sounding note now, CC 123 on used channels."""
        events = []
        with self._wake:
            self._heap.clear()
            # Offs must not overtake note-ons already handed to the port for a future time.
            at = max(time.monotonic(), self._horizon)
            for (channel, pitch), count in sorted(self._sounding.items()):
                for _ in range(count):
                    events.append(self._send_locked(NOTE_OFF, channel, pitch, 0, at, None,
                                                    at))
            for channel in sorted(self._channels_used):
                events.append(self._send_cc_locked(channel, CC_ALL_NOTES_OFF, 0, at))
            self._sounding.clear()
            self._channels_used.clear()
        self._publish(events)

    def reset_sounding(self) -> None:
        """Forget every sounding note and the hand-over horizon without sending anything: the
        port's server went away and its notes died with it (call after re-opening the port).
        Queued events stay; note-offs whose note-on went out before are skipped."""
        with self._wake:
            self._sounding.clear()
            self._channels_used.clear()
            self._horizon = 0.0
            self._wake.notify()

    def send_reset(self, channels=range(1, 17)) -> None:
        """All Notes Off (CC 123) and All Sound Off (CC 120) on ``channels`` now."""
        from riffd.daemon.midi_ports import reset_messages
        with self._wake:
            for message in reset_messages(channels):
                self._send_raw(message, None, None)

    # -------------------------------------------------------------- counters
    def sounding(self) -> dict[tuple[int, int], int]:
        """Notes sounding now: ``{(channel, pitch): count}``."""
        with self._lock:
            return {key: n for key, n in self._sounding.items() if n > 0}

    def pending(self) -> int:
        """Number of queued events not yet handed to the port."""
        with self._lock:
            return len(self._heap)

    # ------------------------------------------------------------- internals
    def _run(self) -> None:
        """Thread: hand each event to the port `lookahead_s` before its time."""
        if self.realtime is not None:
            from riffd.daemon.realtime import SCHEDULER_PRIORITY
            self.realtime.promote("scheduler", SCHEDULER_PRIORITY)
        while not self._stop.is_set():
            events = []
            with self._wake:
                now = time.monotonic()
                horizon = now + self.lookahead_s
                while self._heap and self._heap[0][0] <= horizon:
                    send_at, kind, _seq, channel, pitch, velocity, tag, at = \
                        heapq.heappop(self._heap)
                    event = self._send_locked(kind, channel, pitch, velocity, send_at, tag,
                                              at, now)
                    if event is not None:
                        events.append(event)
                if not events:
                    wait = IDLE_WAIT_S
                    if self._heap:
                        wait = min(wait, self._heap[0][0] - horizon)
                    self._wake.wait(wait)
            self._publish(events)

    def _send_locked(self, kind, channel, pitch, velocity, send_at, tag, at,
                     now=None) -> dict | None:
        """Send one note message at ``send_at`` (lock held); update the sounding multiset.
        Returns the event (``at``: the intended time it reports)."""
        key = (channel, pitch)
        if kind == NOTE_OFF and self._sounding[key] <= 0:
            self._sounding.pop(key, None)
            return None  # its note-on was never sent (cancelled or failed): nothing to end
        status = (0x90 if kind == NOTE_ON else 0x80) | (channel - 1)
        if not self._send_raw([status, pitch, velocity if kind == NOTE_ON else 0], send_at,
                              now):
            self.events_dropped += 1
            if kind == NOTE_ON:
                return None
        if kind == NOTE_ON:
            self._sounding[key] += 1
            self._channels_used.add(channel)
            self.notes_sent += 1
        else:
            self._sounding[key] -= 1  # a failed off still ends it: the port is gone
            if self._sounding[key] <= 0:
                del self._sounding[key]
        return {"type": "note_on" if kind == NOTE_ON else "note_off", "channel": channel,
                "pitch": pitch, "velocity": velocity, "at": at, "send_at": send_at, "tag": tag}

    def _send_cc_locked(self, channel, control, value, at) -> dict:
        self._send_raw([0xB0 | (channel - 1), control, value], at, None)
        return {"type": "control_change", "channel": channel, "control": control,
                "value": value, "at": at, "send_at": at, "tag": None}

    def _send_raw(self, message, at, now) -> bool:
        if now is not None and at is not None and now > at - self.ports.latency_s + LATE_S:
            self.late_notes += 1
        try:
            self.ports.send(message, at=at)
        except MidiPortError:
            self.errors += 1
            return False
        except Exception as exc:  # never let the scheduler thread die
            self.errors += 1
            print(f"riffd: scheduler send failed: {exc!r}", file=sys.stderr)
            return False
        if at is not None and at > self._horizon:
            self._horizon = at
        return True

    def _publish(self, events) -> None:
        callback = self.on_event
        if callback is None:
            return
        for event in events:
            if event is None:
                continue
            try:
                callback(event)
            except Exception as exc:
                print(f"riffd: scheduler on_event callback failed: {exc!r}", file=sys.stderr)
