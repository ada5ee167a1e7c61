"""Capturing phrases played on a keyboard: notes in, a finished phrase out after a silence.

MIDI input arrives in the port's callback, which only queues it; this thread pairs
note-ons with note-offs and decides when a phrase has ended: no key held and no new
note for ``silence_s`` seconds, or (with ``end_at``) at the moment ``end_at`` gives, e.g. the
first bar line after the last note. The thread wakes at that moment, not on a poll.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable


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


class PhraseCaptor:
    """One thread: turns incoming MIDI messages into phrases.

    on_phrase(notes, end_s) is called from this thread when a phrase ends (``end_s``: the
    monotonic time it ended); on_note(pitch, velocity, time_s) for every note-on as it arrives
    (velocity 0 never reaches it). ``end_at(last_activity_s)`` (optional) gives the end of a
    phrase whose last key was released at ``last_activity_s``; the default is
    ``last_activity_s + silence_s``.
    """

    def __init__(self, on_phrase: PhraseCallback, silence_s: float = 1.0,
                 on_note: NoteCallback | None = None, max_notes: int = 512,
                 end_at: EndCallback | None = None):
        self.silence_s = silence_s
        self.end_at = end_at
        self.max_notes = max_notes
        self._on_phrase = on_phrase
        self._on_note = on_note
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: dict[int, tuple[int, float]] = {}      # pitch → (velocity, on time)
        self._notes: list[PlayedNote] = []
        self._last_activity = 0.0
        self.phrases = 0
        self.messages = 0

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
            timeout = 0.5
            if self._notes and not self._held:
                timeout = min(0.5, max(0.0, self._end_s() - time.monotonic()))
            try:
                item = self._inbox.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is not None:
                self._handle(*item)
            self._maybe_finish(time.monotonic())

    def _handle(self, message: list[int], time_s: float) -> None:
        if len(message) < 3:
            return
        self.messages += 1
        kind, pitch, velocity = message[0] & 0xF0, message[1], message[2]
        if kind == 0x90 and velocity > 0:
            if pitch in self._held:                     # re-struck without a note-off
                self._close(pitch, time_s)
            self._held[pitch] = (velocity, time_s)
            self._last_activity = time_s
            if self._on_note is not None:
                self._on_note(pitch, velocity, time_s)
        elif kind == 0x80 or (kind == 0x90 and velocity == 0):
            if pitch in self._held:
                self._close(pitch, time_s)
                self._last_activity = time_s

    def _close(self, pitch: int, time_s: float) -> None:
        velocity, on_s = self._held.pop(pitch)
        if len(self._notes) < self.max_notes:
            self._notes.append(PlayedNote(pitch, velocity, on_s, max(time_s, on_s)))

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
        phrase, self._notes = sorted(self._notes, key=lambda n: n.on_s), []
        self.phrases += 1
        self._on_phrase(phrase, end)

    def recent(self, count: int) -> list[PlayedNote]:
        """The last ``count`` notes of the phrase in progress, held keys included (this thread:
        call it from on_note)."""
        held = [PlayedNote(p, v, on, max(on, self._last_activity)) for p, (v, on) in self._held.items()]
        return sorted(self._notes + held, key=lambda n: n.on_s)[-count:]
