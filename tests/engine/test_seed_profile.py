"""Reading register, dynamics and density off a seed phrase (engine.seed_profile)."""
import pytest

from riffd.engine.melody_representation import Note
from riffd.engine.seed_profile import (Dynamics, density_limit, octave_offset, register,
                                 register_window, starts_per_bar)


def test_register_is_the_median_pitch_of_sounding_notes():
    notes = [Note(81, 0, 1), Note(None, 1, 1), Note(93, 2, 1), Note(86, 3, 1)]
    assert register(notes) == 86
    assert register([Note(None, 0, 1)]) is None


@pytest.mark.parametrize("median,low,high,offset", [
    (87, 43, 88, 24),        # the bundled melody model's range: two octaves down, then back
    (66, 43, 88, 0),         # already in the middle
    (40, 60, 83, -36),       # far below a C4-B5 roll: three octaves up (76), then back
])
def test_octave_offset_moves_a_phrase_to_the_models_middle_by_octaves(median, low, high, offset):
    assert octave_offset(median, low, high) == offset
    assert offset % 12 == 0
    assert abs(median - offset - (low + high) / 2) <= 6


def test_register_window_keeps_to_the_voices_range():
    assert register_window(88, 0, 127) == (79, 97)
    assert register_window(88, 0, 90) == (78, 90)       # an octave at least
    assert register_window(88, 28, 55) == (28, 55)      # a bass voice keeps its own range
    assert register_window(60, 28, 55) == (43, 55)      # ... at its top for a middle phrase
    assert register_window(None, 10, 20) == (10, 20)


def test_density_follows_the_seed():
    sparse = [Note(60, 0, 3.9), Note(64, 4, 3.9)]       # 2 notes in 8 beats (played legato)
    assert starts_per_bar(sparse, 4) == pytest.approx(1.0)
    assert density_limit(sparse, 4) == 2
    halves = [Note(60, 0, 2), Note(64, 2, 1.5)]           # 2 notes in 4 beats
    assert density_limit(halves, 4) == 4
    dense = [Note(60 + i % 5, i * 0.25, 0.25) for i in range(16)]        # 16ths for a bar
    assert density_limit(dense, 4) == 32


def test_dynamics_follow_level_and_contour():
    notes = [Note(60 + i, i * 0.5, 0.5) for i in range(8)]
    rising = [30, 34, 38, 42, 46, 50, 54, 58]
    dynamics = Dynamics.from_seed(notes, rising)
    assert dynamics.at(0.0) < dynamics.at(0.5) < dynamics.at(1.0)
    assert 30 <= dynamics.at(0.0) and dynamics.at(1.0) <= 58
    assert dynamics.level == pytest.approx(44, abs=1)
    assert Dynamics.from_seed(notes, [100] * 8).at(0.3) == 100
    assert Dynamics.from_seed(notes, [100] * 3) is None             # do not match the notes
