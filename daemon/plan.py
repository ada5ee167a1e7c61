"""What a voice has generated ahead of the playhead: its plan, published as ``plan`` events.

A voice generates ``lookahead_s`` seconds ahead of now (daemon/voice.py). The notes it has
placed on the scheduler that have not started yet are its plan: what it will play next.
:class:`Plan` records them as the voice places them (start beat and time, output pitch,
velocity; the length once the note-off is placed) and says when a ``plan`` event is due: only
when the plan changed, and at most once every ``every_s`` seconds. An empty plan (the voice
stopped, or played everything it had) goes out once too, so a viewer clears what it drew.

Voice thread only: no lock.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

PLAN_EVERY_S = 0.25      # at most four plan events a second per voice
MAX_PLAN_NOTES = 64      # a plan event carries at most this many notes (the earliest)


@dataclass
class PlannedNote:
    """One note placed ahead: ``pitch`` is the output MIDI pitch, ``beat`` its start on the
    daemon's clock (beats), ``at_s`` its start (monotonic seconds), ``end_beat`` where its
    note-off was placed (None while the voice still holds it)."""

    pitch: int
    velocity: int
    beat: float
    at_s: float
    end_beat: float | None = None


class Plan:
    """The notes one voice has placed and not yet started, and the rate limit of its events."""

    def __init__(self, every_s: float = PLAN_EVERY_S):
        self.every_s = every_s
        self._ahead: list[PlannedNote] = []          # in the order placed (start order)
        self._held: dict[int, PlannedNote] = {}      # output pitch → its note, no note-off yet
        self._published: tuple = ()                  # what the last event said (nothing yet)
        self._published_s = -math.inf                # when, monotonic seconds
        self.events = 0                              # plan events made

    def started(self, pitch: int, velocity: int, beat: float, at_s: float) -> None:
        """A note-on for output ``pitch`` was placed at ``beat`` (monotonic ``at_s``)."""
        note = PlannedNote(pitch, velocity, beat, at_s)
        self._ahead.append(note)
        self._held[pitch] = note

    def ended(self, pitch: int, end_beat: float) -> None:
        """The note-off for output ``pitch`` was placed at ``end_beat``."""
        note = self._held.pop(pitch, None)
        if note is not None:
            note.end_beat = max(end_beat, note.beat)

    def cancel(self, now_s: float) -> None:
        """The voice dropped what it had not sent yet: forget the notes that start after
        ``now_s`` (monotonic seconds)."""
        self._ahead = [n for n in self._ahead if n.at_s <= now_s]
        self._held = {p: n for p, n in self._held.items() if n.at_s <= now_s}

    def due(self, now_s: float, now_beat: float, until_beat: float) -> dict | None:
        """The data of a ``plan`` event when one is due, else None.

        ``now_s``/``now_beat``: the playhead (monotonic seconds, beats); ``until_beat``: how
        far the voice has generated (its cursor, beats). Each note gives ``pitch``,
        ``velocity``, ``beat`` (start), ``duration`` (beats; for a note still held at
        ``until`` the length so far, with ``held`` true) and ``in_s`` (seconds until it starts).
        """
        self._ahead = [n for n in self._ahead if n.at_s > now_s]
        ahead = self._ahead[:MAX_PLAN_NOTES]
        until = max(until_beat, now_beat)
        key = tuple((n.pitch, round(n.beat, 4), n.end_beat) for n in ahead)
        if key == self._published or now_s - self._published_s < self.every_s:
            return None
        self._published, self._published_s = key, now_s
        self.events += 1
        notes = []
        for n in ahead:
            end = n.end_beat if n.end_beat is not None else max(until, n.beat)
            notes.append({"pitch": n.pitch, "velocity": n.velocity, "beat": round(n.beat, 4),
                          "duration": round(end - n.beat, 4), "held": n.end_beat is None,
                          "in_s": round(n.at_s - now_s, 4)})
        return {"beat": round(now_beat, 4), "until": round(until, 4), "notes": notes}
