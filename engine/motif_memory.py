"""Motif memory: continuous output that brings its own material back, phrase by phrase.

A generator left to itself never repeats anything longer than a few notes, so no motif ever
comes back. ``MotifMemory`` sits between a voice and its generator: it keeps the phrases
(``motif_bars`` bars of steps each) that were played, and at each phrase boundary, with
probability ``repeat``, it plays an earlier phrase again instead of asking the model: as it
was, or (with probability ``vary``) moved up or down a scale step or two inside the key.
While a recalled phrase plays, the generator is fed the same steps (:func:`observe`), so what
the model plays after it continues from the recalled material, as if it had played it.

With ``repeat`` = 0 the memory never recalls and the generator's output is untouched.

Also here, the two measures of structure (``benchmarks/structure.py`` prints them for riffd
and for the training corpus): :func:`longest_repeat` (the longest run of notes, pitch and
duration, that occurs twice without overlapping) and :func:`recurring_share` (the share of
4-bar windows, starting at each bar line, whose notes occur again elsewhere in the piece).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from riffd.engine.generator import Step
from riffd.engine.melody_representation import Note

MAX_PHRASES = 16          # phrases remembered (the oldest are forgotten first)
VARY_DEGREES = (-2, -1, 1, 2)   # scale steps a varied recall moves by
DIATONIC = (0, 2, 4, 5, 7, 9, 11)   # the scale used for variation when none is set


@dataclass(frozen=True)
class Phrase:
    """A played phrase: its steps (generator pitches) and the bar count it spans."""

    steps: tuple[Step, ...]
    bars: int


class MotifMemory:
    """Remembers played phrases and decides, phrase by phrase, whether to recall one.

    The voice calls :meth:`next_step` instead of ``generator.next_step()`` and
    :meth:`played` with each step it actually played; ``steps_per_bar`` is the bar length in
    generator steps (16 for 16ths in 4/4). ``seed`` fixes the memory's own random choices
    (it never draws from the generator's or the voice's random state).
    """

    def __init__(self, seed: int | None = None):
        self._rng = random.Random(seed)
        self.phrases: list[Phrase] = []
        self._current: list[Step] = []
        self._recall: list[Step] = []
        self._recalled = False         # the phrase now playing is a recalled one
        self.recalls = 0               # phrases played again (for status and tests)

    def reseed(self, seed: int) -> None:
        """Restart the memory's own random choices from ``seed`` (repeatable recalls)."""
        self._rng.seed(seed)

    def reset(self) -> None:
        """Forget every phrase (a new seed, a new piece)."""
        self.phrases.clear()
        self._current = []
        self._recall = []
        self._recalled = False

    @property
    def recalling(self) -> bool:
        """Whether the next steps come from a recalled phrase."""
        return bool(self._recall)

    def next_step(self, generator) -> Step:
        """The next step: from a recalled phrase (fed to ``generator`` so that it follows
        along) or, when none is playing, the generator's own."""
        if self._recall:
            step = self._recall.pop(0)
            observe(generator, step)
            return step
        return generator.next_step()

    def played(self, step: Step, steps_per_bar: int, repeat: float, motif_bars: int,
               vary: float = 0.25, scale: Sequence[int] | None = None, tonic: int = 0,
               low: int = 0, high: int = 127) -> None:
        """``step`` was played. At the end of each phrase (``motif_bars`` bars) it is stored and,
        with probability ``repeat`` (0–1), an earlier phrase is chosen to play next; with
        probability ``vary`` it is moved by a scale step or two in ``scale`` (pitch classes
        above ``tonic``; None: the major scale), kept within ``low``…``high`` (MIDI)."""
        self._current.append(step)
        length = max(1, motif_bars) * max(1, steps_per_bar)
        if len(self._current) < length:
            return
        phrase = Phrase(tuple(self._current), max(1, motif_bars))
        self._current = []
        if not self._recalled:            # only the model's own phrases are remembered
            self.phrases.append(phrase)
            del self.phrases[:-MAX_PHRASES]
        self._recall, self._recalled = [], False
        if repeat <= 0 or self._rng.random() >= repeat:
            return
        candidates = [p for p in self.phrases if len(p.steps) == length
                      and any(s.starts for s in p.steps)]
        if not candidates:
            return
        chosen = self._rng.choice(candidates)
        steps = list(chosen.steps)
        if vary > 0 and self._rng.random() < vary:
            moved = transpose_steps(steps, self._rng.choice(VARY_DEGREES),
                                    tuple(scale) if scale else DIATONIC, tonic, low, high)
            steps = moved if moved is not None else steps
        first = steps[0]                  # the phrase begins with its own notes struck
        steps[0] = Step(starts=tuple(dict.fromkeys(first.starts + first.holds)))
        self._recall, self._recalled = steps, True
        self.recalls += 1


