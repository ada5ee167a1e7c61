"""Training loop for the spectral LSTM family (reads top to bottom).

Clips are split into training and held-out clips, encoded into normalised spectral vectors
(mean and std measured on the training clips), cut into windows of ``sequence_length`` + 1
frames; the model learns to predict frame t + 1 from frames ≤ t with the mean squared error
(``mse`` head) or the Laplace negative log-likelihood (``laplace`` head), plus the L2 penalty of
its FC / conv weights, optimised with RMSprop (1e-4, the document). The validation loss (the
same loss on held-out windows) picks the best epoch; ``val_mse`` (of the point prediction) is
kept beside it. Writes ``last.safetensors`` (with optimiser state, for ``--resume``),
``best.safetensors`` and ``loss.png`` to ``train.output_dir`` after every epoch. At the end
the best checkpoint gets its motion figures and sampling temperature
(``riffd.training.spectral_motion.calibrate``).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from riffd.engine.checkpoint import load_checkpoint, save_checkpoint
from riffd.engine.devices import resolve_device
from riffd.engine.spectral_lstm import FAMILY, SpectralLSTM, SpectralLSTMConfig
from riffd.engine.spectral_representation import SpectralCodec, SpectralSettings
from riffd.training.audio_corpus import AudioClip, load_audio_corpus
from riffd.training.recipe import Recipe
from riffd.training.loop import OPTIM_PREFIX, _optimizer_tensors, _restore_optimizer

log = logging.getLogger(__name__)


def settings_from(data) -> SpectralSettings:
    return SpectralSettings(sample_rate=data.sample_rate, frame_size=data.frame_size,
                            hop=data.hop, spectrum=data.spectrum, form=data.form)


def split_clips(clips: list[AudioClip], val_fraction: float, seed: int) -> tuple[list, list]:
    """Held-out clips chosen by a seeded shuffle (at least one each side)."""
    if len(clips) < 2:
        raise ValueError(f"the corpus has {len(clips)} clip(s); at least 2 are needed so that "
                         "one can be held out (add files or raise data.render_pieces)")
    order = np.random.default_rng(seed).permutation(len(clips))
    n_val = min(len(clips) - 1, max(1, round(val_fraction * len(clips))))
    return [clips[i] for i in order[n_val:]], [clips[i] for i in order[:n_val]]


def clip_windows(vectors: list[np.ndarray], length: int, stride: int) -> torch.Tensor:
    """Windows (W, length + 1, D) from per-clip vectors; inputs [:, :-1], targets [:, 1:]."""
    out = []
    for v in vectors:
        t = torch.from_numpy(v)
        if len(t) >= length + 1:
            out.append(t.unfold(0, length + 1, stride).permute(0, 2, 1))
    if not out:
        longest = max(len(v) for v in vectors)
        raise ValueError(f"no clip is longer than sequence_length + 1 = {length + 1} frames "
                         f"(the longest has {longest}); lower train.sequence_length or use "
                         "longer clips")
    return torch.cat(out)


def loss_terms(model: SpectralLSTM, batch: torch.Tensor) -> torch.Tensor:
    """The head's loss per value of next-frame predictions. batch: (B, T + 1, D)."""
    prediction = model(batch[:, :-1])                                 # (B, T, O)
    return model.prediction_loss(prediction, batch[:, 1:])


@torch.no_grad()
def evaluate_loss(model: SpectralLSTM, data: torch.Tensor, batch_size: int,
                  device: torch.device) -> tuple[float, float]:
    """(loss, mean squared error of the point prediction) per value over all windows."""
    model.eval()
    total, sq, count = 0.0, 0.0, 0
    for i in range(0, len(data), batch_size):
        batch = data[i:i + batch_size].to(device)
        prediction, target = model(batch[:, :-1]), batch[:, 1:]
        total += float(model.prediction_loss(prediction, target)) * target.numel()
        sq += float(nn.functional.mse_loss(model.point(prediction), target, reduction="sum"))
        count += target.numel()
    return total / count, sq / count


