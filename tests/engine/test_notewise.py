"""The notewise encoding (three variants) and the notewise generator's Steps, keys and limits."""
import pytest
import torch

from riffd.engine.generator import Step
from riffd.engine.melody_generator import Constraints
from riffd.engine.melody_representation import Note
from riffd.engine.notewise_generator import NotewiseGenerator
from riffd.engine.notewise_lstm import NotewiseLSTM, NotewiseLSTMConfig
from riffd.engine.notewise_representation import (NotewiseVocabulary, chord_root, decode_events,
                                            encode_events, quantize_duration, transpose_event)

MELODY = [Note(60, 0, 1), Note(62, 1, 0.5), Note(64, 1.5, 0.5), Note(65, 3, 1), Note(67, 4, 2)]
CHORDS = [Note(64, 0, 2), Note(67, 0, 2), Note(72, 0, 2),          # C major, first inversion
          Note(62, 2, 1), Note(67, 2, 1), Note(71, 2, 1),          # G major, root position
          Note(65, 4, 1)]


def test_rests_variant_round_trips_a_melody_with_a_rest():
    events = encode_events(MELODY, "rests")
    assert events == [("60", "1"), ("62", "0.5"), ("64", "0.5"), ("r", "1"), ("65", "1"),
                      ("67", "2")]
    assert decode_events(events) == MELODY


def test_without_rests_a_silence_goes_to_the_note_before_and_onsets_stay():
    events = encode_events(MELODY, "root")
    assert ("r", "1") not in events and events[2] == ("64", "1.5")
    assert [n.start for n in decode_events(events)] == [n.start for n in MELODY]


def test_chords_as_tokens_and_by_their_root():
    assert encode_events(CHORDS, "chords")[:2] == [("64.67.72", "2"), ("62.67.71", "2")]
    assert [n.pitch for n in decode_events(encode_events(CHORDS, "chords"))][:6] == \
        [64, 67, 72, 62, 67, 71]
    root = encode_events(CHORDS, "root")
    assert root == [("72", "2"), ("67", "2"), ("65", "1")]
    assert chord_root([60, 63, 67]) == 60 and chord_root([55, 60, 64]) == 60
    assert chord_root([62, 65, 69, 72]) == 62                     # D minor seventh


def test_durations_snap_to_the_documented_set_and_long_rests_split():
    assert quantize_duration(0.3) == 0.25 and quantize_duration(2.4) == 2.0
    assert quantize_duration(9.0) == 4.0
    events = encode_events([Note(60, 0, 1), Note(62, 7, 1)], "rests")
    assert events == [("60", "1"), ("r", "4"), ("r", "2"), ("62", "1")]
    assert transpose_event(("60.64", "1"), 2) == ("62.66", "1")


def test_vocabulary_round_trips_through_metadata():
    songs = [encode_events(CHORDS, "chords"), encode_events(MELODY, "chords")]
    vocab = NotewiseVocabulary.from_songs(songs, "chords")
    assert vocab.pitch_tokens[:2] == ["/", "r"] and vocab.duration_tokens[0] == "/"
    again = NotewiseVocabulary.from_metadata(vocab.to_metadata())
    assert again.encode(songs[0]) == vocab.encode(songs[0])
    with pytest.raises(ValueError, match="variant"):
        NotewiseVocabulary("octaves", [], [])


def _generator(vocab, transpose=False):
    torch.manual_seed(0)
    cfg = NotewiseLSTMConfig(vocab_size=len(vocab.pitch_tokens),
                             num_durations=len(vocab.duration_tokens), hidden_size=16,
                             pitch_embed_dim=8, duration_embed_dim=4, dense_size=8)
    meta = {"representation": {"transpose": transpose}}
    return NotewiseGenerator(NotewiseLSTM(cfg), vocab, meta, torch.device("cpu"))


def test_chord_events_become_steps_that_start_then_hold():
    vocab = NotewiseVocabulary("chords", ["/", "r", "60.64.67", "62.65.69"], ["/", "0.5", "1"])
    gen = _generator(vocab)
    steps = [gen.next_step() for _ in range(200)]
    chords = [s for s in steps if s.starts]
    assert chords and all(len(s.starts) == 3 for s in chords)
    for before, step in zip(steps, steps[1:]):
        if step.holds:                            # a hold continues what sounded before
            assert step.holds == (before.starts or before.holds)
    # every event lasts 2 or 4 steps: the gaps between onsets are multiples of 2
    onsets = [i for i, s in enumerate(steps) if s.starts or (not s.holds and (
        i == 0 or steps[i - 1].starts or steps[i - 1].holds))]
    assert all((b - a) % 2 == 0 for a, b in zip(onsets, onsets[1:]))


def test_constraints_keep_only_chords_wholly_inside_the_scale():
    vocab = NotewiseVocabulary("chords", ["/", "r", "60.64.67", "62.65.69"], ["/", "0.5", "1"])
    gen = _generator(vocab)
    gen.set_constraints(Constraints(scale=(0, 2, 4, 7, 9)))           # no F: 62.65.69 is out
    started = {s.starts for s in (gen.next_step() for _ in range(200)) if s.starts}
    assert started == {(60, 64, 67)}


def test_a_seed_in_d_is_answered_in_d_when_the_model_works_in_c():
    pitches = [str(p) for p in range(55, 80)]
    vocab = NotewiseVocabulary("root", ["/", "r", *pitches], ["/", "0.25", "0.5", "1"])
    gen = _generator(vocab, transpose=True)
    key = gen.prime([Note(62, 0, 1), Note(66, 1, 1), Note(69, 2, 1), Note(74, 3, 1)])
    assert key.name == "D major" and gen.shift == -2
    gen.set_constraints(Constraints(scale=(0, 2, 4, 5, 7, 9, 11)))   # D major's scale
    played = [p for s in (gen.next_step() for _ in range(100)) for p in s.starts]
    assert played and all((p - 2) % 12 in (0, 2, 4, 5, 7, 9, 11) for p in played)
    assert isinstance(gen.next_step(), Step)
