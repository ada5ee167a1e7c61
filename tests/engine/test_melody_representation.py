import pytest

from riffd.engine.key_finding import Key, estimate_key
from riffd.engine.melody_representation import (Note, OffGrid, Vocabulary, decode_tokens,
                                          encode_notes, transpose_notes, transpose_tokens)


def test_encoding_matches_the_documents_example():
    # a quarter note, an eighth, a rest of an eighth, a dotted quarter
    notes = [Note(60, 0, 1), Note(62, 1, 0.5), Note(64, 2, 1.5)]
    assert encode_notes(notes) == ["60", "_", "_", "_", "62", "_", "r", "_",
                                   "64", "_", "_", "_", "_", "_"]


def test_encoding_round_trips():
    notes = [Note(67, 0, 0.75), Note(69, 0.75, 0.25), Note(71, 1, 2), Note(72, 4, 4)]
    assert decode_tokens(encode_notes(notes)) == notes


def test_decoding_starts_where_asked_and_ignores_leading_holds():
    assert decode_tokens(["_", "60", "_", "/", "_"], start=8) == [Note(60, 8.25, 0.5)]


def test_off_grid_durations_are_refused():
    with pytest.raises(OffGrid):
        encode_notes([Note(60, 0, 1 / 3)])


def test_transposition_round_trips():
    tokens = ["60", "_", "r", "64", "/"]
    assert transpose_tokens(transpose_tokens(tokens, 3), -3) == tokens
    notes = [Note(60, 0, 1), Note(None, 1, 1)]
    assert transpose_notes(transpose_notes(notes, -7), 7) == notes


def test_vocabulary_round_trips_and_fits_unknown_pitches():
    vocab = Vocabulary.from_songs([["60", "_", "72"], ["r", "64"]])
    assert vocab.tokens[:3] == ["/", "r", "_"]
    assert vocab.decode(vocab.encode(["60", "_", "r"])) == ["60", "_", "r"]
    assert vocab.fit_pitch(84) == 72          # an octave down into the range
    assert vocab.fit_pitch(61) in (60, 64)


@pytest.mark.parametrize("tonic,mode", [(3, "major"), (9, "minor"), (7, "major"), (4, "minor")])
def test_key_finding_on_scales_and_the_shift_to_c(tonic, mode):
    steps = (0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 10)
    # tonic triad weighted like a real phrase: tonic long, then the scale
    notes = [Note(60 + tonic, 0, 2), Note(60 + tonic + steps[2], 2, 1), Note(60 + tonic + 7, 3, 1)]
    notes += [Note(60 + tonic + s, 4 + i * 0.5, 0.5) for i, s in enumerate(steps)]
    notes += [Note(60 + tonic, 8, 2)]
    key = estimate_key(notes)
    assert key == Key(tonic, mode)
    reference = 0 if mode == "major" else 9
    assert (tonic + key.shift_to_reference()) % 12 == reference
    assert -6 <= key.shift_to_reference() <= 5