def transpose_steps(steps: Sequence[Step], degrees: int, scale: Sequence[int], tonic: int,
                    low: int, high: int) -> list[Step] | None:
    """``steps`` moved by ``degrees`` scale steps (pitch classes ``scale`` above ``tonic``);
    a pitch outside the scale moves by the semitones of its nearest scale neighbour below.
    None when a pitch would leave ``low``…``high`` (MIDI)."""
    scale = sorted(set(scale))

    def move(pitch: int) -> int:
        rel = (pitch - tonic) % 12
        index = max((i for i, d in enumerate(scale) if d <= rel), default=len(scale) - 1)
        octave, target = divmod(index + degrees, len(scale))
        base = scale[index] - (12 if scale[index] > rel else 0)   # degree at/below pitch
        return pitch + scale[target] + 12 * octave - base

    out = []
    for s in steps:
        starts, holds = tuple(move(p) for p in s.starts), tuple(move(p) for p in s.holds)
        if any(not low <= p <= high for p in starts + holds):
            return None
        out.append(Step(starts=starts, holds=holds))
    return out


def observe(generator, step: Step) -> None:
    """Advance ``generator`` as if it had played ``step`` itself (it sees the recalled
    phrase, so what it plays next continues from there): the generator's own ``observe``
    (melody models are fed the step's token, multilabel models its frame of sounding pitches;
    the others draw their own step and drop it, which keeps them in time)."""
    if hasattr(generator, "observe"):
        generator.observe(step)
    else:
        generator.next_step()


def play_on(generator, memory: MotifMemory, bars: int, repeat: float, motif_bars: int,
            beats_per_bar: float = 4.0, vary: float = 0.25) -> list[Step]:
    """``bars`` bars of continuous steps from a primed ``generator`` through ``memory``, as a
    continuous voice plays them (without its density, register and timing work)."""
    per_bar = round(beats_per_bar / generator.step_beats)
    c, key = generator.constraints, generator.key
    out = []
    for _ in range(bars * per_bar):
        step = memory.next_step(generator)
        memory.played(step, per_bar, repeat, motif_bars, vary, c.scale, key.tonic, c.low,
                      c.high)
        out.append(step)
    return out


# -- measures of structure -------------------------------------------------------------------
def steps_to_notes(steps: Sequence[Step], step_beats: float) -> list[Note]:
    """Monophonic/polyphonic steps → notes (beats from the first step)."""
    notes, open_at = [], {}
    for i, s in enumerate(list(steps) + [Step()]):
        for p in [p for p in open_at if p not in s.holds or p in s.starts]:
            start = open_at.pop(p)
            notes.append(Note(p, start * step_beats, (i - start) * step_beats))
        for p in s.starts:
            open_at[p] = i
    return sorted(notes, key=lambda n: (n.start, n.pitch))


def longest_repeat(notes: Sequence[Note]) -> int:
    """The longest run of consecutive notes (same pitch and duration) that occurs twice in
    ``notes`` without the two occurrences overlapping, in notes."""
    seq = [(n.pitch, round(n.duration, 4)) for n in sorted(notes, key=lambda n: n.start)]
    n, best = len(seq), 0
    # dp[j] = length of the common run ending at i-1 and j-1 (previous row), O(n²) time
    prev = [0] * (n + 1)
    for i in range(1, n + 1):
        row = [0] * (n + 1)
        for j in range(i + 1, n + 1):
            if seq[i - 1] == seq[j - 1] and prev[j - 1] < j - i:
                row[j] = prev[j - 1] + 1
                best = max(best, row[j])
        prev = row
    return best


def bar_windows(notes: Sequence[Note], bar_beats: float, bars: int = 4) -> list[tuple]:
    """One key per window of ``bars`` bars starting at each bar line (beats from 0): the
    notes starting inside it as (start in the window, pitch, duration), beats."""
    if not notes:
        return []
    end = max(n.start + n.duration for n in notes)
    count = int(end // bar_beats + 1e-9) - bars + 1
    windows = []
    for b in range(max(0, count)):
        lo, hi = b * bar_beats, (b + bars) * bar_beats
        windows.append(tuple((round(n.start - lo, 4), n.pitch, round(n.duration, 4))
                             for n in notes if lo - 1e-6 <= n.start < hi - 1e-6))
    return windows


def recurring_share(notes: Sequence[Note], bar_beats: float, bars: int = 4) -> tuple[int, int]:
    """(windows whose notes occur again in another window, windows) over the 4-bar windows
    (``bars`` bars of ``bar_beats`` beats) that start at each bar line; empty windows
    (rests only) are not counted."""
    windows = [w for w in bar_windows(notes, bar_beats, bars) if w]
    counts: dict[tuple, int] = {}
    for w in windows:
        counts[w] = counts.get(w, 0) + 1
    return sum(1 for w in windows if counts[w] > 1), len(windows)
