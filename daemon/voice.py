"""A voice: one model generating ahead of time in its own thread, feeding the scheduler.

Time: the voice keeps a cursor in monotonic seconds where its next step will sound,
and generates while the cursor is less than ``lookahead_s`` ahead of now. Each step
lasts ``60 / tempo * step_beats`` seconds at the tempo of the moment it is generated.
Steps (``engine.generator.Step``) become scheduled MIDI: started pitches get a note-on
(re-struck if sounding), held pitches keep sounding, every other sounding pitch ends.
"""
from __future__ import annotations

import collections
import queue
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from engine.generator import Step
from engine.melody_representation import Note

IDLE, ANSWERING, PLAYING = "idle", "answering", "playing"
# After a seed the model first holds the seed's last note or rests; an answer skips up to
# this many silent steps (one 4/4 bar of 16ths) so that it starts at once.
MAX_LEADING_SILENCE_STEPS = 16


@dataclass(frozen=True)
class VoiceSettings:
    """Playback settings: MIDI channel 1–16, velocity 1–127, tempo in BPM, answer length in bars."""

    channel: int = 1
    velocity: int = 90
    tempo: float = 120.0
    length_bars: int = 4
    beats_per_bar: int = 4


class MelodyVoice:
    """Owns a generator (only this thread touches it) and turns its tokens into notes."""

    def __init__(self, generator, scheduler, settings: VoiceSettings,
                 on_state: Callable[[dict], None] | None = None, lookahead_s: float = 0.15):
        self.generator = generator
        self.scheduler = scheduler
        self.settings = settings
        self.lookahead_s = lookahead_s
        self._on_state = on_state
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.mode = IDLE
        self._cursor = 0.0                 # monotonic seconds of the next step
        self._steps_left = 0
        self._skip_silence = 0             # leading hold/rest steps an answer may drop
        self._sounding: dict[int, int] = {}             # pitch → channel of open notes
        self.steps_generated = 0
        self.step_seconds: collections.deque = collections.deque(maxlen=4096)  # recent steps
        self.last_key = generator.key.name

    # -- commands, from any thread --------------------------------------------------
    def answer(self, notes: list[Note]) -> None:
        """Answer a seed phrase (beats) with ``length_bars`` bars, starting at once."""
        self._commands.put(("answer", notes))

    def prime(self, notes: list[Note]) -> None:
        """Take a seed phrase without playing; ``play`` continues from it."""
        self._commands.put(("prime", notes))

    def play(self) -> None:
        """Play on continuously from the model's current state until ``halt``."""
        self._commands.put(("play", None))

    def halt(self) -> None:
        """Stop playing; the scheduler sends a note-off for every sounding note."""
        self._commands.put(("halt", None))

    def configure(self, **changes) -> None:
        """Change settings (channel, velocity, tempo, length_bars) or sampling fields."""
        self._commands.put(("configure", changes))

    def call(self, fn: Callable[[object], object]) -> None:
        """Run ``fn(generator)`` on the voice thread (e.g. to change constraints)."""
        self._commands.put(("call", fn))

    # -- thread -------------------------------------------------------------------------
    def start(self) -> "MelodyVoice":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="riffd-voice", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._commands.put(("wake", None))
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                command, arg = self._commands.get(timeout=self._wait_s())
                self._handle(command, arg)
            except queue.Empty:
                pass
            if self.mode != IDLE:
                self._generate_until(time.monotonic() + self.lookahead_s)

    def _wait_s(self) -> float:
        if self.mode == IDLE:
            return 0.5
        # wake when the cursor is about to fall inside the lookahead window
        return min(0.5, max(0.0, self._cursor - self.lookahead_s / 2 - time.monotonic()))

    def _handle(self, command: str, arg) -> None:
        if command == "answer":
            self._cut()
            self.last_key = self.generator.prime(arg).name
            s = self.settings
            self._begin(ANSWERING, round(s.length_bars * s.beats_per_bar / self.generator.step_beats))
            self._skip_silence = MAX_LEADING_SILENCE_STEPS
        elif command == "prime":
            self._cut()
            self.last_key = self.generator.prime(arg).name
            self._set_mode(IDLE)
        elif command == "play":
            if self.mode != PLAYING:
                self._begin(PLAYING, 0)
        elif command == "halt":
            self._cut()
            self._set_mode(IDLE)
        elif command == "configure":
            sampling = {k: v for k, v in arg.items() if hasattr(self.generator.settings, k)}
            voice = {k: v for k, v in arg.items() if hasattr(self.settings, k)}
            self.generator.settings = replace(self.generator.settings, **sampling)
            self.settings = replace(self.settings, **voice)
        elif command == "call":
            arg(self.generator)

    def _begin(self, mode: str, steps: int) -> None:
        self._cursor = time.monotonic() + self.lookahead_s
        self._steps_left = steps
        self._set_mode(mode)

    def _cut(self) -> None:
        """Drop what is scheduled and silence what sounds (stop, panic, a new phrase)."""
        self.scheduler.all_notes_off()
        self._sounding.clear()

    def _set_mode(self, mode: str) -> None:
        if mode != self.mode:
            self.mode = mode
            if self._on_state is not None:
                self._on_state({"state": mode, "key": self.last_key})

    def _generate_until(self, horizon: float) -> None:
        s = self.settings
        step_s = 60.0 / s.tempo * self.generator.step_beats
        while self.mode != IDLE and self._cursor < horizon:
            started = time.perf_counter()
            step = self.generator.next_step()
            self.step_seconds.append(time.perf_counter() - started)
            self.steps_generated += 1
            if self._skip_silence > 0:
                if not step.starts:
                    self._skip_silence -= 1
                    continue                   # not played: the cursor stays where it is
                self._skip_silence = 0
            self._emit(step, self._cursor, s)
            self._cursor += step_s
            if self.mode == ANSWERING:
                self._steps_left -= 1
                if self._steps_left <= 0:
                    self._close(self._cursor)
                    self._set_mode(IDLE)

    def _emit(self, step: Step, at: float, s: VoiceSettings) -> None:
        ending = [p for p in self._sounding if p not in step.holds or p in step.starts]
        for pitch in ending:
            self.scheduler.schedule_off(at, self._sounding.pop(pitch), pitch)
        for pitch in step.starts:
            if 0 <= pitch <= 127 and pitch not in self._sounding:
                self.scheduler.schedule_on(at, s.channel, pitch, s.velocity)
                self._sounding[pitch] = s.channel

    def _close(self, at: float) -> None:
        for pitch, channel in self._sounding.items():
            self.scheduler.schedule_off(at, channel, pitch)
        self._sounding.clear()
