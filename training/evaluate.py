"""``riffd eval CHECKPOINT``: generated pieces against held-out real data, side by side.

For every symbolic family: generate pieces with the family's generator (the same one the
daemon serves) and compute EB, UPC, QN, pitch entropy and the pitch-class histogram
distance (``riffd.training.metrics``) for them and for the held-out pieces of the checkpoint's
own recipe (same corpus, same seeded split). Per family, the model's own held-out score:
  melody_lstm     next-token accuracy and bits per token on the held-out songs
  gan_cnn/bilstm  (no likelihood) the metrics on 2000 independent bars, as the GAN
                  document's Table 1 does, and on pieces played through the latent walk
Writes ``<checkpoint stem>.eval.json`` and ``<checkpoint stem>.eval.png`` (piano rolls of
samples, pitch-class and note-length histograms) beside the checkpoint or in ``--out`` (the
current folder for a model inside the riffd package, whose files are never written).
The checkpoint is only read; ``--store`` also stores the report in its metadata under
``metrics.evaluation`` (rewriting the file atomically with its tensors unchanged), and is
refused for a model inside the riffd package.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from riffd.engine.checkpoint import load_checkpoint, save_checkpoint
from riffd.engine.generator import Step
from riffd.engine.loading import load_generator, load_model
from riffd.engine.melody_representation import STEP_BEATS, Note, decode_tokens
from riffd.engine.pianoroll import PitchRange, notes_to_roll
from riffd.training.metrics import compare, note_lengths, roll_metrics

log = logging.getLogger(__name__)
MIDI_RANGE = PitchRange(0, 127, fold=False)    # columns of a roll for unfolded families
GAN_BARS = 2000                                # the GAN document generates 2000 bars
PIECES = 8                                     # generated pieces per evaluation
PIECE_STEPS = 256                              # 16ths per generated piece (16 bars of 4/4)


def steps_to_notes(steps: Sequence[Step], step_beats: float = STEP_BEATS) -> list[Note]:
    """Generator ``Step``s → notes in beats (a start ends a sounding note of that pitch)."""
    sounding: dict[int, int] = {}                 # pitch → step where it began
    notes: list[Note] = []

    def close(pitch: int, end: int) -> None:
        begin = sounding.pop(pitch)
        notes.append(Note(pitch, begin * step_beats, (end - begin) * step_beats))

    for t, step in enumerate(steps):
        for pitch in [p for p in sounding if p not in step.holds or p in step.starts]:
            close(pitch, t)
        for pitch in step.starts:
            sounding[pitch] = t
    for pitch in list(sounding):
        close(pitch, len(steps))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes


def generate_pieces(generator, n_pieces: int = PIECES,
                    n_steps: int = PIECE_STEPS) -> list[list[Note]]:
    """``n_pieces`` pieces of ``n_steps`` steps each from a fresh ``reset()``."""
    pieces = []
    for _ in range(n_pieces):
        generator.reset()
        pieces.append(steps_to_notes([generator.next_step() for _ in range(n_steps)],
                                     generator.step_beats))
    return pieces


def package_folders() -> list[Path]:
    """The folders of the installed riffd package (engine/, training/, daemon/), found
    without importing them."""
    from importlib.util import find_spec
    folders = []
    for name in ("riffd.engine", "riffd.training", "riffd.daemon"):
        spec = find_spec(name)
        folders += [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return folders


def inside_package(path: str | Path) -> bool:
    """Whether ``path`` (links resolved) lies inside the installed riffd package."""
    from riffd.engine.safe_files import is_within
    return is_within(path, package_folders())


def report_folder(checkpoint: str | Path, out: str | None) -> Path:
    """Where the report files go: ``out``, else beside the checkpoint, else (a checkpoint
    inside the riffd package) the current folder. Never a folder inside the package."""
    checkpoint = Path(checkpoint)
    if out:
        folder = Path(out)
        if inside_package(folder):
            raise ValueError(f"--out {out} lies inside the riffd package; give a folder of "
                             "your own, e.g. --out reports/")
    elif not inside_package(checkpoint.parent):
        folder = checkpoint.parent
    else:
        folder = Path.cwd()
        if inside_package(folder):
            raise ValueError(f"{checkpoint} is inside the riffd package and so is the current "
                             "folder; give a folder for the report, e.g. --out reports/")
    return folder


def _out_dir(checkpoint: Path, args) -> Path:
    folder = report_folder(checkpoint, getattr(args, "out", None))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def store_report(checkpoint: str | Path, report: dict) -> Path:
    """Store ``report`` in the checkpoint's metadata under ``metrics.evaluation`` (atomic
    rewrite, tensors unchanged). Refused for a model inside the riffd package."""
    checkpoint = Path(checkpoint)
    if inside_package(checkpoint):
        raise ValueError(f"{checkpoint} is a model inside the riffd package, which riffd "
                         f"never rewrites; copy it first (cp {checkpoint} my_model.safetensors) "
                         "and evaluate the copy with --store")
    tensors, metadata = load_checkpoint(checkpoint)
    metadata.setdefault("metrics", {})["evaluation"] = report
    return save_checkpoint(checkpoint, tensors, metadata)


def eval_command(args) -> str:
    """``riffd eval``: the family's evaluation of ``args.checkpoint``, reports written to
    :func:`report_folder`; with ``args.store`` the report also goes into the checkpoint.
    Returns the report as JSON text."""
    from riffd.engine.checkpoint import read_metadata
    from riffd.training.families import resolve, training_family
    checkpoint = Path(args.checkpoint)
    family = read_metadata(checkpoint).get("family")
    target = training_family(family).evaluator
    if target is None:
        raise ValueError(f"the {family} family has no `riffd eval`")
    store = bool(getattr(args, "store", False))
    if store and inside_package(checkpoint):
        store_report(checkpoint, {})            # raises, naming the fix, before any work
    args.out = str(report_folder(checkpoint, getattr(args, "out", None)))
    report = resolve(target)(checkpoint, args)
    if isinstance(report, str):                 # the spectral evaluation returns JSON text
        report = json.loads(report)
    if store:
        store_report(checkpoint, report)
        log.info("stored the report in %s (metrics.evaluation)", checkpoint)
    return json.dumps(report, indent=2)


def write_report(checkpoint: str | Path, args, report: dict,
                 generated: Sequence[np.ndarray], real: Sequence[np.ndarray],
                 pitch_range: PitchRange) -> dict:
    """Write the JSON and PNG (the checkpoint is not touched: see :func:`store_report`).

    Returns the report with ``checkpoint`` and ``files`` (the JSON and PNG paths) added."""
    checkpoint = Path(checkpoint)
    folder = _out_dir(checkpoint, args)
    json_path = folder / f"{checkpoint.stem}.eval.json"
    png_path = folder / f"{checkpoint.stem}.eval.png"
    report = {**report, "checkpoint": str(checkpoint),
              "files": {"json": str(json_path), "png": str(png_path)}}
    json_path.write_text(json.dumps(report, indent=2))
    plot_report(generated, real, pitch_range, png_path, report.get("family", ""))
    log.info("evaluation report: %s, %s", json_path, png_path)
    return report


def plot_report(generated: Sequence[np.ndarray], real: Sequence[np.ndarray],
                pitch_range: PitchRange, path: Path, title: str) -> None:
    """Piano rolls of up to three generated samples and one real piece; pitch-class and
    note-length histograms of both."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from riffd.training.metrics import pitch_class_histogram
    samples = list(generated[:3]) + list(real[:1])
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    roll_axes = [axes[0, 0], axes[0, 1], axes[0, 2], axes[1, 0]]
    for i, (ax, roll) in enumerate(zip(roll_axes, samples)):
        roll = np.asarray(roll, dtype=bool)
        used = np.flatnonzero(roll.any(axis=0))
        lo, hi = (used.min(), used.max() + 1) if len(used) else (0, roll.shape[1])
        ax.imshow(roll[:, lo:hi].T, origin="lower", aspect="auto", interpolation="nearest",
                  cmap="Greys", vmin=0, vmax=1, extent=(0, roll.shape[0] * STEP_BEATS,
                                        pitch_range.pitch(lo) - 0.5, pitch_range.pitch(hi) - 0.5))
        is_real = i == len(samples) - 1 and len(real)
        ax.set(title="held-out piece" if is_real else f"generated {i + 1}",
               xlabel="beats", ylabel="MIDI pitch")
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    x = np.arange(12)
    ax = axes[1, 1]
    ax.bar(x - 0.2, pitch_class_histogram(generated, pitch_range), 0.4, label="generated")
    ax.bar(x + 0.2, pitch_class_histogram(real, pitch_range), 0.4, label="held-out")
    ax.set_xticks(x, names)
    ax.set(title="pitch classes (share of frames)")
    ax.legend()
    ax = axes[1, 2]
    bins = np.arange(1, 34)
    for label, rolls in (("generated", generated), ("held-out", real)):
        lengths = note_lengths(rolls, pitch_range)
        if len(lengths):
            ax.hist(np.minimum(lengths, 32), bins=bins, alpha=0.5, density=True, label=label)
    ax.axvline(3, color="k", lw=0.8, ls="--")
    ax.set(title="note lengths (16ths; ≥3 qualify)", xlabel="frames")
    ax.legend()
    fig.suptitle(f"riffd eval — {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- melody ---------------------------------------------------------------------------
def evaluate_melody(checkpoint: str | Path, args) -> dict:
    """Melody LSTM: held-out accuracy and bits per token; generated vs held-out songs."""
    from riffd.training.melody_config import MelodyDataConfig
    from riffd.training.melody_data import load_melody_corpus
    from riffd.training.train_melody import evaluate as token_metrics, to_stream, windows
    from riffd.engine.melody_representation import Vocabulary

    torch.manual_seed(0)
    model, metadata = load_model(checkpoint)
    recipe = metadata.get("recipe") or {}
    cfg = MelodyDataConfig(**recipe.get("data", {}))
    train_cfg = recipe.get("train", {})
    corpus = load_melody_corpus(cfg, int(train_cfg.get("seed", 0)))
    vocab = Vocabulary(metadata["representation"]["vocabulary"])
    known = [song for song in corpus.val if all(t in vocab for t in song)]
    length = int(train_cfg.get("sequence_length", 64))
    held_out = token_metrics(model, windows(to_stream(known, vocab), length, length), 64,
                             torch.device("cpu"))
    generator = load_generator(checkpoint, "cpu")
    generated = [notes_to_roll(p, MIDI_RANGE) for p in generate_pieces(generator)]
    real = [notes_to_roll(decode_tokens(song), MIDI_RANGE) for song in corpus.val]
    report = {"family": metadata["family"], "held_out_songs": len(corpus.val),
              "held_out": {"next_token_accuracy": held_out["accuracy"],
                           "bits_per_token": held_out["loss_bits"]},
              "generated_pieces": len(generated), "piece_steps": PIECE_STEPS,
              "side_by_side": compare(roll_metrics(generated, MIDI_RANGE),
                                      roll_metrics(real, MIDI_RANGE))}
    return write_report(checkpoint, args, report, generated, real, MIDI_RANGE)


# -- GANs -----------------------------------------------------------------------------
def evaluate_gan(checkpoint: str | Path, args) -> dict:
    """GANs: EB/UPC/QN/entropy/histogram on 2000 independent bars and on latent-walk
    pieces, beside the held-out bars of the chorales."""
    from riffd.training.gan_config import GANDataConfig
    from riffd.training.train_gan import generate_bars, load_bars

    torch.manual_seed(0)
    generator = load_generator(checkpoint, "cpu")
    metadata = generator.metadata
    recipe = metadata.get("recipe") or {}
    cfg = GANDataConfig(**recipe.get("data", {}))
    _, val_bars, _, n_val = load_bars(cfg, int(recipe.get("train", {}).get("seed", 0)))
    pr = generator.pitch_range
    bar_steps = int(metadata["representation"]["bar_steps"])
    bars = generate_bars(generator.model, GAN_BARS, generator.threshold, torch.device("cpu"), 0)
    walk = []
    for _ in range(PIECES):
        generator.reset()
        walk.append(np.concatenate([generator.next_bar_roll()
                                    for _ in range(PIECE_STEPS // bar_steps)]))
    real_metrics = roll_metrics(list(val_bars), pr, bar_steps)
    independent = compare(roll_metrics(list(bars), pr, bar_steps), real_metrics)
    report = {"family": metadata["family"], "held_out_pieces": n_val,
              "held_out_bars": int(len(val_bars)),
              "independent_bars": {"count": GAN_BARS, **independent},
              "latent_walk": {"pieces": len(walk), "bars_per_piece": PIECE_STEPS // bar_steps,
                              "walk_angle": generator.walk_angle,
                              **compare(roll_metrics(walk, pr, bar_steps), real_metrics)}}
    real_pieces = [np.concatenate(list(val_bars[i:i + 16])) for i in range(0, len(val_bars), 16)]
    return write_report(checkpoint, args, report, walk, real_pieces, pr)


# -- notewise and multilabel ----------------------------------------------------------
def _generated_rolls(checkpoint, pitch_range: PitchRange) -> list[np.ndarray]:
    generator = load_generator(checkpoint, "cpu")
    return [notes_to_roll(p, pitch_range) for p in generate_pieces(generator)]


def evaluate_notewise(checkpoint: str | Path, args) -> dict:
    """Notewise LSTM: held-out pitch and duration accuracy and bits per event; generated
    vs held-out songs."""
    from riffd.engine.notewise_representation import NotewiseVocabulary, decode_events
    from riffd.training.notewise_config import NotewiseDataConfig
    from riffd.training.notewise_data import load_notewise_corpus
    from riffd.training.train_notewise import (evaluate as event_metrics, last_event_metrics,
                                               to_stream)
    from riffd.training.loop import windows

    torch.manual_seed(0)
    model, metadata = load_model(checkpoint)
    recipe = metadata.get("recipe") or {}
    train_cfg = recipe.get("train", {})
    corpus = load_notewise_corpus(NotewiseDataConfig(**recipe.get("data", {})),
                                  int(train_cfg.get("seed", 0)))
    vocab = NotewiseVocabulary.from_metadata(metadata["representation"]["vocabulary"])
    known = [song for song in corpus.val if all(vocab.has(e) for e in song)]
    length = int(train_cfg.get("sequence_length", 64))
    stream = to_stream(known, vocab)
    held_out = event_metrics(model, windows(stream, length, length), 64, torch.device("cpu"))
    many_to_one = last_event_metrics(model, stream, length, 256, torch.device("cpu"))
    generated = _generated_rolls(checkpoint, MIDI_RANGE)
    real = [notes_to_roll(decode_events(song), MIDI_RANGE) for song in corpus.val]
    report = {"family": metadata["family"], "held_out_songs": len(corpus.val),
              "held_out": {"pitch_accuracy": held_out["pitch_accuracy"],
                           "duration_accuracy": held_out["duration_accuracy"],
                           "bits_per_event": held_out["loss_bits"]},
              # the document's measure: each event from the whole window before it
              "held_out_last_event": many_to_one,
              "generated_pieces": len(generated), "piece_steps": PIECE_STEPS,
              "side_by_side": compare(roll_metrics(generated, MIDI_RANGE),
                                      roll_metrics(real, MIDI_RANGE))}
    return write_report(checkpoint, args, report, generated, real, MIDI_RANGE)


def evaluate_multilabel(checkpoint: str | Path, args) -> dict:
    """Multilabel LSTM: held-out top-3 accuracy and bits per frame; generated vs held-out
    pieces (both as rolls in the model's pitch range)."""
    from riffd.training.loop import windows
    from riffd.training.multilabel_config import MultilabelDataConfig
    from riffd.training.multilabel_data import load_roll_corpus
    from riffd.training.train_multilabel import evaluate as frame_metrics, to_stream

    torch.manual_seed(0)
    model, metadata = load_model(checkpoint)
    recipe = metadata.get("recipe") or {}
    train_cfg = recipe.get("train", {})
    corpus = load_roll_corpus(MultilabelDataConfig(**recipe.get("data", {})),
                              int(train_cfg.get("seed", 0)))
    length = int(train_cfg.get("sequence_length", 64))
    threshold = float(metadata.get("inference", {}).get("threshold", 0.3))
    held_out = frame_metrics(model, windows(to_stream(corpus.val), length, length), 64,
                             torch.device("cpu"), threshold)
    pr = corpus.pitch_range
    generated = _generated_rolls(checkpoint, pr)
    report = {"family": metadata["family"], "held_out_pieces": len(corpus.val),
              "held_out": {"top3_accuracy": held_out["top3_accuracy"],
                           "frame_accuracy": held_out["frame_accuracy"],
                           "bits_per_frame": held_out["loss_bits"]},
              "generated_pieces": len(generated), "piece_steps": PIECE_STEPS,
              "side_by_side": compare(roll_metrics(generated, pr),
                                      roll_metrics(corpus.val, pr))}
    return write_report(checkpoint, args, report, generated, corpus.val, pr)
