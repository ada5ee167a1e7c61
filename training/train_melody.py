"""Training loop for the melody LSTM (nanoGPT style: reads top to bottom).

Adam, gradient clipping, learning-rate annealing on plateau, early stopping on the
validation loss; per epoch the validation loss in bits per token and the accuracy.
Writes ``last.safetensors`` and ``best.safetensors`` (atomically) and ``loss.png``.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.devices import resolve_device
from engine.melody_lstm import FAMILY, MelodyLSTM, MelodyLSTMConfig
from engine.melody_representation import DELIMITER, STEP_BEATS, Vocabulary
from training.loss_plot import plot_history
from training.melody_data import load_melody_corpus
from training.recipe import Recipe

log = logging.getLogger(__name__)
OPTIM_PREFIX = "_optim."


def to_stream(songs: list[list[str]], vocab: Vocabulary) -> torch.Tensor:
    """One long id sequence: each song preceded by the delimiter."""
    ids: list[int] = []
    for song in songs:
        ids.append(vocab.id(DELIMITER))
        ids.extend(vocab.encode(song))
    return torch.tensor(ids, dtype=torch.long)


def windows(stream: torch.Tensor, length: int, stride: int) -> torch.Tensor:
    """Cut (N, length + 1) windows: inputs are [:, :-1], targets [:, 1:]."""
    if len(stream) < length + 1:
        length = len(stream) - 1
    return stream.unfold(0, length + 1, stride)


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


def train(recipe: Recipe, resume: bool = False) -> Path:
    """Train a melody model from a recipe; returns the path of the best checkpoint."""
    cfg, tc = recipe.data, recipe.train
    torch.manual_seed(tc.seed)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = resolve_device(tc.device)
    out = Path(tc.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    corpus = load_melody_corpus(cfg, tc.seed)
    vocab = Vocabulary.from_songs(corpus.train + corpus.val)
    train_data = windows(to_stream(corpus.train, vocab), tc.sequence_length, tc.stride)
    val_data = windows(to_stream(corpus.val, vocab), tc.sequence_length, tc.sequence_length)
    log.info("%d training songs (%d windows), %d validation songs, vocabulary %d",
             len(corpus.train), len(train_data), len(corpus.val), len(vocab))

    model_cfg = MelodyLSTMConfig(vocab_size=len(vocab), **recipe.model)
    model = MelodyLSTM(model_cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.learning_rate)
    history: list[dict[str, float]] = []
    best_loss, start_epoch, lr = math.inf, 0, tc.learning_rate

    last_path, best_path = out / "last.safetensors", out / "best.safetensors"
    if resume and last_path.exists():
        tensors, meta = load_checkpoint(last_path)
        if meta["representation"]["vocabulary"] != vocab.tokens:
            raise ValueError(f"{last_path} was trained on another vocabulary; "
                             "resume with the same corpus or train afresh")
        model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(OPTIM_PREFIX)})
        summary = meta["training"]
        history, start_epoch = summary["history"], summary["epochs_done"]
        best_loss, lr = summary["best_val_loss_bits"], summary["learning_rate"]
        _restore_optimizer(optimizer, tensors, lr)
        log.info("resuming %s after epoch %d", last_path, start_epoch)

    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=tc.lr_factor, patience=tc.lr_patience)
    generator = torch.Generator().manual_seed(tc.seed)
    epochs_without_gain = 0
    if history:
        best_epoch = min(range(len(history)), key=lambda i: history[i]["val_loss_bits"])
        epochs_without_gain = len(history) - 1 - best_epoch

    for epoch in range(start_epoch, tc.epochs):
        model.train()
        started = time.monotonic()
        order = torch.randperm(len(train_data), generator=generator)
        n_batches = math.ceil(len(order) / tc.batch_size)
        if tc.max_batches_per_epoch:
            n_batches = min(n_batches, tc.max_batches_per_epoch)
        running, bar = 0.0, tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{tc.epochs}",
                                 unit="batch", leave=False)
        for b in bar:
            batch = train_data[order[b * tc.batch_size:(b + 1) * tc.batch_size]].to(device)
            logits = model(batch[:, :-1])                             # (B, T, V)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            running += float(loss.detach())
            bar.set_postfix(loss_bits=f"{float(loss.detach()) / math.log(2):.3f}")
        metrics = evaluate(model, val_data, tc.batch_size, device)
        scheduler.step(metrics["loss_bits"])
        lr = optimizer.param_groups[0]["lr"]
        history.append({"epoch": epoch + 1,
                        "train_loss_bits": running / n_batches / math.log(2),
                        "val_loss_bits": metrics["loss_bits"],
                        "val_accuracy": metrics["accuracy"], "lr": lr,
                        "seconds": time.monotonic() - started})
        improved = metrics["loss_bits"] < best_loss
        log.info("epoch %d: train %.3f bits/token, val %.3f bits/token, val accuracy %.1f%%%s",
                 epoch + 1, history[-1]["train_loss_bits"], metrics["loss_bits"],
                 100 * metrics["accuracy"], " (best)" if improved else "")
        best_loss = min(best_loss, metrics["loss_bits"])
        epochs_without_gain = 0 if improved else epochs_without_gain + 1

        best = min(history, key=lambda h: h["val_loss_bits"])
        metadata = {
            "family": FAMILY, "name": recipe.name, "config": asdict(model_cfg),
            "representation": {"name": "melody_16th", "vocabulary": vocab.tokens,
                               "step_beats": STEP_BEATS,
                               "key_normalisation": "C major / A minor" if cfg.transpose else "none"},
            "recipe": recipe.to_dict(),
            "training": {"epochs_done": epoch + 1, "history": history,
                         "best_epoch": best["epoch"], "best_val_loss_bits": best_loss,
                         "learning_rate": lr, "train_songs": len(corpus.train),
                         "val_songs": len(corpus.val), "dropped_songs": corpus.dropped,
                         "device": str(device)},
            "metrics": {"val_loss_bits": best["val_loss_bits"], "val_accuracy": best["val_accuracy"]},
        }
        weights = model.state_dict()
        last_metrics = {"val_loss_bits": metrics["loss_bits"], "val_accuracy": metrics["accuracy"]}
        save_checkpoint(last_path, {**weights, **_optimizer_tensors(optimizer)},
                        {**metadata, "metrics": last_metrics})
        if improved:
            save_checkpoint(best_path, weights, metadata)
        plot_history(history, out / "loss.png", title=recipe.name)
        if epochs_without_gain >= tc.early_stop_patience:
            log.info("stopping early: no gain for %d epochs", epochs_without_gain)
            break
    return best_path
