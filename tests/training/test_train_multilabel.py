"""Real multilabel training on a few Bach chorales from music21's corpus."""
import pytest
import torch

from riffd.engine.checkpoint import load_checkpoint, read_metadata
from riffd.engine.loading import load_generator
from riffd.engine.melody_representation import Note
from riffd.training.recipe import load_recipe
from riffd.training.train_multilabel import train
from tests.training.small_runs import resume_copy, train_small

RECIPE = "configs/multilabel_m5_chorales.toml"
SMALL = ["data.max_songs=6", "model.hidden_size=32", "model.dense_size=32",
         "model.attention_window=16", "model.dropout=0.0", "model.lstm_dropout=0.0",
         "train.epochs=3", "train.batch_size=16", "train.stride=8", "train.learning_rate=0.01",
         "train.early_stop_patience=10",
         'train.inference_mode="threshold"']   # the document's decoding (the recipe draws)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_small(tmp_path_factory.mktemp("multilabel"), RECIPE, SMALL, train)


def test_validation_loss_falls_and_top3_is_measured(trained):
    _, _, root = trained
    meta = read_metadata(root / "run" / "last.safetensors")
    history = meta["training"]["history"]
    assert len(history) == 3
    assert min(h["val_loss_bits"] for h in history[1:]) < history[0]["val_loss_bits"]
    assert history[-1]["train_loss_bits"] < history[0]["train_loss_bits"]
    assert 0 < history[-1]["val_top3_accuracy"] <= 1
    assert 0 <= history[-1]["val_frame_accuracy"] <= 1
    assert meta["representation"]["pitch_range"] == {"low": 60, "high": 83, "fold": True}
    assert meta["inference"] == {"mode": "threshold", "threshold": 0.3}
    assert meta["training"]["train_pieces"] + meta["training"]["val_pieces"] == 6


def test_checkpoint_round_trip_gives_a_polyphonic_generator(trained):
    _, best, _ = trained
    generator = load_generator(best, "cpu")
    assert generator.family == "multilabel_lstm" and generator.mode == "threshold"
    tensors, _ = load_checkpoint(best)
    for name, value in generator.model.state_dict().items():
        torch.testing.assert_close(value, tensors[name])
    generator.mode = "bernoulli"
    generator.prime([Note(60, 0, 1), Note(64, 0, 1), Note(67, 0, 1), Note(65, 1, 1)])
    steps = [generator.next_step() for _ in range(64)]
    assert max(len(s.starts) + len(s.holds) for s in steps) >= 2
    # the model's window C4–B5, moved by the key shift and the octaves that follow the seed
    move = generator.octave - generator.shift
    assert all(60 + move <= p <= 83 + move for s in steps for p in s.starts + s.holds)


def test_resume_continues_from_last(trained, tmp_path):
    _, _, root = trained
    code, epochs = resume_copy(root, tmp_path / "run", RECIPE, SMALL, epochs=4)
    assert code == 0
    assert epochs == [1, 2, 3, 4]


def test_bad_inference_settings_are_refused(tmp_path):
    for override, words in (('train.inference_mode="argmax"', "inference_mode"),
                            ("train.threshold=1.5", "threshold")):
        recipe = load_recipe("configs/multilabel_m4_chorales.toml",
                             [override, f'train.output_dir="{tmp_path}"'])
        with pytest.raises(ValueError, match=words):
            train(recipe)
