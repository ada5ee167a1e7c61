"""Real training on a small slice of the Essen corpus (erk5.abc: 27 songs)."""
import json
import pickle
import shutil

import pytest
import torch

from riffd.engine.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from riffd.engine.loading import load_generator
from riffd.engine.melody_representation import Note
from riffd.training.cli import main as train_main
from riffd.training.recipe import load_recipe
from riffd.training.train_melody import train

SMALL = ["data.corpus=[\"essen:erk5\"]", "model.hidden_size=48", "model.embed_dim=16",
         "train.epochs=4", "train.batch_size=16", "train.stride=8", "train.learning_rate=0.01",
         "train.early_stop_patience=10"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    recipe = load_recipe("configs/melody_erk.toml",
                         SMALL + [f'data.cache_dir="{root / "cache"}"',
                                  f'train.output_dir="{root / "run"}"'])
    best = train(recipe)
    return recipe, best, root


def test_training_lowers_validation_loss(trained):
    _, best, _ = trained
    history = read_metadata(best)["training"]["history"]
    assert len(history) >= 2
    assert history[-1]["val_loss_bits"] < history[0]["val_loss_bits"]
    assert history[-1]["train_loss_bits"] < history[0]["train_loss_bits"]


def test_checkpoints_carry_their_metadata_and_a_loss_plot(trained):
    _, best, root = trained
    meta = read_metadata(best)
    assert meta["family"] == "melody_lstm"
    assert meta["representation"]["step_beats"] == 0.25
    assert meta["representation"]["vocabulary"][:3] == ["/", "r", "_"]
    assert meta["config"]["hidden_size"] == 48
    assert 0 < meta["metrics"]["val_accuracy"] <= 1
    assert meta["training"]["train_songs"] + meta["training"]["val_songs"] == 27
    assert (root / "run" / "last.safetensors").exists()
    assert (root / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_checkpoint_round_trip_rebuilds_a_generator(trained):
    _, best, _ = trained
    generator = load_generator(best, "cpu")
    key = generator.prime([Note(62, 0, 1), Note(66, 1, 1), Note(69, 2, 2)])   # D major
    assert key.name == "D major"
    tokens = list(generator.tokens(64))
    assert all(t in ("r", "_") or 0 <= int(t) <= 127 for t in tokens)
    tensors, _ = load_checkpoint(best)
    model = generator.model.cpu()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, tensors[name])


def test_resume_continues_from_last(trained, tmp_path):
    recipe, _, root = trained
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    code = train_main(["train", "configs/melody_erk.toml", *sum([["--set", s] for s in SMALL], []),
                       "--set", f'data.cache_dir="{root / "cache"}"',
                       "--set", "train.epochs=5", "--output", str(run), "--resume", "--quiet"])
    assert code == 0
    history = read_metadata(run / "last.safetensors")["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]


def test_a_pickle_is_refused_without_being_unpickled(tmp_path):
    marker = tmp_path / "was-unpickled"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="pickled"):
        load_generator(path)
    torch.save({"w": torch.zeros(2)}, tmp_path / "torch.pt")
    with pytest.raises(CheckpointError, match="pickled"):
        load_generator(tmp_path / "torch.pt")
    assert not marker.exists()


def test_truncated_and_foreign_files_are_refused(trained, tmp_path):
    _, best, _ = trained
    data = best.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_generator(cut)
    (tmp_path / "tiny.safetensors").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="too short"):
        load_generator(tmp_path / "tiny.safetensors")
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not a riffd checkpoint"):
        load_generator(tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_generator(tmp_path / "missing.safetensors")


def test_a_checkpoint_from_another_format_version_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "x.safetensors", {"w": torch.zeros(1)},
                           {"family": "melody_lstm"})
    from safetensors.torch import save_file
    meta = json.loads(json.dumps(read_metadata(path)))
    meta["format_version"] = 99
    save_file({"w": torch.zeros(1)}, str(path), metadata={"riffd": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="format 99.*upgrade riffd"):
        load_generator(path)


def test_a_checkpoint_whose_header_length_starts_with_0x80_still_loads(tmp_path):
    # the first byte of a safetensors file is the low byte of its header length: 0x80 there is
    # not a pickle (a pickle's protocol marker) when a JSON header follows
    import struct
    path = tmp_path / "x.safetensors"
    for pad in range(0, 512, 1):
        save_checkpoint(path, {"w": torch.zeros(1)}, {"family": "melody_lstm", "pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert struct.unpack("<Q", path.read_bytes()[:8])[0] % 256 == 0x80
    assert read_metadata(path)["pad"]
    tensors, _ = load_checkpoint(path)
    assert tensors["w"].shape == (1,)
