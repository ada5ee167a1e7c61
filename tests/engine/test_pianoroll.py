"""Piano rolls: round trips, octave folding, re-strikes, steps and transposition."""
import numpy as np
import pytest

from riffd.engine.key_finding import Key
from riffd.engine.melody_representation import Note
from riffd.engine.pianoroll import (FULL_PIANO, OCTAVE_CUT, PitchRange, note_onsets, notes_to_roll,
                              roll_to_notes, roll_to_steps, transpose_to_reference)

CHORD_SONG = [Note(60, 0.0, 1.0), Note(64, 0.0, 1.0), Note(67, 0.0, 0.5),
              Note(72, 1.0, 0.25), Note(71, 1.5, 2.0)]


def test_round_trip_keeps_chords_and_durations():
    roll = notes_to_roll(CHORD_SONG, OCTAVE_CUT)
    assert roll.shape == (14, 24) and roll.dtype == bool
    assert roll[0, [0, 4, 7]].all() and roll[0].sum() == 3
    assert roll_to_notes(roll, OCTAVE_CUT) == sorted(CHORD_SONG, key=lambda n: (n.start, n.pitch))


def test_octave_folding_keeps_pitch_class():
    low, high = Note(36, 0.0, 1.0), Note(100, 0.0, 1.0)          # C2 and E7
    roll = notes_to_roll([low, high], OCTAVE_CUT)
    assert OCTAVE_CUT.fit(36) == 60 and OCTAVE_CUT.fit(100) == 76
    assert [n.pitch for n in roll_to_notes(roll, OCTAVE_CUT)] == [60, 76]
    full = notes_to_roll([low, high], FULL_PIANO)
    assert [n.pitch for n in roll_to_notes(full, FULL_PIANO)] == [36, 100]
    unfolded = PitchRange(60, 83, fold=False)
    assert notes_to_roll([low, high], unfolded).sum() == 0


def test_pitch_range_rejects_bad_bounds():
    with pytest.raises(ValueError, match="octave folding"):
        PitchRange(60, 65, fold=True)
    with pytest.raises(ValueError, match="low <= high"):
        PitchRange(80, 60)


def test_restruck_note_merges_without_onsets_and_splits_with_them():
    repeated = [Note(62, 0.0, 0.5), Note(62, 0.5, 0.5)]
    roll = notes_to_roll(repeated, OCTAVE_CUT)
    assert roll_to_notes(roll, OCTAVE_CUT) == [Note(62, 0.0, 1.0)]
    onsets = note_onsets(repeated, OCTAVE_CUT)
    assert roll_to_notes(roll, OCTAVE_CUT, onsets=onsets) == repeated
    gapped = notes_to_roll(repeated, OCTAVE_CUT, restrike_gap=True)
    assert roll_to_notes(gapped, OCTAVE_CUT) == [Note(62, 0.0, 0.25), Note(62, 0.5, 0.5)]


def test_steps_hold_across_the_bar_line():
    roll = notes_to_roll([Note(60, 0.0, 0.5), Note(64, 0.25, 0.25)], OCTAVE_CUT, n_steps=2)
    steps = roll_to_steps(roll, OCTAVE_CUT)
    assert steps[0].starts == (60,) and steps[0].holds == ()
    assert steps[1].starts == (64,) and steps[1].holds == (60,)
    carried = roll_to_steps(roll[1:], OCTAVE_CUT, previous=roll[0])
    assert carried[0].holds == (60,) and carried[0].starts == (64,)


def test_roll_shape_is_checked():
    with pytest.raises(ValueError, match="shape"):
        roll_to_notes(np.zeros((4, 12), dtype=bool), OCTAVE_CUT)


def test_n_steps_cuts_and_pads():
    roll = notes_to_roll([Note(60, 0.0, 4.0)], OCTAVE_CUT, n_steps=8)
    assert roll.shape == (8, 24) and roll[:, 0].all()
    assert notes_to_roll([Note(60, 0.0, 0.25)], OCTAVE_CUT, n_steps=4)[1:].sum() == 0


def test_transpose_to_reference_moves_d_major_to_c():
    scale = [62, 64, 66, 67, 69, 71, 73, 74, 69, 62]
    d_major = [Note(p, i * 0.5, 0.5) for i, p in enumerate(scale)]
    moved, key, shift = transpose_to_reference(d_major)
    assert key == Key(2, "major") and shift == -2
    assert [n.pitch for n in moved] == [p - 2 for p in scale]
