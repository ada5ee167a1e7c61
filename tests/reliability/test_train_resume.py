"""A real training run killed with SIGKILL mid-run resumes from its last checkpoint and finishes.

Small real data (music21's erk5.abc, 27 songs) and a small model, so that the whole test
takes well under a minute on two CPU cores.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from riffd.engine.checkpoint import CheckpointError, read_metadata
from riffd.engine.loading import load_generator

pytestmark = pytest.mark.slow

EPOCHS = 8
SMALL = ['data.corpus=["essen:erk5"]', "model.hidden_size=48", "model.embed_dim=16",
         "train.batch_size=16", "train.stride=8", "train.learning_rate=0.01",
         "train.early_stop_patience=100", "train.threads=1", f"train.epochs={EPOCHS}"]


def command(root: Path, *extra: str) -> list[str]:
    sets = sum([["--set", s] for s in SMALL + [f'data.cache_dir="{root / "cache"}"']], [])
    return [sys.executable, "-m", "riffd.training", "train", "configs/melody_erk.toml", *sets,
            "--output", str(root / "run"), *extra]


def epochs_done(path: Path) -> int:
    try:
        return read_metadata(path)["training"]["epochs_done"]
    except (FileNotFoundError, CheckpointError):
        return 0


def test_a_run_killed_mid_training_resumes_from_its_last_checkpoint(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}        # music21's parse cache stays here
    last = tmp_path / "run" / "last.safetensors"
    log1 = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(command(tmp_path), env=env, stdout=log1, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while epochs_done(last) < 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)                                  # into the next epoch
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
        log1.close()
    assert first.returncode == -signal.SIGKILL
    killed_at = read_metadata(last)["training"]     # the checkpoint survived the kill whole
    done = killed_at["epochs_done"]
    assert 2 <= done < EPOCHS

    second = subprocess.run(command(tmp_path, "--resume"), env=env, capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"after epoch {done}" in second.stderr              # it said where it went on
    final = read_metadata(last)["training"]
    assert [h["epoch"] for h in final["history"]] == list(range(1, EPOCHS + 1))
    assert final["history"][:done] == killed_at["history"]     # kept, not retrained
    assert final["epochs_done"] == EPOCHS and "scheduler" in final
    generator = load_generator(tmp_path / "run" / "best.safetensors", "cpu")
    assert len(list(generator.tokens(16))) == 16
