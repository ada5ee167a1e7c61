"""Real GAN training on a few Bach chorales: losses recorded, checkpoints round-trip."""
import pytest
import torch

from riffd.engine.checkpoint import load_checkpoint, read_metadata
from riffd.engine.loading import load_generator
from riffd.engine.melody_representation import Note
from riffd.training.chorales import ChoraleSettings, load_chorales, piece_bars
from riffd.engine.pianoroll import OCTAVE_CUT
from riffd.training.recipe import RecipeError, load_recipe
from riffd.training.train_gan import train

TINY_MODEL = {
    "gan_cnn": ["model.channels=16"],
    "gan_bilstm": ["model.hidden_size=16", "model.dense_size=16"],
}
TINY_TRAIN = ["data.max_pieces=12", "model.disc_hidden_size=16", "model.disc_dense1=16",
              "model.disc_dense2=8", "train.epochs=2", "train.batch_size=32",
              "train.eval_bars=32", "train.learning_rate=0.002", "train.optimizer=\"adam\""]


def train_tiny_gan(root, family: str = "gan_cnn", extra=()):
    """Train a tiny GAN on 12 chorales for 2 epochs; returns the best checkpoint path."""
    config = "configs/gan_cnn_chorales.toml" if family == "gan_cnn" else \
        "configs/gan_bilstm_chorales.toml"
    recipe = load_recipe(config, TINY_TRAIN + TINY_MODEL[family] + list(extra) + [
        f'data.cache_dir="{root / "cache"}"', f'train.output_dir="{root / family}"'])
    return train(recipe)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan")
    return root, {f: train_tiny_gan(root, f) for f in ("gan_cnn", "gan_bilstm")}


def test_chorales_give_4_4_bars(trained):
    root, _ = trained
    pieces = load_chorales(ChoraleSettings(max_pieces=12, cache_dir=str(root / "cache")))
    assert len(pieces) == 12
    assert all(p.notes and p.bar_beats in (3.0, 4.0) for p in pieces)
    bars = [piece_bars(p, OCTAVE_CUT) for p in pieces]
    assert sum(len(b) for b in bars) > 100
    assert all(len(b) == 0 for b, p in zip(bars, pieces) if p.bar_beats != 4.0)
    assert all(b.shape[1:] == (16, 24) for b in bars)


@pytest.mark.parametrize("family", ["gan_cnn", "gan_bilstm"])
def test_losses_and_metrics_are_recorded(trained, family):
    root, best = trained
    meta = read_metadata(best[family])
    history = meta["training"]["history"]
    assert meta["family"] == family and len(history) >= 1
    assert meta["training"]["epochs_done"] >= 1
    for h in history:
        assert h["d_loss"] > 0 and h["g_loss"] > 0
        assert 0 <= h["empty_bars_pct"] <= 100 and 0 <= h["used_pitch_classes"] <= 12
    assert read_metadata(root / family / "last.safetensors")["training"]["epochs_done"] == 2
    assert (root / family / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert meta["representation"]["pitch_range"] == {"low": 60, "high": 83, "fold": True}


@pytest.mark.parametrize("family", ["gan_cnn", "gan_bilstm"])
def test_checkpoint_round_trip_gives_the_same_bars(trained, family):
    _, best = trained
    generator = load_generator(best[family], "cpu")
    assert generator.family == family
    tensors, _ = load_checkpoint(best[family])
    z = generator.model.sample_latent(4, torch.Generator().manual_seed(0))
    rebuilt = type(generator.model)(generator.model.cfg).eval()
    rebuilt.load_state_dict(tensors)
    with torch.no_grad():
        assert torch.equal(rebuilt(z), generator.model(z))
    generator.prime([Note(60, 0, 1), Note(64, 1, 1), Note(67, 2, 2)])
    steps = [generator.next_step() for _ in range(32)]
    assert all(0 <= p <= 127 for s in steps for p in s.starts + s.holds)


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="data.bar_steps"):
        train(load_recipe("configs/gan_cnn_chorales.toml", ["model.bar_steps=16"]))
    with pytest.raises(ValueError, match="bach_chorales"):
        train(load_recipe("configs/gan_cnn_chorales.toml",
                          ['data.corpus="essen:erk"', f'train.output_dir="{tmp_path}"']))
    with pytest.raises(RecipeError, match="pitch_low"):
        load_recipe("configs/gan_cnn_chorales.toml", ["data.pitch_lo=3"])
