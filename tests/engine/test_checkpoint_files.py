"""Checkpoint files: written atomically, with the mode the user's umask gives a new file."""
import os
import stat

import torch

from riffd.engine.checkpoint import load_checkpoint, save_checkpoint


def test_a_checkpoint_gets_the_umask_mode_and_reads_back(tmp_path):
    previous = os.umask(0o027)
    try:
        path = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.arange(4.0)},
                               {"family": "test"})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]   # no temporary left
    tensors, metadata = load_checkpoint(path)
    assert torch.equal(tensors["w"], torch.arange(4.0))
    assert metadata["family"] == "test"
