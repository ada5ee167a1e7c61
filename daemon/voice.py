"""A voice: one model generating ahead of time in its own thread, placed on the clock's beats.

Time: the voice keeps a cursor in **beats** where its next step will sound; the clock turns
beats into monotonic seconds, so every note lands on the beat grid, at the internal tempo or
on a DAW's MIDI clock. The thread generates while the cursor's time is less than
``lookahead_s`` ahead of now. Each step lasts ``generator.step_beats`` beats. Steps
(``riffd.engine.generator.Step``) become scheduled MIDI: started pitches get a note-on (re-struck if
sounding), held pitches keep sounding, every other sounding pitch ends.

Modes (what a played phrase does): ``answer`` (answer a finished phrase from the next beat or
bar), ``follow`` (each played note re-conditions the model and the voice plays along for a
bar), ``continuous`` (plays on by itself once started, played phrases are ignored). ``play``
makes any voice play continuously until ``halt``. A ``seed`` (:meth:`Voice.seed`) to a
continuous voice re-primes it and it plays on from the next beat, in the seed's key.

A model step that raises is counted (``errors``), reported as an ``error`` event naming the
voice and the cause; the voice's sounding notes end and it goes idle (``start`` or a new
phrase wakes it).

A model swap (:meth:`Voice.swap`) takes effect at the first bar line the cursor reaches: the
old model's notes end there, the new model is primed with what the voice just played.
"""
from __future__ import annotations

import collections
import logging
import math
import queue
import random
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from riffd.daemon.latency import check_output_latency_ms, early_s, lead_s
from riffd.daemon.plan import Plan
from riffd.engine.generator import Step
from riffd.engine.melody_generator import Constraints
from riffd.engine.melody_representation import Note
from riffd.engine.motif_memory import MotifMemory
from riffd.engine.seed_profile import Dynamics, density_limit, register, register_window

IDLE, ANSWERING, PLAYING, FOLLOWING = "idle", "answering", "playing", "following"
MODES = ("answer", "continuous", "follow")
ANSWER_ON = ("beat", "bar")
# After a seed the model first holds the seed's last note or rests; an answer skips up to
# this many silent steps (one 4/4 bar of 16ths) so that it starts on its beat.
MAX_LEADING_SILENCE_STEPS = 16
PREPARE_S = 0.03          # an answer or a follow starts no sooner than this after the request
HISTORY_NOTES = 32        # notes kept to prime a swapped-in model

PITCH_CLASSES = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
                 "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
          "dorian": (0, 2, 3, 5, 7, 9, 10), "mixolydian": (0, 2, 4, 5, 7, 9, 10),
          "pentatonic": (0, 2, 4, 7, 9), "minor_pentatonic": (0, 3, 5, 7, 10),
          "blues": (0, 3, 5, 6, 7, 10), "chromatic": tuple(range(12))}

EventCallback = Callable[[str, dict], None]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceSettings:
    """Per-voice playback controls.

    channel 1–16; program 0–127 (-1 = send none); velocity 1–127 with ``velocity_spread``
    (± uniform, MIDI units); ``humanize_ms`` (timing jitter, standard deviation in ms);
    ``transpose`` (semitones); ``low``/``high`` (MIDI pitch range); ``key`` ("" = the seed's
    key, else a tonic like "D" or "Bb") and ``scale`` ("" = none, else a name in SCALES);
    ``density`` (most note starts per bar, 0 = no limit); ``length_bars`` (answer length,
    0 = as long as the call); ``mode`` and ``answer_on`` ("beat" | "bar");
    ``output_latency_ms`` (notes leave this many ms before their grid time, negative = after:
    see daemon/latency.py).

    Following the seed (each on by default, each overridden by its explicit control):
    ``follow_key`` keeps notes in the seed's scale (its mode, e.g. D dorian) when ``scale``
    is empty; ``follow_register`` plays around the seed's median pitch (within ``low`` …
    ``high``); ``follow_dynamics`` takes velocities from the seed's level and contour
    instead of ``velocity`` (when the seed's velocities are known); ``follow_density``
    (when ``density`` is 0) spaces note starts so that there are at most 2 × the seed's
    notes per bar, evenly.

    Structure (continuous playing): ``repeat`` (0–1) is the probability that the next phrase
    of ``motif_bars`` bars plays an earlier phrase again (sometimes moved a scale step or two),
    so motifs come back; 0 = never, as the model plays on its own (engine/motif_memory.py).

    Repeatability: ``rng_seed`` ≥ 0 restarts every random choice of the voice (the model's
    draws, the motif memory, velocity spread and humanising) from that seed at each seed
    phrase and at each continuous start, so the same phrase gets the same answer; -1 (the
    default) draws fresh each time.
    """

    channel: int = 1
    program: int = -1
    velocity: int = 90
    velocity_spread: int = 0
    humanize_ms: float = 0.0
    transpose: int = 0
    low: int = 0
    high: int = 127
    key: str = ""
    scale: str = ""
    density: int = 0
    length_bars: int = 4
    mode: str = "answer"
    answer_on: str = "beat"
    follow_key: bool = True
    follow_register: bool = True
    follow_dynamics: bool = True
    follow_density: bool = True
    repeat: float = 0.25
    motif_bars: int = 4
    output_latency_ms: float = 0.0
    rng_seed: int = -1


