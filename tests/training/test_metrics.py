"""EB / UPC / QN / entropy / histogram distance on hand-made rolls with known answers."""
import math

import numpy as np
import pytest

from riffd.engine.melody_representation import Note
from riffd.engine.pianoroll import OCTAVE_CUT, PitchRange, notes_to_roll
from riffd.training.metrics import (compare, empty_bars, histogram_distance, pitch_class_histogram,
                              pitch_entropy, qualified_notes, roll_metrics, to_bars,
                              used_pitch_classes)

C_MAJOR_BAR = [Note(60, 0.0, 4.0), Note(64, 0.0, 4.0), Note(67, 0.0, 4.0)]   # one 4/4 bar


def two_bars(second_bar_notes):
    return notes_to_roll(C_MAJOR_BAR + [Note(n.pitch, n.start + 4, n.duration)
                                        for n in second_bar_notes], OCTAVE_CUT, n_steps=32)


def test_empty_bars_counts_silent_bars():
    roll = two_bars([])
    assert empty_bars([roll]) == 50.0
    assert empty_bars([roll, roll]) == 50.0
    assert empty_bars([two_bars([Note(72, 0.0, 0.25)])]) == 0.0


def test_used_pitch_classes_ignores_empty_bars_and_octaves():
    assert used_pitch_classes([two_bars([])], OCTAVE_CUT) == 3.0
    # C4 and C5 are one pitch class; D5 adds one: bar 2 has 2 classes → mean (3 + 2) / 2
    roll = two_bars([Note(60, 0, 1), Note(72, 1, 1), Note(74, 2, 1)])
    assert used_pitch_classes([roll], OCTAVE_CUT) == 2.5


def test_qualified_notes_are_three_steps_or_longer():
    notes = [Note(60, 0.0, 0.25), Note(62, 0.25, 0.5), Note(64, 0.75, 0.75), Note(65, 1.5, 2.0)]
    roll = notes_to_roll(notes, OCTAVE_CUT, n_steps=16)
    assert qualified_notes([roll], OCTAVE_CUT) == 50.0
    assert qualified_notes([roll], OCTAVE_CUT, min_steps=2) == 75.0
    assert qualified_notes([np.zeros((16, 24), bool)], OCTAVE_CUT) == 0.0


def test_pitch_entropy_in_bits():
    four_classes = [Note(p, i * 1.0, 1.0) for i, p in enumerate([60, 62, 64, 65])]
    roll = notes_to_roll(four_classes, OCTAVE_CUT)
    assert pitch_entropy([roll], OCTAVE_CUT) == pytest.approx(2.0)
    same_class = [Note(60, 0, 1), Note(72, 1, 1)]
    assert pitch_entropy([notes_to_roll(same_class, OCTAVE_CUT)], OCTAVE_CUT) == 0.0
    chromatic = [Note(60 + i, i * 1.0, 1.0) for i in range(12)]
    assert pitch_entropy([notes_to_roll(chromatic, OCTAVE_CUT)], OCTAVE_CUT) == pytest.approx(
        math.log2(12))


def test_histogram_distance():
    c = pitch_class_histogram([notes_to_roll([Note(60, 0, 1)], OCTAVE_CUT)], OCTAVE_CUT)
    g = pitch_class_histogram([notes_to_roll([Note(67, 0, 1)], OCTAVE_CUT)], OCTAVE_CUT)
    cg = pitch_class_histogram([notes_to_roll([Note(60, 0, 1), Note(67, 0, 1)], OCTAVE_CUT)],
                               OCTAVE_CUT)
    assert c[0] == 1.0 and histogram_distance(c, c) == 0.0
    assert histogram_distance(c, g) == 1.0
    assert histogram_distance(c, cg) == pytest.approx(0.5)


def test_metrics_work_on_other_ranges_and_side_by_side():
    full = PitchRange(0, 127, fold=False)
    roll = notes_to_roll([Note(40, 0, 4), Note(47, 0, 4)], full, n_steps=16)
    m = roll_metrics([roll], full)
    assert m["used_pitch_classes"] == 2 and m["empty_bars_pct"] == 0
    side = compare(m, roll_metrics([two_bars([])], OCTAVE_CUT))
    assert side["empty_bars_pct"] == {"generated": 0.0, "real": 50.0}
    assert 0 < side["pitch_class_histogram_distance"] <= 1


def test_no_complete_bar_is_an_error():
    assert to_bars(np.zeros((15, 24), bool)).shape == (0, 16, 24)
    with pytest.raises(ValueError, match="no complete bar"):
        empty_bars([np.zeros((15, 24), bool)])
