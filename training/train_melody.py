"""Training loop for the melody LSTM (nanoGPT style: reads top to bottom).

Adam, gradient clipping, learning-rate annealing on plateau, early stopping on the
validation loss; per epoch the validation loss in bits per token and the accuracy.
Writes ``last.safetensors`` and ``best.safetensors`` (atomically) and ``loss.png``.
The loop itself is ``riffd.training.loop.fit``, shared with the other sequence families.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from riffd.engine.devices import resolve_device
from riffd.engine.melody_lstm import FAMILY, MelodyLSTM, MelodyLSTMConfig
from riffd.engine.melody_representation import DELIMITER, STEP_BEATS, Vocabulary
from riffd.training import distributed
from riffd.training.corpus import publish_report
from riffd.training.loop import LoopTask, fit, windows
from riffd.training.melody_data import load_melody_corpus
from riffd.training.recipe import Recipe

log = logging.getLogger(__name__)


def to_stream(songs: list[list[str]], vocab: Vocabulary) -> torch.Tensor:
    """One long id sequence: each song preceded by the delimiter."""
    ids: list[int] = []
    for song in songs:
        ids.append(vocab.id(DELIMITER))
        ids.extend(vocab.encode(song))
    return torch.tensor(ids, dtype=torch.long)


@torch.no_grad()
def evaluate(model: nn.Module, data: torch.Tensor, batch_size: int,
             device: torch.device) -> dict[str, float]:
    """Mean next-token loss (bits per token) and accuracy over all windows."""
    model.eval()
    total_loss, total_correct, total = 0.0, 0, 0
    for i in range(0, len(data), batch_size):
        batch = data[i:i + batch_size].to(device)
        logits = model(batch[:, :-1])                               # (B, T, V)
        targets = batch[:, 1:]
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                           reduction="sum")
        total_loss += float(loss)
        total_correct += int((logits.argmax(-1) == targets).sum())
        total += targets.numel()
    return {"loss_bits": total_loss / total / math.log(2), "accuracy": total_correct / total}


def train(recipe: Recipe, resume: bool = False) -> Path:
    """Train a melody model from a recipe; returns the path of the best checkpoint.

    Runs alone or under ``torchrun`` (one shard of the windows per process)."""
    cfg, tc = recipe.data, recipe.train
    torch.manual_seed(tc.seed)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    ctx = distributed.setup(resolve_device(tc.device))
    device = distributed.local_device(resolve_device(tc.device), ctx)

    corpus = distributed.main_first(ctx, lambda: load_melody_corpus(cfg, tc.seed))
    reported = publish_report(corpus.report, tc.output_dir, ctx.is_main, log)
    vocab = Vocabulary.from_songs(corpus.train + corpus.val)
    train_data = windows(to_stream(corpus.train, vocab), tc.sequence_length, tc.stride)
    val_data = windows(to_stream(corpus.val, vocab), tc.sequence_length, tc.sequence_length)
    log.info("%d training songs (%d windows), %d validation songs, vocabulary %d",
             len(corpus.train), len(train_data), len(corpus.val), len(vocab))

    model_cfg = MelodyLSTMConfig(vocab_size=len(vocab), **recipe.model)
    model = MelodyLSTM(model_cfg).to(device)

    def batch_loss(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        logits = net(batch[:, :-1])                                   # (B, T, V)
        return nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())

    def check_resume(meta: dict) -> None:
        if meta["representation"]["vocabulary"] != vocab.tokens:
            raise ValueError(f"{tc.output_dir}/last.safetensors was trained on another "
                             "vocabulary; resume with the same corpus or train afresh")

    task = LoopTask(
        name=recipe.name, model=model, train_data=train_data, batch_loss=batch_loss,
        evaluate=lambda net: evaluate(net, val_data, tc.batch_size, device),
        metadata={"family": FAMILY, "name": recipe.name, "config": asdict(model_cfg),
                  "representation": {"name": "melody_16th", "vocabulary": vocab.tokens,
                                     "step_beats": STEP_BEATS,
                                     "key_normalisation": "C major / A minor" if cfg.transpose
                                     else "none"},
                  "recipe": recipe.to_dict()},
        summary={"train_songs": len(corpus.train), "val_songs": len(corpus.val),
                 "dropped_songs": corpus.dropped, **reported},
        check_resume=check_resume)
    try:
        return fit(task, tc, device, ctx, resume=resume)
    finally:
        distributed.teardown(ctx)
