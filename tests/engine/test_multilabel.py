"""The multilabel generator: frames → Steps, threshold and Bernoulli inference, keys, limits."""
import pytest
import torch

from riffd.engine.melody_generator import Constraints
from riffd.engine.melody_representation import Note
from riffd.engine.multilabel_generator import MultilabelGenerator
from riffd.engine.multilabel_lstm import MultilabelLSTM, MultilabelLSTMConfig
from riffd.engine.pianoroll import OCTAVE_CUT


def _generator(mode="bernoulli", transposed=False, bias=0.0):
    torch.manual_seed(0)
    model = MultilabelLSTM(MultilabelLSTMConfig(num_pitches=24, hidden_size=16, dense_size=8,
                                                dropout=0.0, lstm_dropout=0.0))
    with torch.no_grad():
        model.head.bias += bias                    # shift every pitch's probability
    return MultilabelGenerator(model, OCTAVE_CUT, {}, torch.device("cpu"), mode=mode,
                               threshold=0.3, transposed=transposed)


def test_steps_start_new_pitches_and_hold_sounding_ones():
    gen = _generator("bernoulli")
    previous: set[int] = set()
    chords = 0
    for _ in range(200):
        step = gen.next_step()
        assert set(step.holds) <= previous and not set(step.starts) & previous
        previous = set(step.starts) | set(step.holds)
        chords += len(previous) >= 2
        assert all(60 <= p <= 83 for p in previous)
    assert chords > 20                             # polyphonic: several pitches at once


def test_threshold_mode_follows_the_probabilities():
    loud, silent = _generator("threshold", bias=6.0), _generator("threshold", bias=-6.0)
    assert len(loud.next_step().starts) == 24      # sigmoid ≫ 0.3 everywhere
    assert all(loud.next_step().holds == tuple(range(60, 84)) for _ in range(5))
    assert all(silent.next_step().silent for _ in range(20))
    cold = _generator("bernoulli", bias=-1.5)
    cold.settings.temperature = 0.2                # sharper: fewer notes than at 1.0
    warm = _generator("bernoulli", bias=-1.5)
    count = lambda g: sum(len(g.next_step().starts) for _ in range(100))
    assert count(cold) < count(warm)


def test_constraints_limit_range_and_scale():
    gen = _generator("bernoulli", bias=1.0)
    gen.set_constraints(Constraints(low=62, high=74, scale=(0, 4, 7)))   # C major triad
    pitches = {p for _ in range(100) for p in gen.next_step().starts}
    assert pitches and pitches <= {64, 67, 72}


def test_a_transposed_model_answers_in_the_seed_key():
    gen = _generator("bernoulli", transposed=True, bias=0.5)
    key = gen.prime([Note(62, 0, 1), Note(66, 1, 1), Note(69, 2, 1), Note(74, 3, 1)])
    assert key.name == "D major" and gen.shift == -2
    assert gen.next_step().holds == ()             # nothing of the seed is held over
    pitches = {p for _ in range(50) for p in gen.next_step().starts}
    assert pitches and min(pitches) >= 62 and max(pitches) <= 85     # C4–B5 moved up to D


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode 'sample'"):
        _generator("sample")
