"""Training the multilabel LSTMs (M4–M7): the next piano-roll frame, binary cross-entropy per pitch.

Reported per epoch on the held-out pieces:
  loss_bits         binary cross-entropy summed over pitches, in bits per frame
  top3_accuracy     the document's metric, as Keras computes top-3 categorical accuracy
                    on a multi-hot target: the target's first (lowest) sounding pitch is
                    among the 3 most probable pitches; frames with no note are left out
  frame_accuracy    the frame predicted at the threshold (0.3) equals the target exactly
The loop (checkpoints, plateau annealing, early stopping, torchrun) is ``riffd.training.loop``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from riffd.engine.devices import resolve_device
from riffd.engine.melody_representation import STEP_BEATS
from riffd.engine.multilabel_generator import MODES
from riffd.engine.multilabel_lstm import FAMILY, MultilabelLSTM, MultilabelLSTMConfig
from riffd.training import distributed
from riffd.training.corpus import publish_report
from riffd.training.loop import LoopTask, fit, windows
from riffd.training.multilabel_data import load_roll_corpus
from riffd.training.recipe import Recipe

log = logging.getLogger(__name__)


def to_stream(rolls: list[np.ndarray]) -> torch.Tensor:
    """(L, P) float frames: each piece preceded by one silent frame (the start marker)."""
    P = rolls[0].shape[1]
    parts = []
    for roll in rolls:
        parts += [np.zeros((1, P), dtype=np.float32), roll.astype(np.float32)]
    return torch.from_numpy(np.concatenate(parts))


@torch.no_grad()
def evaluate(model: nn.Module, data: torch.Tensor, batch_size: int, device: torch.device,
             threshold: float) -> dict[str, float]:
    """Bits per frame, top-3 accuracy and exact-frame accuracy over all windows."""
    model.eval()
    loss, frames, top3_hits, sounding, exact = 0.0, 0, 0, 0, 0
    for i in range(0, len(data), batch_size):
        batch = data[i:i + batch_size].to(device)
        logits = model(batch[:, :-1])                               # (B, T, P)
        target = batch[:, 1:]
        loss += float(F.binary_cross_entropy_with_logits(logits, target, reduction="sum"))
        frames += target.shape[0] * target.shape[1]
        has_note = target.sum(-1) > 0                               # (B, T)
        top3 = logits.topk(min(3, logits.shape[-1]), dim=-1).indices    # (B, T, 3)
        first = target.argmax(-1, keepdim=True)                     # (B, T, 1)
        top3_hits += int(((top3 == first).any(-1) & has_note).sum())
        sounding += int(has_note.sum())
        exact += int(((torch.sigmoid(logits) >= threshold) == target.bool()).all(-1).sum())
    return {"loss_bits": loss / frames / math.log(2),
            "accuracy": top3_hits / max(sounding, 1), "top3_accuracy": top3_hits / max(sounding, 1),
            "frame_accuracy": exact / frames}


@torch.no_grad()
def last_frame_metrics(model: nn.Module, stream: torch.Tensor, length: int, batch_size: int,
                       device: torch.device) -> dict[str, float]:
    """The document's measure (a many-to-one model): each frame after the first ``length``
    of a (L, P) stream is predicted from the ``length`` frames before it (windows of stride
    1, only the last position scored), where :func:`evaluate` averages every position of
    non-overlapping windows. Top-3 as in :func:`evaluate` (silent targets left out)."""
    model.eval()
    data = windows(stream, length, 1)                              # (N, length + 1, P)
    hits = sounding = 0
    for i in range(0, len(data), batch_size):
        batch = data[i:i + batch_size].to(device)
        logits = model(batch[:, :-1])[:, -1]                       # (B, P)
        target = batch[:, -1]
        has_note = target.sum(-1) > 0
        top3 = logits.topk(min(3, logits.shape[-1]), dim=-1).indices
        hits += int(((top3 == target.argmax(-1, keepdim=True)).any(-1) & has_note).sum())
        sounding += int(has_note.sum())
    return {"top3_accuracy": hits / max(sounding, 1), "frames": sounding,
            "context_frames": length}


def train(recipe: Recipe, resume: bool = False) -> Path:
    """Train a multilabel model from a recipe; returns the path of the best checkpoint."""
    cfg, tc = recipe.data, recipe.train
    if tc.inference_mode not in MODES:
        raise ValueError(f"train.inference_mode {tc.inference_mode!r} is unknown; use one of "
                         f"{', '.join(MODES)}")
    if not 0 < tc.threshold < 1:
        raise ValueError(f"train.threshold must lie between 0 and 1, got {tc.threshold}")
    torch.manual_seed(tc.seed)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    ctx = distributed.setup(resolve_device(tc.device))
    device = distributed.local_device(resolve_device(tc.device), ctx)

    corpus = distributed.main_first(ctx, lambda: load_roll_corpus(cfg, tc.seed))
    reported = publish_report(corpus.report, tc.output_dir, ctx.is_main, log)
    train_data = windows(to_stream(corpus.train), tc.sequence_length, tc.stride)
    val_data = windows(to_stream(corpus.val), tc.sequence_length, tc.sequence_length)
    log.info("%d training pieces (%d windows), %d held-out pieces; %d pitches",
             len(corpus.train), len(train_data), len(corpus.val), corpus.pitch_range.size)

    model_cfg = MultilabelLSTMConfig(num_pitches=corpus.pitch_range.size, **recipe.model)
    torch.manual_seed(tc.seed)
    model = MultilabelLSTM(model_cfg).to(device)

    def batch_loss(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(net(batch[:, :-1]), batch[:, 1:],
                                                  reduction="none")       # (B, T, P)
        return loss.sum(-1).mean()                                       # nats per frame

    def check_resume(meta: dict) -> None:
        if meta["representation"]["pitch_range"] != corpus.pitch_range.to_dict():
            raise ValueError(f"{tc.output_dir}/last.safetensors was trained on another pitch "
                             "range; resume with the same [data] or train afresh")

    task = LoopTask(
        name=recipe.name, model=model, train_data=train_data, batch_loss=batch_loss,
        evaluate=lambda net: evaluate(net, val_data, tc.batch_size, device, tc.threshold),
        metadata={"family": FAMILY, "name": recipe.name, "config": asdict(model_cfg),
                  "representation": {"name": "pianoroll", "step_beats": STEP_BEATS,
                                     "pitch_range": corpus.pitch_range.to_dict(),
                                     "transpose": cfg.transpose,
                                     "restrike_gap": cfg.restrike_gap},
                  "inference": {"mode": tc.inference_mode, "threshold": tc.threshold},
                  "recipe": recipe.to_dict()},
        summary={"train_pieces": len(corpus.train), "val_pieces": len(corpus.val),
                 "train_windows": len(train_data), **reported},
        check_resume=check_resume)
    try:
        return fit(task, tc, device, ctx, resume=resume)
    finally:
        distributed.teardown(ctx)
