"""Capturing phrases played on a keyboard: notes in, a finished phrase out after a silence.

MIDI input arrives in the port's callback, which only queues it; this thread pairs
note-ons with note-offs and decides when a phrase has ended: no key held and no new
note for ``silence_s`` seconds, or (with ``end_at``) at the moment ``end_at`` gives, e.g. the
first bar line after the last note. The thread wakes at that moment, not on a poll.

The captor cannot be wedged by what arrives:

- a key held longer than ``max_hold_s`` seconds without its note-off (a lost note-off, a
  cable pulled) is released by the captor, logged and counted (``stuck_keys_released``);
  its late note-off, should it come, is ignored;
- a phrase never grows without bound: at ``max_notes`` notes, or ``max_phrase_s`` seconds
  after its first note, it ends there and then (keys still down end with it; their
  note-offs are ignored) and is answered; the next note starts a new phrase
  (``phrases_cut`` counts these);
- a note-on with velocity 0 is a note-off; a second note-on of a key that is down ends the
  first note and starts another; MIDI running status (data bytes without a status byte)
  is completed by :class:`RunningStatus` before messages reach the captor.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

MAX_HOLD_S = 10.0          # a key down longer than this without its note-off is released
MAX_PHRASE_NOTES = 256     # a phrase ends when it holds this many notes
MAX_PHRASE_S = 60.0        # ... or this many seconds after its first note-on
IDLE_WAIT_S = 0.5          # longest sleep of the thread when nothing is due, seconds


@dataclass(frozen=True)
class PlayedNote:
    """A note as played: MIDI pitch and velocity, on/off times in monotonic seconds."""

    pitch: int
    velocity: int
    on_s: float
    off_s: float


PhraseCallback = Callable[[list[PlayedNote], float], None]    # (notes, end in seconds)
EndCallback = Callable[[float], float]
NoteCallback = Callable[[int, int, float], None]


def _data_length(status: int) -> int:
    """Data bytes that follow a channel-voice status byte (0x80–0xEF)."""
    return 1 if status & 0xF0 in (0xC0, 0xD0) else 2


class RunningStatus:
    """Completes MIDI running status: data bytes that arrive without a status byte reuse the
    last channel-voice status (0x80–0xEF). System common messages (0xF0–0xF7) cancel it;
    real-time bytes (0xF8–0xFF) leave it alone. One instance per input, one thread."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.dropped = 0            # data bytes with no status to complete them

    def expand(self, message: list[int]) -> list[list[int]]:
        """Complete messages from one delivered message (a backend may hand over several
        running-status data pairs at once: ``[0x90, 60, 90, 62, 90]`` or ``[64, 0]``)."""
        if not message:
            return []
        first = message[0]
        if first >= 0xF8:
            return [list(message)]
        if 0xF0 <= first <= 0xF7:
            self.status = None
            return [list(message)]
        if first >= 0x80:
            self.status = first
            data = list(message[1:])
        else:
            data = list(message)
        if self.status is None:
            self.dropped += len(data)
            return []
        size = _data_length(self.status)
        out = [[self.status, *data[i:i + size]] for i in range(0, len(data) - size + 1, size)]
        if not out and first >= 0x80:        # a status byte whose data is short: pass it on
            return [list(message)]
        return out


