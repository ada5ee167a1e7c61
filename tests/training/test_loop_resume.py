"""``--resume`` goes on as if the run had never stopped: the learning-rate schedule too.

The loop (``riffd.training.loop.fit``) trains a tiny real model and writes real checkpoints; the
validation losses are scripted, so that the plateau schedule is known in advance and a
resumed run can be compared with an unbroken one epoch by epoch.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from riffd.engine.checkpoint import read_metadata
from riffd.training.distributed import DistContext
from riffd.training.loop import LoopTask, fit

# val losses by epoch: the best is epoch 2, then a plateau; with patience 1 the rate halves
# after two bad epochs (epoch 4), and again after two more (epoch 6)
VAL_LOSSES = [5.0, 4.0, 4.5, 4.6, 4.7, 4.8, 4.9]


@dataclass
class TrainSettings:
    batch_size: int = 4
    learning_rate: float = 0.01
    epochs: int = 7
    grad_clip: float = 1.0
    lr_patience: int = 1
    lr_factor: float = 0.5
    early_stop_patience: int = 100
    max_batches_per_epoch: int = 2
    seed: int = 0
    output_dir: str = ""


def task(losses_from_epoch: int) -> LoopTask:
    torch.manual_seed(0)
    model = nn.Linear(3, 3)
    calls = iter(VAL_LOSSES[losses_from_epoch:])

    def evaluate(net):
        return {"loss_bits": next(calls), "accuracy": 0.5}

    return LoopTask(name="tiny", model=model, train_data=torch.randn(16, 3),
                    batch_loss=lambda net, batch: ((net(batch) - batch) ** 2).mean(),
                    evaluate=evaluate, metadata={"family": "test", "config": {}})


def lrs(path) -> list[float]:
    return [h["lr"] for h in read_metadata(path)["training"]["history"]]


def test_resume_continues_the_learning_rate_schedule_of_an_unbroken_run(tmp_path):
    whole = TrainSettings(output_dir=str(tmp_path / "whole"))
    fit(task(0), whole, torch.device("cpu"), DistContext())
    expected = lrs(tmp_path / "whole" / "last.safetensors")
    assert expected == [0.01, 0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025]

    run = tmp_path / "broken"
    fit(task(0), TrainSettings(epochs=3, output_dir=str(run)), torch.device("cpu"),
        DistContext())                                          # stops after epoch 3
    state = read_metadata(run / "last.safetensors")["training"]["scheduler"]
    assert state["num_bad_epochs"] == 1 and state["best"] == pytest.approx(4.0)
    fit(task(3), TrainSettings(output_dir=str(run)), torch.device("cpu"), DistContext(),
        resume=True)
    assert lrs(run / "last.safetensors") == expected


def test_a_checkpoint_without_scheduler_state_still_resumes(tmp_path, caplog):
    run = tmp_path / "old"
    fit(task(0), TrainSettings(epochs=2, output_dir=str(run)), torch.device("cpu"),
        DistContext())
    # what an older riffd wrote: no scheduler in the training summary
    from riffd.engine.checkpoint import load_checkpoint, save_checkpoint
    tensors, meta = load_checkpoint(run / "last.safetensors")
    del meta["training"]["scheduler"]
    save_checkpoint(run / "last.safetensors", tensors, meta)
    fit(task(2), TrainSettings(epochs=3, output_dir=str(run)), torch.device("cpu"),
        DistContext(), resume=True)
    assert len(lrs(run / "last.safetensors")) == 3
    assert "no learning-rate scheduler state" in caplog.text
