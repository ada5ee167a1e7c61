"""Training under torchrun: 2 CPU processes, gloo, DistributedDataParallel, tiny real data."""
import hashlib
import os
import subprocess
import sys

import pytest

from riffd.engine.checkpoint import load_checkpoint, read_metadata

RUNS = {
    # N4: CNN front end (batch-norm buffers must agree too) and attention
    "notewise": ("configs/cnn_lstm_n4_folk.toml",
                 ['data.corpus=["essen:erk5"]', "model.hidden_size=24", "model.num_layers=2",
                  "model.pitch_embed_dim=8", "model.dense_size=16", "model.cnn_channels=8",
                  "model.attention_window=8", "train.stride=4", "train.batch_size=8",
                  "train.learning_rate=0.003"]),
    "multilabel": ("configs/multilabel_m5_chorales.toml",
                   ["data.max_songs=4", "model.hidden_size=24", "model.dense_size=16",
                    "model.attention_window=8", "train.stride=16", "train.batch_size=8",
                    "train.learning_rate=0.01"]),
}


def digest(tensors):
    """The same SHA-256 as training.distributed.weight_digests, from a checkpoint's tensors."""
    h = hashlib.sha256()
    for name, value in sorted((k, v) for k, v in tensors.items() if not k.startswith("_")):
        h.update(name.encode())
        h.update(value.contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("family", list(RUNS))
def test_two_processes_train_together_and_end_identical(family, tmp_path):
    recipe, overrides = RUNS[family]
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "riffd.training", "train", recipe, "--output", str(out),
               "--set", f'data.cache_dir="{tmp_path / "cache"}"', "--set", "train.epochs=3",
               "--set", "train.threads=1", "--set", "train.early_stop_patience=10", "--quiet"]
    for item in overrides:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env,
                            cwd=os.getcwd())
    assert result.returncode == 0, result.stderr[-3000:]
    tensors, meta = load_checkpoint(out / "last.safetensors")
    summary = meta["training"]
    assert summary["processes"] == 2
    ranks = summary["rank_weight_sha256"]
    assert len(ranks) == 2 and ranks[0] == ranks[1]           # identical weights on both ranks
    assert digest(tensors) == ranks[0]                          # and they are what was saved
    history = summary["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss_bits"] < history[0]["train_loss_bits"]
    assert min(h["val_loss_bits"] for h in history[1:]) < history[0]["val_loss_bits"]
    assert read_metadata(out / "best.safetensors")["family"].endswith("_lstm")
    assert (out / "loss.png").exists()