class PhraseCaptor:
    """One thread: turns incoming MIDI messages into phrases.

    on_phrase(notes, end_s) is called from this thread when a phrase ends (``end_s``: the
    monotonic time it ended); on_note(pitch, velocity, time_s) for every note-on as it arrives
    (velocity 0 never reaches it). ``end_at(last_activity_s)`` (optional) gives the end of a
    phrase whose last key was released at ``last_activity_s``; the default is
    ``last_activity_s + silence_s``. ``max_hold_s``, ``max_notes`` and ``max_phrase_s``
    bound a held key and a phrase (see the module docstring); times in seconds.
    """

    def __init__(self, on_phrase: PhraseCallback, silence_s: float = 1.0,
                 on_note: NoteCallback | None = None, max_notes: int = MAX_PHRASE_NOTES,
                 end_at: EndCallback | None = None, max_hold_s: float = MAX_HOLD_S,
                 max_phrase_s: float = MAX_PHRASE_S):
        if max_hold_s <= 0 or max_phrase_s <= 0 or max_notes < 1:
            raise ValueError(f"max_hold_s ({max_hold_s} s), max_phrase_s ({max_phrase_s} s) "
                             f"and max_notes ({max_notes}) must be positive")
        self.silence_s = silence_s
        self.end_at = end_at
        self.max_notes = max_notes
        self.max_hold_s = max_hold_s
        self.max_phrase_s = max_phrase_s
        self._on_phrase = on_phrase
        self._on_note = on_note
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # (channel 0-15, pitch) → (velocity, note-on time in seconds)
        self._held: dict[tuple[int, int], tuple[int, float]] = {}
        self._notes: list[PlayedNote] = []
        self._first_on = 0.0                            # first note-on of the phrase, seconds
        self._last_activity = 0.0
        self.phrases = 0
        self.messages = 0
        self.stuck_keys_released = 0
        self.phrases_cut = 0

    def feed(self, message: list[int], time_s: float) -> None:
        """Queue one MIDI message (any thread; this is the port's input callback)."""
        self._inbox.put((message, time_s))

    def start(self) -> "PhraseCaptor":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="riffd-captor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = max(0.0, min(IDLE_WAIT_S, self._next_due() - time.monotonic()))
            try:
                item = self._inbox.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is not None:
                self.handle(*item)
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        """Release stuck keys, cut an overlong phrase, finish an ended one (this thread; tests
        call it with their own ``now``, monotonic seconds)."""
        self._release_stuck(now)
        self._maybe_cut(now)
        self._maybe_finish(now)

    def _next_due(self) -> float:
        """The next moment (monotonic seconds) something is due without new input."""
        due = [time.monotonic() + IDLE_WAIT_S]
        if self._held:
            due.append(min(on for _, on in self._held.values()) + self.max_hold_s)
        if self._notes or self._held:
            due.append(self._first_on + self.max_phrase_s)
        if self._notes and not self._held:
            due.append(self._end_s())
        return min(due)

    def handle(self, message: list[int], time_s: float) -> None:
        """Take one complete MIDI message played at ``time_s`` (monotonic seconds) now (this
        thread; tests call it directly, with :meth:`tick`, without starting the thread)."""
        if len(message) < 3:
            return
        self.messages += 1
        kind, pitch, velocity = message[0] & 0xF0, message[1], message[2]
        key = (message[0] & 0x0F, pitch)
        if kind == 0x90 and velocity > 0:
            if key in self._held:                       # re-struck without a note-off
                self._close(key, time_s)
            if not self._notes and not self._held:
                self._first_on = time_s
            self._held[key] = (velocity, time_s)
            self._last_activity = time_s
            if self._on_note is not None:
                self._on_note(pitch, velocity, time_s)
            if len(self._notes) + len(self._held) >= self.max_notes:
                self._cut(time_s, f"it reached {self.max_notes} notes")
        elif kind == 0x80 or (kind == 0x90 and velocity == 0):
            if key in self._held:                       # else: a late off of a released key
                self._close(key, time_s)
                self._last_activity = time_s

    def _close(self, key: tuple[int, int], time_s: float) -> None:
        velocity, on_s = self._held.pop(key)
        self._notes.append(PlayedNote(key[1], velocity, on_s, max(time_s, on_s)))

    def _release_stuck(self, now: float) -> None:
        for key, (_, on_s) in list(self._held.items()):
            if now - on_s < self.max_hold_s:
                continue
            # the note ends where the playing last moved: its true end is unknown
            self._close(key, max(self._last_activity, on_s))
            self.stuck_keys_released += 1
            log.warning("key %d (channel %d) held %.1f s without a note-off: released it "
                        "(a lost note-off? --max-hold sets the limit)", key[1], key[0] + 1,
                        now - on_s)

    def _maybe_cut(self, now: float) -> None:
        if (self._notes or self._held) and now - self._first_on >= self.max_phrase_s:
            self._cut(now, f"it lasted {self.max_phrase_s:g} s")

    def _cut(self, now: float, why: str) -> None:
        """End the phrase now: keys still down end with it (their note-offs are ignored)."""
        for key in list(self._held):
            self._close(key, now)
        self.phrases_cut += 1
        log.info("phrase ended early: %s", why)
        self._finish(now)

    def _end_s(self) -> float:
        if self.end_at is not None:
            return self.end_at(self._last_activity)
        return self._last_activity + self.silence_s

    def _maybe_finish(self, now: float) -> None:
        if self._held or not self._notes:
            return
        end = self._end_s()
        if now < end:
            return
        self._finish(end)

    def _finish(self, end: float) -> None:
        phrase, self._notes = sorted(self._notes, key=lambda n: n.on_s), []
        self.phrases += 1
        self._on_phrase(phrase, end)

    def recent(self, count: int) -> list[PlayedNote]:
        """The last ``count`` notes of the phrase in progress, held keys included (this thread:
        call it from on_note)."""
        held = [PlayedNote(p, v, on, max(on, self._last_activity))
                for (_, p), (v, on) in self._held.items()]
        return sorted(self._notes + held, key=lambda n: n.on_s)[-count:]
