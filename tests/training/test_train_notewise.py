"""Real notewise training on a small slice of the Essen corpus (erk5.abc: 27 songs)."""
import pytest
import torch

from riffd.engine.checkpoint import load_checkpoint, read_metadata
from riffd.engine.loading import load_generator
from riffd.engine.melody_representation import Note
from riffd.training.recipe import RecipeError, load_recipe
from riffd.training.train_notewise import train
from tests.training.small_runs import resume_copy, train_small

RECIPE = "configs/cnn_lstm_n4_folk.toml"
SMALL = ['data.corpus=["essen:erk5"]', "model.hidden_size=32", "model.pitch_embed_dim=16",
         "model.dense_size=32", "model.cnn_channels=16", "model.attention_window=8",
         "train.epochs=4", "train.batch_size=16", "train.stride=4", "train.learning_rate=0.003",
         "train.early_stop_patience=10"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_small(tmp_path_factory.mktemp("notewise"), RECIPE, SMALL, train)


def test_validation_loss_falls_and_both_accuracies_are_kept(trained):
    _, best, _ = trained
    meta = read_metadata(best)
    history = meta["training"]["history"]
    assert len(history) >= 2
    first, best_entry = history[0], min(history, key=lambda h: h["val_loss_bits"])
    assert best_entry["val_loss_bits"] < first["val_loss_bits"]
    assert 0 < meta["metrics"]["val_pitch_accuracy"] <= 1
    assert 0 < meta["metrics"]["val_duration_accuracy"] <= 1
    assert meta["config"]["cnn"] and meta["config"]["attention"]
    assert meta["training"]["train_songs"] + meta["training"]["val_songs"] == 27


def test_checkpoint_round_trip_gives_a_generator_in_the_seed_key(trained):
    _, best, root = trained
    meta = read_metadata(best)
    vocab = meta["representation"]["vocabulary"]
    assert vocab["variant"] == "root" and vocab["pitch_tokens"][:2] == ["/", "r"]
    generator = load_generator(best, "cpu")
    assert generator.family == "notewise_lstm" and generator.step_beats == 0.25
    key = generator.prime([Note(62, 0, 1), Note(66, 1, 1), Note(69, 2, 2)])
    assert key.name == "D major"
    steps = [generator.next_step() for _ in range(64)]
    assert any(s.starts for s in steps)
    tensors, _ = load_checkpoint(best)
    for name, value in generator.model.state_dict().items():
        torch.testing.assert_close(value, tensors[name])
    assert (root / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_from_last(trained, tmp_path):
    _, _, root = trained
    code, epochs = resume_copy(root, tmp_path / "run", RECIPE, SMALL, epochs=5)
    assert code == 0
    assert epochs == [1, 2, 3, 4, 5]


def test_data_decided_fields_and_unknown_variants_are_refused(tmp_path):
    with pytest.raises(RecipeError, match="num_durations"):
        train(load_recipe("configs/notewise_n1_folk.toml", ["model.num_durations=3"]))
    recipe = load_recipe("configs/notewise_n1_folk.toml",
                         ['data.variant="octaves"', f'data.cache_dir="{tmp_path}"',
                          f'train.output_dir="{tmp_path / "run"}"'])
    with pytest.raises(ValueError, match="variant 'octaves'"):
        train(recipe)
