"""Training loop for the piano-roll GANs (``gan_cnn``, ``gan_bilstm``); reads top to bottom.

Data: 4/4 bars (16 frames × the pitch range) of the Bach chorales, split by piece.
Per batch: ``discriminator_updates`` discriminator steps (real bars → 1, generated → 0,
binary cross-entropy on logits), then ``generator_updates`` generator steps (generated
→ 1). Remedies for an imbalance between the two, as options: the update ratio, and
pre-training (discriminator-only epochs; generator epochs of feature matching, i.e.
matching the mean bar and the mean number of sounding pitches per frame of real data).

After every epoch ``eval_bars`` bars are generated and EB / UPC / QN / the pitch-class
histogram are compared with the held-out bars (``riffd.training.metrics``); the checkpoint with
the smallest gap (``metric_gap``) is ``best.safetensors``. ``last.safetensors`` is written
every epoch; ``loss.png`` shows the losses and the gap.
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

from riffd.engine.checkpoint import save_checkpoint
from riffd.engine.devices import resolve_device
from riffd.engine.gan_bilstm import GANBase
from riffd.engine.loading import MODEL_FAMILIES
from riffd.engine.melody_representation import STEP_BEATS
from riffd.engine.pianoroll import PitchRange
from riffd.training.chorales import ChoraleSettings, load_chorale_corpus, piece_bars, split_pieces
from riffd.training.corpora import canonical_corpus
from riffd.training.corpus import CorpusReport, publish_report
from riffd.training.gan_config import CORPORA, GANDataConfig
from riffd.training.metrics import compare, roll_metrics
from riffd.training.recipe import Recipe

log = logging.getLogger(__name__)


def pitch_range_of(cfg: GANDataConfig) -> PitchRange:
    return PitchRange(cfg.pitch_low, cfg.pitch_high, cfg.fold)


def load_bars(cfg: GANDataConfig, seed: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(train bars, held-out bars, train pieces, held-out pieces); bars are (N, T, P) bool."""
    return load_bars_report(cfg, seed)[:4]


def load_bars_report(cfg: GANDataConfig, seed: int
                     ) -> tuple[np.ndarray, np.ndarray, int, int, CorpusReport]:
    """``load_bars`` and the corpus report: it names every chorale left out, including
    those in another metre (no ``bar_steps``-frame bars)."""
    if canonical_corpus(cfg.corpus) != list(CORPORA):
        raise ValueError(f"data.corpus = {cfg.corpus!r}: the GANs train on "
                         f"{', '.join(CORPORA)} (the old name bach_chorales works too); "
                         "set data.corpus to it")
    pieces, report = load_chorale_corpus(
        ChoraleSettings(cfg.max_pieces, cfg.transpose, cfg.cache_dir))
    report = CorpusReport.from_dict(report.to_dict())            # a copy: the cache's stays
    train, val = split_pieces(pieces, cfg.val_fraction, seed)
    pr = pitch_range_of(cfg)

    no_bars = []

    def bars(ps):
        found = []
        for p in ps:
            piece = piece_bars(p, pr, cfg.bar_steps, cfg.restrike_gap)
            if len(piece):
                found.append(piece)
            else:
                no_bars.append(p)
                report.drop(p.file or "chorales", p.name, f"no {cfg.bar_steps}-frame bars "
                            f"(its bar is {p.bar_beats:g} beats)")
        return np.concatenate(found) if found else np.zeros((0, cfg.bar_steps, pr.size), bool)

    train_bars, val_bars = bars(train), bars(val)
    if len(train_bars) == 0 or len(val_bars) == 0:
        raise ValueError(f"no {cfg.bar_steps}-frame bars in the training or held-out pieces "
                         f"({len(train)}/{len(val)} pieces); use more pieces (data.max_pieces)")
    report.songs = len(pieces) - len(no_bars)
    return train_bars, val_bars, len(train), len(val), report


def metric_gap(comparison: dict) -> float:
    """One number for how far generated bars are from real ones (0 = same statistics)."""
    c = comparison
    return (abs(c["empty_bars_pct"]["generated"] - c["empty_bars_pct"]["real"]) / 100
            + abs(c["used_pitch_classes"]["generated"] - c["used_pitch_classes"]["real"]) / 12
            + abs(c["qualified_notes_pct"]["generated"] - c["qualified_notes_pct"]["real"]) / 100
            + c["pitch_class_histogram_distance"])