def plot_losses(history: list[dict], path: Path, title: str) -> None:
    """Training and validation MSE per epoch (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set(xlabel="epoch", ylabel="loss per value (normalised spectrum)", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def prepare(recipe: Recipe):
    """Corpus → (codec fitted on training clips, train clips, val clips, corpus)."""
    cfg, tc = recipe.data, recipe.train
    corpus = load_audio_corpus(cfg.corpus, cfg.sample_rate, render_pieces=cfg.render_pieces,
                               render_max_seconds=cfg.render_max_seconds,
                               render_tempo_bpm=cfg.render_tempo_bpm,
                               render_program=cfg.render_program, cache_dir=cfg.cache_dir)
    train_clips, val_clips = split_clips(corpus.clips, cfg.val_fraction, tc.seed)
    codec = SpectralCodec(settings_from(cfg))
    codec.fit(np.concatenate([codec.raw_vectors(c.samples) for c in train_clips]))
    return codec, train_clips, val_clips, corpus


def train(recipe: Recipe, resume: bool = False) -> Path:
    """Train a spectral model from a recipe; returns the path of the best checkpoint."""
    tc = recipe.train
    torch.manual_seed(tc.seed)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = resolve_device(tc.device)
    out = Path(tc.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    codec, train_clips, val_clips, corpus = prepare(recipe)
    train_data = clip_windows([codec.encode(c.samples) for c in train_clips],
                              tc.sequence_length, tc.stride)               # (W, T + 1, D)
    val_data = clip_windows([codec.encode(c.samples) for c in val_clips],
                            tc.sequence_length, tc.sequence_length)
    log.info("%d training clips (%d windows), %d held out (%d windows), %.0f s of audio, "
             "vector size %d; skipped %d unreadable, %d silent", len(train_clips),
             len(train_data), len(val_clips), len(val_data), corpus.seconds,
             codec.settings.dim, corpus.skipped_unreadable, corpus.skipped_silent)

    model_cfg = SpectralLSTMConfig(input_dim=codec.settings.dim, **recipe.model)
    model = SpectralLSTM(model_cfg).to(device)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=tc.learning_rate)
    history: list[dict] = []
    best_loss, start_epoch = math.inf, 0
    last_path, best_path = out / "last.safetensors", out / "best.safetensors"
    if resume and last_path.exists():
        tensors, meta = load_checkpoint(last_path)
        if meta["config"] != asdict(model_cfg):
            raise ValueError(f"{last_path} has another model config; resume with the same "
                             "recipe or train afresh")
        model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(OPTIM_PREFIX)})
        codec = SpectralCodec.from_metadata(meta["representation"])
        history, start_epoch = meta["training"]["history"], meta["training"]["epochs_done"]
        best_loss = meta["training"]["best_val_loss"]
        _restore_optimizer(optimizer, tensors, tc.learning_rate)
        log.info("resuming %s after epoch %d", last_path, start_epoch)

    generator = torch.Generator().manual_seed(tc.seed)
    for _ in range(start_epoch):                         # same shuffles as an unbroken run
        torch.randperm(len(train_data), generator=generator)
    epochs_without_gain = 0
    if history:
        best_epoch = min(range(len(history)), key=lambda i: history[i]["val_loss"])
        epochs_without_gain = len(history) - 1 - best_epoch
    for epoch in range(start_epoch, tc.epochs):
        model.train()
        started = time.monotonic()
        order = torch.randperm(len(train_data), generator=generator)
        n_batches = math.ceil(len(order) / tc.batch_size)
        if tc.max_batches_per_epoch:
            n_batches = min(n_batches, tc.max_batches_per_epoch)
        running = 0.0
        bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{tc.epochs}", unit="batch",
                   leave=False)
        for b in bar:
            batch = train_data[order[b * tc.batch_size:(b + 1) * tc.batch_size]].to(device)
            fit = loss_terms(model, batch)
            loss = fit + model.l2_penalty()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            running += float(fit.detach())
            bar.set_postfix(loss=f"{float(fit.detach()):.4f}")
        val_loss, val_mse = evaluate_loss(model, val_data, tc.batch_size, device)
        history.append({"epoch": epoch + 1, "train_loss": running / n_batches,
                        "val_loss": val_loss, "val_mse": val_mse,
                        "seconds": time.monotonic() - started})
        improved = val_loss < best_loss
        log.info("epoch %d: train loss %.4f, validation loss %.4f (point MSE %.4f)%s", epoch + 1,
                 history[-1]["train_loss"], val_loss, val_mse, " (best)" if improved else "")
        best_loss = min(best_loss, val_loss)
        epochs_without_gain = 0 if improved else epochs_without_gain + 1

        best = min(history, key=lambda h: h["val_loss"])
        metadata = {
            "family": FAMILY, "name": recipe.name, "config": asdict(model_cfg),
            "representation": codec.to_metadata(),
            "recipe": recipe.to_dict(),
            "training": {"epochs_done": epoch + 1, "history": history,
                         "best_epoch": best["epoch"], "best_val_loss": best_loss,
                         "train_clips": [c.name for c in train_clips],
                         "val_clips": [c.name for c in val_clips],
                         "audio_seconds": corpus.seconds,
                         "skipped_unreadable": corpus.skipped_unreadable,
                         "skipped_silent": corpus.skipped_silent, "device": str(device)},
            "metrics": {"val_loss": best["val_loss"], "val_mse": best["val_mse"]},
        }
        weights = model.state_dict()
        save_checkpoint(last_path, {**weights, **_optimizer_tensors(optimizer)},
                        {**metadata, "metrics": {"val_loss": val_loss, "val_mse": val_mse}})
        if improved:
            save_checkpoint(best_path, weights, metadata)
        plot_losses(history, out / "loss.png", recipe.name)
        if epochs_without_gain >= tc.early_stop_patience:
            log.info("stopping early: no gain for %d epochs", epochs_without_gain)
            break
    if recipe.data.calibrate and best_path.exists():
        from riffd.training.spectral_motion import calibrate
        calibrate(best_path, train_clips, run_seconds=recipe.data.calibrate_seconds)
    return best_path
