"""The GAN families: shapes, the bar-level streaming contract, decoding and the latent walk."""
import numpy as np
import pytest
import torch

from riffd.engine.gan_bilstm import BiLSTMGAN, BiLSTMGANConfig
from riffd.engine.gan_cnn import CNNGAN, CNNGANConfig
from riffd.engine.gan_generator import GANGenerator
from riffd.engine.melody_generator import Constraints
from riffd.engine.melody_representation import Note

TINY = {
    "cnn": (CNNGAN, CNNGANConfig(channels=16, disc_hidden_size=16, disc_dense1=16, disc_dense2=8)),
    "bilstm": (BiLSTMGAN, BiLSTMGANConfig(hidden_size=16, dense_size=16, disc_hidden_size=16,
                                          disc_dense1=16, disc_dense2=8)),
}
META = {"representation": {"pitch_range": {"low": 60, "high": 83, "fold": True},
                           "threshold": 0.5, "key_normalisation": "none"}}


@pytest.fixture(params=list(TINY))
def model(request):
    torch.manual_seed(0)
    cls, cfg = TINY[request.param]
    return cls(cfg).eval()


def test_shapes_and_probabilities(model):
    z = model.sample_latent(5)
    with torch.no_grad():
        bars = model(z)
    assert bars.shape == (5, 16, 24)
    assert float(bars.min()) >= 0 and float(bars.max()) <= 1
    assert model.discriminate(bars).shape == (5,)


def test_step_equals_forward(model):
    z = model.sample_latent(3)
    state = model.init_state(3, "cpu")
    stepped, _ = model.step(z, state)
    assert torch.allclose(stepped, model(z))


def test_cnn_generator_checks_its_config():
    with pytest.raises(ValueError, match="multiple of 4"):
        CNNGAN(CNNGANConfig(bar_steps=14))
    wide = CNNGAN(CNNGANConfig(num_pitches=88, channels=8, disc_hidden_size=8, disc_dense1=8,
                               disc_dense2=8))
    assert wide(wide.sample_latent(2)).shape == (2, 16, 88)


def steps_to_roll(steps):
    roll = np.zeros((len(steps), 128), dtype=bool)
    for t, s in enumerate(steps):
        roll[t, list(s.starts + s.holds)] = True
    return roll


def test_generated_bar_is_a_valid_roll_and_matches_the_steps(model):
    gen = GANGenerator(model, META, torch.device("cpu"), seed=1)
    with torch.no_grad():                                      # an untrained model: half on
        gen.threshold = float(model(gen._z).median())
    steps = [gen.next_step() for _ in range(32)]
    for before, step in zip([None] + steps, steps):
        assert not set(step.starts) & set(step.holds)
        assert all(60 <= p <= 83 for p in step.starts + step.holds)
        if before is not None:                                 # a hold continues a sounding pitch
            assert set(step.holds) <= set(before.starts + before.holds)
    assert sum(len(s.starts) for s in steps) > 0


@torch.no_grad()
def test_latent_walk_bars_are_closer_than_independent_ones(model):
    gen = GANGenerator(model, META, torch.device("cpu"), seed=2)
    walked, independent = [], []
    for _ in range(20):
        z0 = gen._z.clone()
        z1 = gen._walk(z0)
        assert torch.allclose(z1.norm(), z0.norm(), rtol=1e-4)
        walked.append(float((model(z0) - model(z1)).abs().mean()))
        independent.append(float((model(z0) - model(gen._random_latent(1))).abs().mean()))
        gen._z = z1
    assert np.mean(walked) < 0.6 * np.mean(independent)


def test_prime_and_constraints(model):
    gen = GANGenerator(model, META, torch.device("cpu"), seed=3)
    gen.threshold = 0.0                                        # every pitch sounds
    key = gen.prime([Note(62, 0, 1), Note(66, 1, 1), Note(69, 2, 1), Note(74, 3, 1)])
    assert key.name == "D major"
    gen.set_constraints(Constraints(low=62, high=74, scale=(0, 4, 7)))   # D, F#, A
    steps = [gen.next_step() for _ in range(16)]
    pitches = {p for s in steps for p in s.starts + s.holds}
    assert pitches == {62, 66, 69, 74}
