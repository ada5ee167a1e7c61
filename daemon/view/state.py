"""What the view knows about a running daemon, built from ``status`` replies and events.

Plain data, touched only by the UI thread: :class:`ViewState` takes status dicts and event
dicts (as :mod:`riffd.daemon.protocol` defines them) and keeps, per voice, the notes riffd sent, the
notes played in (``phrase`` events) and the latest ``plan``, all in **beats** of the daemon's
clock, so the piano roll can draw them on one grid.

Time: events carry the daemon's monotonic seconds. The view turns them into beats with the
clock in the latest status (``beat0_s``: when beat 0 sounds, ``tempo`` in BPM) and places its
playhead with the offset between the daemon's clock and this process's, measured by ``ping``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

KEEP_BEATS = 128.0          # notes that ended longer ago than this are forgotten, beats
MAX_NOTES = 2000            # at most this many sent (and as many played-in) notes per voice


@dataclass
class RollNote:
    """A note on the roll: MIDI ``pitch``, ``start``/``end`` in beats (end None: sounding)."""

    pitch: int
    start: float
    end: float | None = None
    velocity: int = 0


@dataclass
class VoiceView:
    """One voice as the view shows it."""

    name: str
    state: str = "idle"
    model: str = ""
    settings: dict = field(default_factory=dict)
    sent: list[RollNote] = field(default_factory=list)      # notes riffd played
    played: list[RollNote] = field(default_factory=list)    # notes played in (phrases)
    plan: list[RollNote] = field(default_factory=list)      # generated ahead (plan event)
    plan_until: float = 0.0                                 # beats the plan reaches
    errors: int = 0


class ViewState:
    """The daemon as last seen: connection, clock, counters and voices."""

    def __init__(self):
        self.connected = False
        self.endpoint = ""
        self.problem = ""                     # why not connected, for the musician
        self.offset_s = 0.0                   # daemon monotonic − local monotonic, seconds
        self.tempo = 120.0
        self.beat0_s = 0.0                    # daemon monotonic seconds of beat 0
        self.beats_per_bar = 4
        self.source = "internal"
        self.running = True
        self.link: dict = {}
        self.counters: dict = {}
        self.voices: dict[str, VoiceView] = {}
        self.message = ""                     # the latest command's answer or error

    # -- time --------------------------------------------------------------------------------
    def beat_of(self, daemon_s: float) -> float:
        """The beat that sounds at ``daemon_s`` (the daemon's monotonic seconds)."""
        return (daemon_s - self.beat0_s) * self.tempo / 60.0

    def now_beat(self, local_s: float | None = None) -> float:
        """The playhead, in beats (``local_s``: this process's monotonic seconds; now)."""
        local = time.monotonic() if local_s is None else local_s
        return self.beat_of(local + self.offset_s)

    def bar_beat(self, beat: float) -> str:
        """``"12.3"``: bar and beat, both counted from 1."""
        whole = int(beat // 1) if beat >= 0 else 0
        return f"{whole // self.beats_per_bar + 1}.{whole % self.beats_per_bar + 1}"

    # -- input -------------------------------------------------------------------------------
    def voice(self, name: str | None) -> VoiceView:
        name = name or next(iter(self.voices), "main")
        if name not in self.voices:
            self.voices[name] = VoiceView(name)
        return self.voices[name]

    def apply_status(self, status: dict) -> None:
        """Take a ``status`` reply: clock, counters and every voice (voices that are gone are
        dropped)."""
        clock = status.get("clock") or {}
        self.tempo = float(clock.get("tempo") or status.get("tempo") or self.tempo)
        self.beat0_s = float(clock.get("beat0_s", self.beat0_s))
        self.beats_per_bar = int(clock.get("beats_per_bar") or self.beats_per_bar)
        self.source = str(clock.get("source", self.source))
        self.running = bool(clock.get("running", True))
        self.link = status.get("link") or {}
        self.counters = status.get("counters") or {}
        names = []
        for v in status.get("voices") or []:
            view = self.voice(v.get("name"))
            names.append(view.name)
            view.state = v.get("state", view.state)
            model = v.get("model") or {}
            view.model = str(model.get("name") or model.get("path") or "")
            view.settings = v.get("settings") or {}
            view.errors = int(v.get("errors") or 0)
        for gone in set(self.voices) - set(names):
            del self.voices[gone]

    def apply_event(self, event: dict) -> None:
        """Take one event dict (note_on, note_off, phrase, plan, state; others are ignored)."""
        kind = event.get("event")
        if kind == "note_on":
            v = self.voice(event.get("voice"))
            v.sent.append(RollNote(int(event["pitch"]), self.beat_of(event.get("at", event["t"])),
                                   None, int(event.get("velocity", 0))))
            _trim(v.sent)
        elif kind == "note_off":
            v = self.voice(event.get("voice"))
            end = self.beat_of(event.get("at", event["t"]))
            for note in reversed(v.sent):
                if note.pitch == event["pitch"] and note.end is None:
                    note.end = max(end, note.start)
                    break
        elif kind == "phrase":
            notes = event.get("notes") or []
            if not notes:
                return
            if "beat" in event:                      # played on riffd:in: where it was played
                origin = float(event["beat"])
            else:                                    # a seed: drawn as just arrived
                span = max(n["start"] + n["duration"] for n in notes)
                origin = self.beat_of(event["t"]) - span
            for name in list(self.voices) or [None]:
                v = self.voice(name)
                v.played.extend(RollNote(int(n["pitch"]), origin + n["start"],
                                         origin + n["start"] + n["duration"]) for n in notes)
                _trim(v.played)
        elif kind == "plan":
            v = self.voice(event.get("voice"))
            v.plan = [RollNote(int(n["pitch"]), float(n["beat"]),
                               float(n["beat"]) + float(n["duration"]), int(n["velocity"]))
                      for n in event.get("notes") or []]
            v.plan_until = float(event.get("until", 0.0))
        elif kind == "state" and event.get("voice") is not None:
            v = self.voice(event["voice"])
            v.state = event.get("state", v.state)

    def forget_before(self, beat: float) -> None:
        """Drop notes that ended before ``beat`` (keeps memory flat over a long session)."""
        for v in self.voices.values():
            v.sent = [n for n in v.sent if n.end is None or n.end >= beat]
            v.played = [n for n in v.played if n.end is None or n.end >= beat]


def _trim(notes: list[RollNote]) -> None:
    if len(notes) > MAX_NOTES:
        del notes[:len(notes) - MAX_NOTES]
