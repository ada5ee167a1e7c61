"""The training loop every sequence family shares (nanoGPT style: reads top to bottom).

Adam, gradient clipping, learning-rate annealing on plateau, early stopping on the
validation loss, ``--resume`` from ``last.safetensors``; per epoch a history entry, the
``last`` and (when better) ``best`` checkpoints, written atomically, and ``loss.png``.
``last`` carries what a resumed run needs to go on as if never stopped: the optimiser's
tensors, the learning-rate scheduler's state (in ``riffd.training.scheduler``) and the history.
Runs alone or under ``torchrun`` (see ``riffd.training.distributed``): each rank trains on its
shard, DDP averages the gradients, only rank 0 writes files.

A family gives a ``LoopTask``: its model, its training windows (a tensor indexed by
window), a loss for a batch, an evaluation on the held-out data and its metadata.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

from riffd.engine.checkpoint import load_checkpoint, save_checkpoint
from riffd.training import distributed
from riffd.training.loss_plot import plot_history

log = logging.getLogger(__name__)
OPTIM_PREFIX = "_optim."


@dataclass
class LoopTask:
    """What a family hands the loop.

    batch_loss(model, batch) → scalar loss in nats (model may be DDP-wrapped).
    evaluate(model) → {"loss_bits": …, "accuracy": …, other metrics…} on held-out data.
    metadata: the checkpoint document less "training" and "metrics" (family, config,
    representation, recipe…). summary: extra entries for the "training" section.
    check_resume(metadata of last.safetensors) raises when it cannot be resumed.
    """

    name: str
    model: nn.Module
    train_data: torch.Tensor                       # (N, …) windows
    batch_loss: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    evaluate: Callable[[nn.Module], dict[str, float]]
    metadata: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    check_resume: Callable[[dict], None] | None = None


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            out[f"{OPTIM_PREFIX}{index}.{name}"] = torch.as_tensor(value)
    return out


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                       lr: float) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(OPTIM_PREFIX):
            index, name = key[len(OPTIM_PREFIX):].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    saved = optimizer.state_dict()
    saved["state"] = state
    for group in saved["param_groups"]:
        group["lr"] = lr
    optimizer.load_state_dict(saved)


def scheduler_state(scheduler) -> dict[str, Any]:
    """A learning-rate scheduler's state as JSON for checkpoint metadata (infinities as
    strings: strict JSON has none)."""
    def encode(value):
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)                          # "inf", "-inf", "nan"
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        return value
    return {k: encode(v) for k, v in scheduler.state_dict().items()}


def restore_scheduler(scheduler, state: dict[str, Any]) -> None:
    """Load what :func:`scheduler_state` wrote."""
    def decode(value):
        if value in ("inf", "-inf", "nan"):
            return float(value)
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value
    scheduler.load_state_dict({k: decode(v) for k, v in state.items()})


def fit(task: LoopTask, tc, device: torch.device, ctx: distributed.DistContext,
        resume: bool = False) -> Path:
    """Train ``task.model`` with the [train] settings ``tc``; returns the best checkpoint's path.

    ``tc`` needs batch_size, learning_rate, epochs, grad_clip, lr_patience, lr_factor,
    early_stop_patience, max_batches_per_epoch, seed and output_dir.
    """
    out = Path(tc.output_dir)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    model = task.model
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.learning_rate)
    history: list[dict[str, float]] = []
    best_loss, start_epoch, lr = math.inf, 0, tc.learning_rate

    last_path, best_path = out / "last.safetensors", out / "best.safetensors"
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=tc.lr_factor, patience=tc.lr_patience)
    if resume and last_path.exists():
        tensors, meta = load_checkpoint(last_path)
        if task.check_resume is not None:
            task.check_resume(meta)
        model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(OPTIM_PREFIX)})
        summary = meta["training"]
        history, start_epoch = summary["history"], summary["epochs_done"]
        best_loss, lr = summary["best_val_loss_bits"], summary["learning_rate"]
        _restore_optimizer(optimizer, tensors, lr)
        if "scheduler" in summary:
            restore_scheduler(scheduler, summary["scheduler"])
            # the recipe may change these on resume; the plateau count and best loss go on
            scheduler.factor, scheduler.patience = tc.lr_factor, tc.lr_patience
        else:
            log.warning("%s has no learning-rate scheduler state (written by an older riffd): "
                        "the plateau count starts afresh", last_path)
        log.info("resuming %s after epoch %d at learning rate %g", last_path, start_epoch, lr)

    trained = distributed.wrap(model, ctx, device)
    generator = torch.Generator().manual_seed(tc.seed)
    for _ in range(start_epoch):                         # same shuffles as an unbroken run
        torch.randperm(len(task.train_data), generator=generator)
    epochs_without_gain = 0
    if history:
        best_epoch = min(range(len(history)), key=lambda i: history[i]["val_loss_bits"])
        epochs_without_gain = len(history) - 1 - best_epoch

    for epoch in range(start_epoch, tc.epochs):
        trained.train()
        started = time.monotonic()
        order = distributed.shard(torch.randperm(len(task.train_data), generator=generator), ctx)
        n_batches = math.ceil(len(order) / tc.batch_size)
        if tc.max_batches_per_epoch:
            n_batches = min(n_batches, tc.max_batches_per_epoch)
        running, bar = 0.0, tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{tc.epochs}",
                                 unit="batch", leave=False, disable=not ctx.is_main)
        for b in bar:
            batch = task.train_data[order[b * tc.batch_size:(b + 1) * tc.batch_size]].to(device)
            loss = task.batch_loss(trained, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            running += float(loss.detach())
            bar.set_postfix(loss_bits=f"{float(loss.detach()) / math.log(2):.3f}")
        distributed.sync_buffers(model, ctx)
        model.eval()
        metrics = task.evaluate(model)
        scheduler.step(metrics["loss_bits"])
        lr = optimizer.param_groups[0]["lr"]
        extra = {f"val_{k}": v for k, v in metrics.items() if k not in ("loss_bits", "accuracy")}
        history.append({"epoch": epoch + 1,
                        "train_loss_bits": running / n_batches / math.log(2),
                        "val_loss_bits": metrics["loss_bits"],
                        "val_accuracy": metrics["accuracy"], **extra, "lr": lr,
                        "seconds": time.monotonic() - started})
        improved = metrics["loss_bits"] < best_loss
        heads = ", ".join(f"{k[:-len('_accuracy')]} {100 * v:.1f}%" for k, v in metrics.items()
                          if k.endswith("_accuracy"))       # e.g. the notewise pitch and duration
        log.info("epoch %d: train %.3f bits, val %.3f bits, val accuracy %.1f%%%s%s",
                 epoch + 1, history[-1]["train_loss_bits"], metrics["loss_bits"],
                 100 * metrics["accuracy"], f" ({heads})" if heads else "",
                 " (best)" if improved else "")
        best_loss = min(best_loss, metrics["loss_bits"])
        epochs_without_gain = 0 if improved else epochs_without_gain + 1

        digests = distributed.weight_digests(model, ctx) if ctx.active else None
        if ctx.is_main:
            best = min(history, key=lambda h: h["val_loss_bits"])
            metric_keys = ["val_loss_bits", "val_accuracy", *extra]
            metadata = {
                **task.metadata,
                "training": {"epochs_done": epoch + 1, "history": history,
                             "best_epoch": best["epoch"], "best_val_loss_bits": best_loss,
                             "learning_rate": lr, "scheduler": scheduler_state(scheduler),
                             **task.summary, "device": str(device),
                             "processes": ctx.world_size,
                             **({"rank_weight_sha256": digests} if digests else {})},
                "metrics": {k: best[k] for k in metric_keys},
            }
            weights = model.state_dict()
            last_metrics = {k: history[-1][k] for k in metric_keys}
            save_checkpoint(last_path, {**weights, **_optimizer_tensors(optimizer)},
                            {**metadata, "metrics": last_metrics})
            if improved:
                save_checkpoint(best_path, weights, metadata)
            plot_history(history, out / "loss.png", title=task.name)
        distributed.barrier(ctx)
        if epochs_without_gain >= tc.early_stop_patience:
            log.info("stopping early: no gain for %d epochs", epochs_without_gain)
            break
    return best_path


def windows(stream: torch.Tensor, length: int, stride: int) -> torch.Tensor:
    """Cut (N, length + 1, …) windows from a (L, …) stream: inputs [:, :-1], targets [:, 1:]."""
    if len(stream) < length + 1:
        length = len(stream) - 1
    cut = stream.unfold(0, length + 1, stride)                   # (N, …, length + 1)
    return cut.movedim(-1, 1) if stream.dim() > 1 else cut
