"""The bundled model through the streaming generator: keys, constraints, determinism."""
import pytest
import torch

from riffd.engine.loading import BUNDLED_MODEL, load_generator
from riffd.engine.melody_generator import MAJOR_SCALE, Constraints
from riffd.engine.melody_representation import Note
from riffd.engine.sampling import SamplingSettings

E_FLAT_PHRASE = [Note(63, 0, 1), Note(67, 1, 1), Note(70, 2, 1), Note(68, 3, 0.5),
                 Note(67, 3.5, 0.5), Note(65, 4, 1), Note(63, 5, 2)]


@pytest.fixture(scope="module")
def generator():
    return load_generator(BUNDLED_MODEL, "cpu")


def pitches(tokens):
    return [int(t) for t in tokens if t not in ("r", "_")]


def test_the_bundled_model_carries_its_metrics(generator):
    metrics = generator.metadata["metrics"]
    assert 0.5 < metrics["val_accuracy"] < 1 and metrics["val_loss_bits"] > 0
    assert BUNDLED_MODEL.stat().st_size < 5 * 1024 * 1024


def test_an_answer_comes_back_in_the_seeds_key(generator):
    generator.reseed(0)
    key = generator.prime(E_FLAT_PHRASE)
    assert key.name == "Eb major" and generator.shift == -3
    notes = pitches(generator.tokens(256))
    in_scale = sum((p - 3) % 12 in MAJOR_SCALE for p in notes)
    assert len(notes) > 20 and in_scale / len(notes) > 0.85


def test_pitch_range_and_scale_constraints_hold(generator):
    generator.reseed(1)
    generator.prime(E_FLAT_PHRASE)
    generator.set_constraints(Constraints(low=62, high=70, scale=(0, 4, 7)))   # Eb triad
    try:
        notes = pitches(generator.tokens(200))
    finally:
        generator.set_constraints(Constraints())
    assert notes and all(62 <= p <= 70 and (p - 3) % 12 in (0, 4, 7) for p in notes)


def test_greedy_generation_is_deterministic(generator):
    generator.settings = SamplingSettings(greedy=True)
    try:
        generator.prime(E_FLAT_PHRASE)
        first = list(generator.tokens(64))
        generator.prime(E_FLAT_PHRASE)
        second = list(generator.tokens(64))
    finally:
        generator.settings = SamplingSettings()
    assert first == second