MAX_RNG_SEED = 2**31 - 1


def check_settings(s: VoiceSettings) -> None:
    """Raise ValueError naming the bad field and what is allowed."""
    if s.mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {s.mode!r}")
    if s.answer_on not in ANSWER_ON:
        raise ValueError(f"answer_on must be beat or bar, not {s.answer_on!r}")
    if s.key and s.key not in PITCH_CLASSES:
        raise ValueError(f"key must be a tonic like C, F#, Bb (or empty for the seed's key), "
                         f"not {s.key!r}")
    if s.scale and s.scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)} (or empty), not {s.scale!r}")
    if not 1 <= s.channel <= 16:
        raise ValueError(f"channel must be 1..16, not {s.channel}")
    if s.low > s.high:
        raise ValueError(f"low ({s.low}) must not be above high ({s.high})")
    if not 0.0 <= s.repeat <= 1.0:
        raise ValueError(f"repeat must be 0..1 (the chance a phrase comes back), not {s.repeat}")
    if not 1 <= s.motif_bars <= 16:
        raise ValueError(f"motif_bars must be 1..16 bars, not {s.motif_bars}")
    if not -1 <= s.rng_seed <= MAX_RNG_SEED:
        raise ValueError(f"rng_seed must be -1 (fresh draws) or 0..{MAX_RNG_SEED}, "
                         f"not {s.rng_seed}")
    check_output_latency_ms(s.output_latency_ms)


