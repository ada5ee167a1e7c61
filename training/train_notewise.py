"""Training the notewise LSTMs (N1–N4): next pitch token and next duration token per event.

The loss is the sum of the two heads' cross-entropies (reported in bits per event); the
validation accuracies of both heads are kept per epoch, the pitch one as ``val_accuracy``.
Every position of a window predicts the next event (many-to-many), where the document's
Keras model predicted only the window's last one; the targets are the same events.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from riffd.engine.devices import resolve_device
from riffd.engine.notewise_lstm import FAMILY, NotewiseLSTM, NotewiseLSTMConfig
from riffd.engine.notewise_representation import DELIMITER, DURATIONS, Event, NotewiseVocabulary
from riffd.engine.melody_representation import STEP_BEATS
from riffd.training import distributed
from riffd.training.corpus import publish_report
from riffd.training.loop import LoopTask, fit, windows
from riffd.training.notewise_data import load_notewise_corpus
from riffd.training.recipe import Recipe, RecipeError

log = logging.getLogger(__name__)


def to_stream(songs: list[list[Event]], vocab: NotewiseVocabulary) -> torch.Tensor:
    """(L, 2) ids: columns pitch, duration; each song preceded by the delimiter event."""
    pitches, durations = [], []
    for song in songs:
        p, d = vocab.encode([(DELIMITER, DELIMITER), *song])
        pitches.extend(p)
        durations.extend(d)
    return torch.tensor([pitches, durations], dtype=torch.long).T


def event_loss(net: nn.Module, batch: torch.Tensor, reduction: str = "mean"
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """batch: (B, T+1, 2) → pitch loss, duration loss (nats), pitch and duration logits."""
    x, y = batch[:, :-1], batch[:, 1:]
    pitch_logits, duration_logits = net(x[..., 0], x[..., 1])       # (B,T,P) (B,T,D)
    pitch_loss = F.cross_entropy(pitch_logits.flatten(0, 1), y[..., 0].flatten(),
                                 reduction=reduction)
    duration_loss = F.cross_entropy(duration_logits.flatten(0, 1), y[..., 1].flatten(),
                                    reduction=reduction)
    return pitch_loss, duration_loss, pitch_logits, duration_logits


@torch.no_grad()
def evaluate(model: nn.Module, data: torch.Tensor, batch_size: int,
             device: torch.device) -> dict[str, float]:
    """Bits per event (both heads) and the pitch and duration accuracies over all windows."""
    model.eval()
    loss, pitch_ok, duration_ok, total = 0.0, 0, 0, 0
    for i in range(0, len(data), batch_size):
        batch = data[i:i + batch_size].to(device)
        pl, dl, p_logits, d_logits = event_loss(model, batch, reduction="sum")
        targets = batch[:, 1:]
        loss += float(pl + dl)
        pitch_ok += int((p_logits.argmax(-1) == targets[..., 0]).sum())
        duration_ok += int((d_logits.argmax(-1) == targets[..., 1]).sum())
        total += targets.shape[0] * targets.shape[1]
    return {"loss_bits": loss / total / math.log(2), "accuracy": pitch_ok / total,
            "pitch_accuracy": pitch_ok / total, "duration_accuracy": duration_ok / total}


@torch.no_grad()
def last_event_metrics(model: nn.Module, stream: torch.Tensor, length: int, batch_size: int,
                       device: torch.device) -> dict[str, float]:
    """The document's measure (a many-to-one model): each event after the first ``length``
    of a (L, 2) stream is predicted from the ``length`` events before it (windows of stride
    1, only the last position scored), where :func:`evaluate` averages every position of
    non-overlapping windows, the first ones with little context. Returns the pitch and
    duration accuracies and the number of events scored."""
    model.eval()
    data = windows(stream, length, 1)                              # (N, length + 1, 2)
    pitch_ok = duration_ok = 0
    for i in range(0, len(data), batch_size):
        batch = data[i:i + batch_size].to(device)
        p_logits, d_logits = model(batch[:, :-1, 0], batch[:, :-1, 1])
        pitch_ok += int((p_logits[:, -1].argmax(-1) == batch[:, -1, 0]).sum())
        duration_ok += int((d_logits[:, -1].argmax(-1) == batch[:, -1, 1]).sum())
    return {"pitch_accuracy": pitch_ok / len(data), "duration_accuracy": duration_ok / len(data),
            "events": len(data), "context_events": length}


def train(recipe: Recipe, resume: bool = False) -> Path:
    """Train a notewise model from a recipe; returns the path of the best checkpoint."""
    cfg, tc = recipe.data, recipe.train
    if "num_durations" in recipe.model:
        raise RecipeError("model.num_durations is decided by the data; remove it from the recipe")
    torch.manual_seed(tc.seed)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    ctx = distributed.setup(resolve_device(tc.device))
    device = distributed.local_device(resolve_device(tc.device), ctx)

    corpus = distributed.main_first(ctx, lambda: load_notewise_corpus(cfg, tc.seed))
    reported = publish_report(corpus.report, tc.output_dir, ctx.is_main, log)
    vocab = NotewiseVocabulary.from_songs(corpus.train + corpus.val, cfg.variant)
    train_data = windows(to_stream(corpus.train, vocab), tc.sequence_length, tc.stride)
    val_data = windows(to_stream(corpus.val, vocab), tc.sequence_length, tc.sequence_length)
    log.info("%d training songs (%d windows), %d validation songs; %d pitch and %d duration "
             "tokens", len(corpus.train), len(train_data), len(corpus.val),
             len(vocab.pitch_tokens), len(vocab.duration_tokens))

    model_cfg = NotewiseLSTMConfig(vocab_size=len(vocab.pitch_tokens),
                                   num_durations=len(vocab.duration_tokens), **recipe.model)
    torch.manual_seed(tc.seed)                     # same initial weights on every rank
    model = NotewiseLSTM(model_cfg).to(device)

    def batch_loss(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        pitch_loss, duration_loss, _, _ = event_loss(net, batch)
        return pitch_loss + duration_loss

    def check_resume(meta: dict) -> None:
        if meta["representation"]["vocabulary"] != vocab.to_metadata():
            raise ValueError(f"{tc.output_dir}/last.safetensors was trained on other "
                             "vocabularies; resume with the same corpus or train afresh")

    task = LoopTask(
        name=recipe.name, model=model, train_data=train_data, batch_loss=batch_loss,
        evaluate=lambda net: evaluate(net, val_data, tc.batch_size, device),
        metadata={"family": FAMILY, "name": recipe.name, "config": asdict(model_cfg),
                  "representation": {"name": "notewise", "vocabulary": vocab.to_metadata(),
                                     "durations_beats": list(DURATIONS),
                                     "step_beats": STEP_BEATS, "transpose": cfg.transpose,
                                     "key_normalisation": "C major / A minor" if cfg.transpose
                                     else "none"},
                  "recipe": recipe.to_dict()},
        summary={"train_songs": len(corpus.train), "val_songs": len(corpus.val),
                 "dropped_songs": corpus.dropped, "train_windows": len(train_data),
                 **reported},
        check_resume=check_resume)
    try:
        return fit(task, tc, device, ctx, resume=resume)
    finally:
        distributed.teardown(ctx)
