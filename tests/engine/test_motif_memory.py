"""Motif memory: continuous melody output that brings phrases back, with the bundled model.

Seeds are fixed (torch's sampler and the memory's own random choices), so every run plays
the same 32 bars; the figures are judged with margins, and ``repeat`` = 0 must give exactly
the model's own output.
"""
import pytest
import torch

from riffd.daemon.voice import VoiceSettings

from riffd.engine.generator import Step
from riffd.engine.loading import load_generator
from riffd.engine.melody_representation import Note
from riffd.engine.motif_memory import (MotifMemory, longest_repeat, play_on, recurring_share,
                                       steps_to_notes, transpose_steps)

SEED = [Note(67, 0, 1), Note(69, 1, 0.5), Note(71, 1.5, 0.5), Note(72, 2, 1), Note(71, 3, 1),
        Note(69, 4, 2), Note(67, 6, 2)]
BARS = 32


@pytest.fixture(scope="module")
def generator():
    return load_generator(None, "cpu")


def continuous(generator, repeat: float, motif_bars: int = 4, vary: float = 0.25,
               bars: int = BARS) -> tuple[list[Step], MotifMemory]:
    generator.reseed(7)
    generator.prime(SEED)
    memory = MotifMemory(seed=7)
    return play_on(generator, memory, bars, repeat, motif_bars, vary=vary), memory


def test_repeat_zero_plays_exactly_what_the_model_plays_alone(generator):
    steps, memory = continuous(generator, repeat=0.0, bars=8)
    generator.reseed(7)
    generator.prime(SEED)
    alone = [generator.next_step() for _ in range(8 * 16)]
    assert steps == alone
    assert memory.recalls == 0


def test_default_repeat_brings_four_bar_phrases_back(generator):
    default = VoiceSettings()
    plain = steps_to_notes(continuous(generator, repeat=0.0)[0], generator.step_beats)
    steps, memory = continuous(generator, default.repeat, default.motif_bars)
    notes = steps_to_notes(steps, generator.step_beats)
    recurring, windows = recurring_share(notes, 4.0)
    plain_recurring, _ = recurring_share(plain, 4.0)
    print(f"repeat {default.repeat}: {memory.recalls} recalls, longest repeat "
          f"{longest_repeat(notes)} notes, "
          f"{recurring}/{windows} 4-bar windows recur; repeat 0: longest "
          f"{longest_repeat(plain)}, {plain_recurring} recur")
    assert memory.recalls >= 2
    assert recurring > 0 and windows >= BARS - 4
    assert longest_repeat(notes) >= 8 > longest_repeat(plain)


def test_a_recalled_phrase_is_an_earlier_one_and_the_model_follows_on(generator):
    steps, memory = continuous(generator, repeat=1.0, motif_bars=1, vary=0.0, bars=6)
    bars = [steps[i:i + 16] for i in range(0, len(steps), 16)]
    assert memory.recalls == 6          # after each bar, the last one included
    strike = lambda s: Step(starts=tuple(dict.fromkeys(s.starts + s.holds)))  # noqa: E731
    for bar in bars[1:]:       # each bar after the first is the first one again
        assert bar[0] == strike(bars[0][0]) and bar[1:] == bars[0][1:]
    # the model was fed the recalled bars: with repeat off from here it plays on, in range
    more = [generator.next_step() for _ in range(32)]
    assert any(s.starts for s in more)


def test_transposition_stays_in_the_scale_and_in_range():
    c_major = (0, 2, 4, 5, 7, 9, 11)
    steps = [Step(starts=(60,)), Step(holds=(60,)), Step(starts=(64,)), Step(starts=(71,)),
             Step(starts=(61,))]
    up = transpose_steps(steps, 1, c_major, 0, 0, 127)
    assert [s.starts for s in up] == [(62,), (), (65,), (72,), (63,)]
    assert up[1].holds == (62,)
    down = transpose_steps(steps, -2, c_major, 0, 0, 127)
    assert [s.starts[0] for s in down if s.starts] == [57, 60, 67, 58]
    # D dorian given as pitch classes above the tonic D (2)
    dorian = (0, 2, 3, 5, 7, 9, 10)
    assert transpose_steps([Step(starts=(62,))], 2, dorian, 2, 0, 127)[0].starts == (65,)
    assert transpose_steps(steps, 2, c_major, 0, 0, 72) is None       # 71 → 74 > 72


def test_measures_find_what_was_built_in():
    motif = [Note(60 + i % 3, i * 0.5, 0.5) for i in range(8)]          # one bar
    other = [Note(70, 0, 1), Note(72, 1, 3)]
    piece = []
    for bar, part in enumerate([motif, other, motif, other, motif, other]):
        piece += [Note(n.pitch, n.start + 4 * bar, n.duration) for n in part]
    assert longest_repeat(piece) == len(motif) + len(other)     # a bar pair, period 2 bars
    # 4-bar windows at bars 0, 1, 2: 0 and 2 are the same (motif, other, motif, other)
    assert recurring_share(piece, 4.0) == (2, 3)
    assert longest_repeat([Note(60 + i, i, 1) for i in range(12)]) == 0


def test_a_multilabel_model_follows_a_recalled_bar(tmp_path):
    from tests.training.render_models import multilabel
    poly = load_generator(multilabel(tmp_path / "tiny.safetensors"), "cpu")
    poly.prime([Note(60, 0, 1), Note(64, 0, 1), Note(67, 1, 1)])
    memory = MotifMemory(seed=3)
    poly.reseed(3)
    steps = play_on(poly, memory, 3, 1.0, 1, vary=0.0)
    bars = [steps[i:i + 16] for i in range(0, len(steps), 16)]
    assert any(s.starts for s in bars[0]) and memory.recalls == 3
    assert bars[1][1:] == bars[0][1:] and bars[2][1:] == bars[0][1:]
    # the model was fed the last recalled step: it holds what that step sounded
    last = set(steps[-1].starts + steps[-1].holds)
    columns = {poly.pitch_range.low - poly.shift + poly.octave + int(i)
               for i in torch.nonzero(poly._previous).flatten()}
    assert columns == last