@torch.no_grad()
def generate_bars(model: GANBase, n: int, threshold: float, device: torch.device,
                  seed: int) -> np.ndarray:
    """n independent bars, thresholded: (n, T, P) bool."""
    model.eval()
    z = model.sample_latent(n, torch.Generator().manual_seed(seed)).to(device)
    return (model(z) >= threshold).cpu().numpy()


def _optimizer(params, tc) -> torch.optim.Optimizer:
    if tc.optimizer == "adam":
        return torch.optim.Adam(params, lr=tc.learning_rate, betas=(tc.beta1, 0.999))
    if tc.optimizer == "sgd":
        return torch.optim.SGD(params, lr=tc.learning_rate)
    raise ValueError(f"train.optimizer = {tc.optimizer!r}: use \"adam\" or \"sgd\"")


def plot_gan_history(history: list[dict], path: Path, title: str) -> None:
    """Discriminator and generator losses and the metric gap per epoch, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_gap) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot(epochs, [h["d_loss"] for h in history], label="discriminator")
    ax_loss.plot(epochs, [h["g_loss"] for h in history], label="generator")
    ax_loss.set(xlabel="epoch", ylabel="binary cross-entropy", title=title or "losses")
    ax_loss.legend()
    ax_gap.plot(epochs, [h["metric_gap"] for h in history], color="tab:green")
    ax_gap.set(xlabel="epoch", ylabel="gap to held-out bars", title="EB/UPC/QN/histogram gap")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(recipe: Recipe, resume: bool = False) -> Path:
    """Train a GAN from a recipe; returns the path of the best checkpoint."""
    cfg, tc = recipe.data, recipe.train
    if resume:
        raise ValueError("the GAN families cannot resume yet; train afresh (drop --resume)")
    if tc.generator_updates < 1 or tc.discriminator_updates < 1:
        raise ValueError("train.generator_updates and train.discriminator_updates must be >= 1")
    torch.manual_seed(tc.seed)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = resolve_device(tc.device)
    out = Path(tc.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    train_bars, val_bars, n_train, n_val, report = load_bars_report(cfg, tc.seed)
    reported = publish_report(report, out, True, log)
    pr = pitch_range_of(cfg)
    real_val = roll_metrics(list(val_bars), pr, cfg.bar_steps)
    data = torch.from_numpy(train_bars).float()                     # (N, T, P)
    log.info("%d training bars from %d chorales, %d held-out bars from %d",
             len(train_bars), n_train, len(val_bars), n_val)

    if "bar_steps" in recipe.model:
        raise ValueError("the bar length is a data setting: set data.bar_steps, "
                         "not model.bar_steps")
    spec = MODEL_FAMILIES[recipe.family]
    model_cfg = spec.config(num_pitches=pr.size, bar_steps=cfg.bar_steps, **recipe.model)
    model: GANBase = spec.model(model_cfg).to(device)
    opt_g = _optimizer(model.generator.parameters(), tc)
    opt_d = _optimizer(model.discriminator.parameters(), tc)
    bce = nn.BCEWithLogitsLoss()
    rng = torch.Generator().manual_seed(tc.seed)

    def latents(n: int) -> torch.Tensor:
        return model.sample_latent(n, rng).to(device)

    def d_step(real: torch.Tensor) -> tuple[float, float, float]:
        fake = model(latents(len(real))).detach()                   # (B, T, P)
        real_logits, fake_logits = model.discriminate(real), model.discriminate(fake)
        loss = (bce(real_logits, torch.ones_like(real_logits))
                + bce(fake_logits, torch.zeros_like(fake_logits)))
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        return (float(loss.detach()), float((real_logits > 0).float().mean()),
                float((fake_logits < 0).float().mean()))

    def g_step(n: int) -> float:
        logits = model.discriminate(model(latents(n)))
        loss = bce(logits, torch.ones_like(logits))
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        return float(loss.detach())

    def g_pretrain_step(real: torch.Tensor) -> float:
        fake = model(latents(len(real)))
        loss = (nn.functional.mse_loss(fake.mean(0), real.mean(0))
                + nn.functional.mse_loss(fake.sum(-1).mean(), real.sum(-1).mean()) / pr.size)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        return float(loss.detach())

    def batches(desc: str):
        order = torch.randperm(len(data), generator=rng)
        n_batches = math.ceil(len(order) / tc.batch_size)
        if tc.max_batches_per_epoch:
            n_batches = min(n_batches, tc.max_batches_per_epoch)
        for b in tqdm(range(n_batches), desc=desc, unit="batch", leave=False):
            yield data[order[b * tc.batch_size:(b + 1) * tc.batch_size]].to(device)

    started = time.monotonic()
    for epoch in range(tc.pretrain_discriminator_epochs):
        model.train()
        losses = [d_step(real)[0] for real in batches(f"pre-train D {epoch + 1}")]
        log.info("discriminator pre-training epoch %d: loss %.3f", epoch + 1, np.mean(losses))
    for epoch in range(tc.pretrain_generator_epochs):
        model.train()
        losses = [g_pretrain_step(real) for real in batches(f"pre-train G {epoch + 1}")]
        log.info("generator pre-training epoch %d: feature loss %.4f", epoch + 1, np.mean(losses))

    history: list[dict] = []
    best_gap = math.inf
    last_path, best_path = out / "last.safetensors", out / "best.safetensors"
    frames_seen = 0
    for epoch in range(tc.epochs):
        model.train()
        epoch_start = time.monotonic()
        d_losses, g_losses, real_acc, fake_acc = [], [], [], []
        for real in batches(f"epoch {epoch + 1}/{tc.epochs}"):
            for _ in range(tc.discriminator_updates):
                loss, ra, fa = d_step(real)
                d_losses.append(loss)
                real_acc.append(ra)
                fake_acc.append(fa)
            for _ in range(tc.generator_updates):
                g_losses.append(g_step(len(real)))
            frames_seen += len(real) * cfg.bar_steps
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] *= tc.lr_decay

        generated = generate_bars(model, tc.eval_bars, tc.threshold, device, tc.seed + epoch)
        comparison = compare(roll_metrics(list(generated), pr, cfg.bar_steps), real_val)
        gap = metric_gap(comparison)
        seconds = time.monotonic() - epoch_start
        history.append({"epoch": epoch + 1, "d_loss": float(np.mean(d_losses)),
                        "g_loss": float(np.mean(g_losses)),
                        "d_real_accuracy": float(np.mean(real_acc)),
                        "d_fake_accuracy": float(np.mean(fake_acc)), "metric_gap": gap,
                        "empty_bars_pct": comparison["empty_bars_pct"]["generated"],
                        "used_pitch_classes": comparison["used_pitch_classes"]["generated"],
                        "qualified_notes_pct": comparison["qualified_notes_pct"]["generated"],
                        "lr": opt_g.param_groups[0]["lr"], "seconds": seconds})
        improved = gap < best_gap
        best_gap = min(best_gap, gap)
        h = history[-1]
        log.info("epoch %d: D %.3f, G %.3f, EB %.1f%% UPC %.2f QN %.1f%%, gap %.3f%s",
                 epoch + 1, h["d_loss"], h["g_loss"], h["empty_bars_pct"],
                 h["used_pitch_classes"], h["qualified_notes_pct"], gap,
                 " (best)" if improved else "")
        best = min(history, key=lambda x: x["metric_gap"])
        metadata = {
            "family": recipe.family, "name": recipe.name, "config": asdict(model_cfg),
            "representation": {"name": "pianoroll_bar", "pitch_range": pr.to_dict(),
                               "bar_steps": cfg.bar_steps, "step_beats": STEP_BEATS,
                               "threshold": tc.threshold, "restrike_gap": cfg.restrike_gap,
                               "key_normalisation": "C major / A minor" if cfg.transpose
                               else "none"},
            "recipe": recipe.to_dict(),
            "training": {"epochs_done": epoch + 1, "history": history,
                         "best_epoch": best["epoch"], "best_metric_gap": best_gap,
                         "train_pieces": n_train, "val_pieces": n_val,
                         "train_bars": len(train_bars), "val_bars": len(val_bars),
                         **reported,
                         "frames_per_second": frames_seen / max(time.monotonic() - started, 1e-9),
                         "device": str(device)},
            "metrics": {"training_comparison": comparison, "metric_gap": gap},
        }
        save_checkpoint(last_path, model.state_dict(), metadata)
        if improved:
            save_checkpoint(best_path, model.state_dict(), metadata)
        plot_gan_history(history, out / "loss.png", recipe.name)
        if tc.max_minutes and time.monotonic() - started > tc.max_minutes * 60:
            log.info("stopping: the time budget of %.1f minutes is spent", tc.max_minutes)
            break
    return best_path