class Voice:
    """Owns a generator (only this thread touches it) and turns its steps into notes."""

    def __init__(self, name: str, generator, scheduler, clock, settings: VoiceSettings,
                 on_event: EventCallback | None = None, lookahead_s: float = 0.15,
                 seed: int | None = None):
        check_settings(settings)
        self.name = name
        self.generator = generator
        self.scheduler = scheduler
        self.clock = clock
        self.settings = settings
        self.lookahead_s = lookahead_s
        self._on_event = on_event
        self._rng = random.Random(seed)
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.mode = IDLE
        self._cursor = 0.0                 # beats: where the next step sounds
        self._end_beat = math.inf          # answers/follows stop here
        self._skip_silence = 0
        self._sounding: dict[int, int] = {}        # generator pitch → output pitch
        self._on_at: dict[int, float] = {}         # generator pitch → its note-on, seconds
        self._early: dict[int, float] = {}         # generator pitch → its send offset, s
        self._off_sent: dict[tuple[int, int], float] = {}  # (channel, output pitch) → send
                                                   # time of its latest note-off, seconds
        self._history: collections.deque = collections.deque(maxlen=HISTORY_NOTES)
        self._opened: dict[int, float] = {}        # generator pitch → start beat
        self._swap = None                          # (generator, beat or None)
        self._bar_starts = (-1, 0)                 # (bar index, note starts in it)
        self._seed_register: float | None = None   # median MIDI pitch of the last seed
        self._seed_density = 0                     # note starts per bar it allows (0 = any)
        self._dynamics: Dynamics | None = None     # the last seed's velocity contour
        self._seed_beats = 1.0                     # its length, beats
        self._begin_beat = 0.0                     # where the current answer/play began
        self._last_start_beat = -math.inf          # the latest note start let through
        self._left_out: set[int] = set()           # generator pitches thinning left out
        self.motifs = MotifMemory(seed)            # phrases played, recalled when playing on
        self.steps_generated = 0
        self.errors = 0                            # model steps (or commands) that raised
        self.last_error: str | None = None
        self.swaps = 0
        self.follows = 0                           # played notes followed
        self.last_swap: dict | None = None         # {"beat", "at"} of the latest model switch
        self.step_seconds: collections.deque = collections.deque(maxlen=4096)
        self.last_key = generator.key.name
        self.plan = Plan()                         # notes placed ahead (plan events)

    # -- commands, from any thread --------------------------------------------------------
    def answer(self, notes: list[Note], start_beat: float | None = None,
               velocities: list[int] | None = None) -> None:
        """Answer a phrase (beats): from ``start_beat`` (None: the next beat or bar).
        ``velocities``: how hard each note was played (1–127), None when unknown."""
        self._commands.put(("answer", (notes, start_beat, velocities)))

    def prime(self, notes: list[Note], velocities: list[int] | None = None) -> None:
        """Take a seed phrase without playing; ``play`` continues from it."""
        self._commands.put(("prime", (notes, velocities)))

    def seed(self, notes: list[Note], play: bool = True,
             velocities: list[int] | None = None) -> None:
        """A seed phrase (beats) from the control side. A continuous voice re-primes and plays
        on from the next beat (it starts playing when ``play``, keeps playing when it was);
        any other voice answers it (``play``) or only takes it (see :meth:`prime`)."""
        self._commands.put(("seed", (notes, play, velocities)))

    def follow(self, notes: list[Note], velocities: list[int] | None = None) -> None:
        """A note was just played: re-prime with the recent ``notes`` and play along a bar."""
        self._commands.put(("follow", (notes, velocities)))

    def play(self) -> None:
        """Play on continuously, from the next beat, until ``halt``."""
        self._commands.put(("play", None))

    def halt(self, wait_s: float = 0.0) -> bool:
        """Stop playing; every note this voice sounds gets its note-off. With ``wait_s`` > 0,
        wait up to that many seconds until the voice thread has stopped (it then schedules
        no further note); returns whether it has."""
        done = threading.Event()
        self._commands.put(("halt", done))
        return done.wait(wait_s) if wait_s > 0 else False

    def configure(self, wait_s: float = 0.0, **changes) -> bool:
        """Change VoiceSettings fields or sampling fields (temperature, top_k, top_p, greedy).
        With ``wait_s`` > 0, wait up to that many seconds until the voice thread has applied
        them (a ``status`` after it then shows them); returns whether it has."""
        done = threading.Event()
        self._commands.put(("configure", (changes, done)))
        return done.wait(wait_s) if wait_s > 0 else False

    def swap(self, generator) -> None:
        """Play ``generator`` from the next bar line (at once when idle)."""
        self._commands.put(("swap", generator))

    def call(self, fn: Callable[[object], object]) -> None:
        """Run ``fn(generator)`` on the voice thread."""
        self._commands.put(("call", fn))

    # -- thread -------------------------------------------------------------------------------
    def start(self) -> "Voice":
        self._stop.clear()
        self._apply_constraints()
        self._thread = threading.Thread(target=self._run, name=f"riffd-voice-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread; this voice's sounding notes end."""
        self._stop.set()
        self._commands.put(("wake", None))
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._cut()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                command, arg = self._commands.get(timeout=self._wait_s())
                self._handle(command, arg)
            except queue.Empty:
                pass
            except Exception as exc:           # a bad command must not kill the voice
                self._failed("command", exc)
            if self.mode != IDLE and self.clock.running:
                try:
                    self._generate_until(time.monotonic() + self.lookahead_s
                                         + self._lead_s())
                except Exception as exc:
                    self._failed("model step", exc)
                    try:
                        self._cut()
                    finally:
                        self._set_mode(IDLE)
            self._publish_plan()

    def _failed(self, what: str, exc: Exception) -> None:
        """Count, log and publish a failure of this voice's ``what`` (this thread)."""
        self.errors += 1
        self.last_error = f"{what} failed: {type(exc).__name__}: {exc}"
        log.error("voice %s: %s", self.name, self.last_error, exc_info=exc)
        self._emit_event("error", {"message": f"voice {self.name}: {self.last_error}; "
                                              f"its notes end and it stops",
                                   "cause": f"{type(exc).__name__}: {exc}"})

    def _wait_s(self) -> float:
        if self.mode == IDLE or not self.clock.running:
            return 0.05
        due = self.clock.time_at(self._cursor) - self._lead_s() - self.lookahead_s / 2
        return min(0.05, max(0.0, due - time.monotonic()))

    def _handle(self, command: str, arg) -> None:
        s = self.settings
        if command == "answer":
            notes, start_beat, velocities = arg
            self._cut()
            self._prime(notes, velocities)
            unit = self.clock.beats_per_bar if s.answer_on == "bar" else 1.0
            if start_beat is None:
                start_beat = self.clock.next_beat(time.monotonic() + self.prepare_s, unit)
            if s.length_bars > 0:
                length = s.length_bars * self.clock.beats_per_bar
            else:                                           # as long as the call
                span = max((n.start + n.duration for n in notes), default=1.0)
                span -= min((n.start for n in notes), default=0.0)
                length = max(1.0, math.ceil(span - 1e-6))
            self._begin(ANSWERING, start_beat, start_beat + length)
            self._skip_silence = MAX_LEADING_SILENCE_STEPS
        elif command == "prime":
            self._cut()
            self._prime(*arg)
            self._set_mode(IDLE)
        elif command == "seed":
            notes, play, velocities = arg
            if s.mode == "continuous" and (play or self.mode == PLAYING):
                # the seed takes over from the next beat; what sounds ends there
                self._cancel_future()
                self._prime(notes, velocities)
                start = self.clock.next_beat(time.monotonic() + self.prepare_s)
                self._end_sounding(self.clock.time_at(start))
                self._begin(PLAYING, start, math.inf)
                self._skip_silence = MAX_LEADING_SILENCE_STEPS
            elif play:
                self._handle("answer", (notes, None, velocities))
            else:
                self._handle("prime", (notes, velocities))
        elif command == "follow":
            self.follows += 1
            self._cancel_future()
            self._prime(*arg)
            start = self._grid(self.clock.beat_at(time.monotonic() + self.prepare_s))
            self._end_sounding(self.clock.time_at(start))
            self._begin(FOLLOWING, start, start + self.clock.beats_per_bar)
            self._skip_silence = MAX_LEADING_SILENCE_STEPS // 4
        elif command == "play":
            if self.mode != PLAYING:
                self._cut()
                self._reseed()
                start = self.clock.next_beat(time.monotonic() + self.prepare_s)
                self._begin(PLAYING, start, math.inf)
                self._skip_silence = MAX_LEADING_SILENCE_STEPS   # sound from the first beat
        elif command == "halt":
            self._cut()
            self._set_mode(IDLE)
            if arg is not None:
                arg.set()
        elif command == "configure":
            changes, done = arg
            try:
                self._configure(changes)
            finally:
                done.set()
        elif command == "swap":
            if self.mode == IDLE:
                self._install(arg, None)
            else:
                self._swap = arg
        elif command == "call":
            arg(self.generator)

    def _configure(self, changes: dict) -> None:
        g = self.generator
        sampling = {k: v for k, v in changes.items() if hasattr(g.settings, k)}
        voice = {k: v for k, v in changes.items() if hasattr(self.settings, k)}
        new = replace(self.settings, **voice)
        check_settings(new)
        g.settings = replace(g.settings, **sampling)
        old, self.settings = self.settings, new
        if new.program != old.program and new.program >= 0:
            self.scheduler.send_message([0xC0 | (new.channel - 1), new.program])
        if any(k in voice for k in ("low", "high", "key", "scale", "transpose", "follow_key",
                                    "follow_register")):
            self._apply_constraints()
        self._emit_event("state", {"state": self.mode, "changed": sorted(changes)})

    # -- generation -------------------------------------------------------------------------
    @property
    def prepare_s(self) -> float:
        """Seconds from a request to the earliest start of what it plays: PREPARE_S plus how
        much earlier than its grid time a note leaves (output_latency_ms)."""
        return PREPARE_S + self._lead_s()

    def _early_s(self) -> float:
        """Seconds this voice's notes leave before their grid time (negative: after)."""
        return early_s(self.settings.output_latency_ms)

    def _lead_s(self) -> float:
        """Seconds this voice generates further ahead for its output latency (≥ 0)."""
        return lead_s(self.settings.output_latency_ms)

    def _grid(self, beat: float) -> float:
        step = self.generator.step_beats
        return math.ceil(beat / step - 1e-9) * step

    def _begin(self, mode: str, start_beat: float, end_beat: float) -> None:
        self._cursor = start_beat
        self.motifs.reset()                        # phrases count from here
        self._begin_beat = start_beat
        self._last_start_beat = -math.inf
        self._end_beat = end_beat
        self._skip_silence = 0
        s = self.settings
        if s.program >= 0:
            self.scheduler.send_message([0xC0 | (s.channel - 1), s.program],
                                        self.clock.time_at(start_beat) - 0.001
                                        - self._early_s())
        self._set_mode(mode)

    def _prime(self, notes: list[Note], velocities: list[int] | None = None,
               own: bool = False) -> None:
        """Prime the generator with ``notes`` (beats) and read the seed's register, density
        and dynamics (``velocities`` per note, None when unknown). ``own``: the notes are
        this voice's own (a model swap), so the player's dynamics stay as they were."""
        g = self.generator
        if hasattr(g, "follow_register"):
            g.follow_register = self.settings.follow_register
        if not own:
            self._reseed()
        self.last_key = g.prime(notes).name
        self._seed_register = register(notes)
        if not own:
            self._seed_density = density_limit(notes, self.clock.beats_per_bar) if notes else 0
            self._dynamics = Dynamics.from_seed(notes, velocities) if velocities else None
            sounding = [n for n in notes if n.pitch is not None]
            if sounding:
                self._seed_beats = max(1.0, max(n.start + n.duration for n in sounding)
                                       - min(n.start for n in sounding))
        self._apply_constraints()

    def _reseed(self) -> None:
        """With ``rng_seed`` ≥ 0, restart every random choice of this voice from it."""
        seed = self.settings.rng_seed
        if seed < 0:
            return
        self._rng.seed(seed)
        self.motifs.reseed(seed)
        if hasattr(self.generator, "reseed"):
            self.generator.reseed(seed)

    def _apply_constraints(self) -> None:
        s, g = self.settings, self.generator
        scale = None
        if s.scale:
            tonic = PITCH_CLASSES[s.key] if s.key else g.key.tonic
            scale = tuple(sorted({(tonic + i - g.key.tonic) % 12 for i in SCALES[s.scale]}))
        elif s.follow_key and self._seed_register is not None:
            scale = tuple(getattr(g.key, "scale", ())) or None      # the seed's mode
        low, high = max(0, s.low - s.transpose), min(127, s.high - s.transpose)
        if s.follow_register:
            low, high = register_window(self._seed_register, low, high)
        g.set_constraints(Constraints(low=low, high=high, scale=scale))

    def _generate_until(self, horizon: float) -> None:
        now = time.monotonic()
        lead = self._lead_s()
        if self.clock.time_at(self._cursor) < now + lead - 0.1:
            # fell behind (a stall, or the MIDI clock jumped): continue on the grid from now
            self._end_sounding(None)
            self._cursor = self._grid(self.clock.beat_at(now + lead + self.lookahead_s / 2))
        while self.mode != IDLE and self.clock.time_at(self._cursor) < horizon:
            if self._cursor >= self._end_beat - 1e-9:
                self._end_sounding(self.clock.time_at(self._cursor))
                self._set_mode(IDLE)
                return
            if self._swap is not None and self._at_bar_line():
                self._install(self._swap, self._cursor)
                self._swap = None
            started = time.perf_counter()
            if self.mode == PLAYING:
                step = self.motifs.next_step(self.generator)      # may recall a phrase
            else:
                step = self.generator.next_step()
            self.step_seconds.append(time.perf_counter() - started)
            self.steps_generated += 1
            if self._skip_silence > 0:
                if not step.starts:
                    self._skip_silence -= 1
                    continue                   # not played: the cursor stays where it is
                self._skip_silence = 0
            step = self._thin(step)
            self._emit(step)
            if self.mode == PLAYING:
                self._remember(step)
            self._cursor += self.generator.step_beats

    def _remember(self, step: Step) -> None:
        """Tell the motif memory that ``step`` was played (continuous playing)."""
        s, g = self.settings, self.generator
        c = getattr(g, "constraints", None)
        self.motifs.played(step, round(self.clock.beats_per_bar / g.step_beats), s.repeat,
                           s.motif_bars, scale=getattr(c, "scale", None), tonic=g.key.tonic,
                           low=getattr(c, "low", 0), high=getattr(c, "high", 127))

    def _at_bar_line(self) -> bool:
        bar = self.clock.beats_per_bar
        return abs(self._cursor / bar - round(self._cursor / bar)) < 1e-6

    def _thin(self, step: Step) -> Step:
        """Density ceiling: past ``density`` starts in this bar, starts become holds. Without
        one, ``follow_density`` spaces starts at least a bar / (the seed's limit) apart, so
        an answer to a sparse seed is as sparse, evenly through the bar. A note left out
        lengthens the one that sounds (its holds hold that one), it leaves no gap."""
        if not step.starts:
            if step.holds and set(step.holds) <= self._left_out:
                return Step(holds=tuple(self._sounding))
            self._left_out = set()
            return step
        limit = self.settings.density
        if limit <= 0 and self.settings.follow_density and self._seed_density > 0:
            gap = self.clock.beats_per_bar / self._seed_density          # beats
            if self._cursor < self._last_start_beat + gap - 1e-6:
                return self._leave_out(step)
            self._last_start_beat = self._cursor
        elif limit > 0:
            bar = int(self._cursor // self.clock.beats_per_bar)
            index, count = self._bar_starts
            if index != bar:
                count = 0
            if count >= limit:
                self._bar_starts = (bar, count)
                return self._leave_out(step)
            self._bar_starts = (bar, count + 1)
        self._left_out = set()
        return step

    def _leave_out(self, step: Step) -> Step:
        """``step``'s starts are not played: what sounds keeps sounding instead."""
        self._left_out = set(step.starts)
        return Step(holds=tuple(self._sounding))

    def _emit(self, step: Step) -> None:
        s = self.settings
        at = self.clock.time_at(self._cursor)
        ending = [p for p in self._sounding if p not in step.holds or p in step.starts]
        for pitch in ending:
            self._off(pitch, at)
        for pitch in step.starts:
            out = pitch + s.transpose
            if 0 <= out <= 127 and pitch not in self._sounding:
                velocity = self._velocity()
                if s.velocity_spread:
                    velocity += self._rng.randint(-s.velocity_spread, s.velocity_spread)
                velocity = min(127, max(1, velocity))
                on_at = at
                if s.humanize_ms > 0:
                    on_at += min(0.05, abs(self._rng.gauss(0.0, s.humanize_ms / 1000.0)))
                # after an offset change a note never leaves before the note-off of the same
                # pitch sent with the old offset (the synth would end the new note with it)
                early = self._early_s()
                gap = on_at - self._off_sent.get((s.channel, out), -math.inf)
                if gap < early - 1e-9:
                    early = gap - 1e-6                 # 1 µs after that note-off
                self.scheduler.schedule_on(on_at, s.channel, out, velocity, tag=self.name,
                                           early_s=early)
                self._early[pitch] = early          # its note-off leaves with the same offset
                self.plan.started(out, velocity, self._cursor, on_at)
                self._sounding[pitch] = out
                self._on_at[pitch] = on_at
                self._opened[pitch] = self._cursor

    def _velocity(self) -> int:
        """Velocity of a note starting at the cursor: the seed's contour, stretched over the
        answer (repeated every seed length when playing on), or ``velocity``."""
        s = self.settings
        if not s.follow_dynamics or self._dynamics is None:
            return s.velocity
        into = self._cursor - self._begin_beat
        if math.isfinite(self._end_beat) and self._end_beat > self._begin_beat:
            position = into / (self._end_beat - self._begin_beat)
        else:
            position = (into % self._seed_beats) / self._seed_beats
        return self._dynamics.at(position)

    def _off(self, pitch: int, at: float) -> None:
        out = self._sounding.pop(pitch)
        # the clock may have been re-anchored (MIDI clock in) since the note-on was placed:
        # an off never goes before its on
        at = max(at, self._on_at.pop(pitch, at) + 0.001)
        early, key = self._early.pop(pitch, 0.0), (self.settings.channel, out)
        self.scheduler.schedule_off(at, key[0], out, tag=self.name, early_s=early)
        self._off_sent[key] = max(self._off_sent.get(key, -math.inf), at - early)
        self.plan.ended(out, self.clock.beat_at(at))
        start = self._opened.pop(pitch, None)
        if start is not None:
            self._history.append(Note(pitch, start, max(self._cursor - start,
                                                         self.generator.step_beats)))

    def _end_sounding(self, at: float | None) -> None:
        """End every sounding note at grid time ``at`` (monotonic seconds); None: as soon as
        it safely can (each note-off leaves at the scheduler's safe time, after every note-on
        handed over, so its grid time is that plus the note's offset)."""
        safe = self.scheduler.safe_time() if at is None else 0.0
        for pitch in list(self._sounding):
            self._off(pitch, at if at is not None else safe + self._early.get(pitch, 0.0))

    def _cancel_future(self) -> None:
        """Drop this voice's notes not yet sent; what sounds ends at the next safe moment."""
        self.scheduler.cancel_pending(tag=self.name)
        self.plan.cancel(self.scheduler.safe_time())

    def _cut(self) -> None:
        """Drop what is scheduled and silence what sounds (stop, a new phrase)."""
        self._cancel_future()
        self._end_sounding(None)

    def _install(self, generator, beat: float | None) -> None:
        """Switch to ``generator`` at ``beat`` (None: now, the voice is idle)."""
        old = self.generator
        if beat is not None:
            self._end_sounding(self.clock.time_at(beat))
        generator.settings = old.settings
        history = list(self._history)
        if history:
            origin = history[0].start
            self.generator = generator
            self._prime([Note(n.pitch, n.start - origin, n.duration) for n in history],
                        own=True)
        else:
            self.generator = generator
            self._apply_constraints()
        if beat is not None:
            self._cursor = self._grid(beat)
        self.swaps += 1
        self.last_swap = {"beat": beat, "at": None if beat is None else self.clock.time_at(beat)}
        self._emit_event("model", {"model": str(generator.path), "family": generator.family,
                                   **self.last_swap})

    # -- events ----------------------------------------------------------------------------------
    def _set_mode(self, mode: str) -> None:
        if mode != self.mode:
            self.mode = mode
            self._emit_event("state", {"state": mode, "key": self.last_key})

    def _publish_plan(self) -> None:
        """Publish a ``plan`` event (daemon/plan.py) when the plan changed, at most a few
        a second (voice thread)."""
        now = time.monotonic()
        now_beat = self.clock.beat_at(now)
        until = self._cursor if self.mode != IDLE else now_beat
        data = self.plan.due(now, now_beat, until)
        if data is not None:
            self._emit_event("plan", data)

    def _emit_event(self, name: str, data: dict) -> None:
        if self._on_event is not None:
            self._on_event(name, {"voice": self.name, **data})

    def status(self) -> dict:
        g = self.generator
        step_ms = sorted(1000 * t for t in list(self.step_seconds)) or [0.0]
        return {"name": self.name, "state": self.mode, "key": self.last_key,
                "model": {"name": g.metadata.get("name", str(g.path)), "path": str(g.path),
                          "family": g.family, "metrics": g.metadata.get("metrics", {})},
                "settings": {**vars(self.settings), **vars(g.settings)},
                "steps_generated": self.steps_generated, "swaps": self.swaps,
                "errors": self.errors, "last_error": self.last_error,
                "follows": self.follows, "last_swap": self.last_swap,
                "step_ms_p50": step_ms[len(step_ms) // 2],
                "step_ms_p99": step_ms[min(len(step_ms) - 1, round(0.99 * (len(step_ms) - 1)))]}
