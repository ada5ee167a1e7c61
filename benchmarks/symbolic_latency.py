"""Per-step latency and training throughput of every registered symbolic model family, on CPU.

For each recipe in configs/ whose family is symbolic (and each family's dataclass default),
a model with untrained weights is built with the recipe's [model] section and wrapped in
its family's generator (the daemon's interface). Measured:
  * per-step latency of ``generator.next_step()`` (one 16th note), p50 / p99 / max;
  * for the GANs also per bar (``next_bar()``: decoding, and every ``lookahead`` bars one
    batched generator pass), mean / p50 / p99, target ≤ 10 ms; the per-step figures of a
    GAN are mostly zero, one step in 16 pays the bar;
  * baseline in the same run: the melody model's sliding-window generation (the documents'
    loop: the last 40 tokens re-run through the model for every new token);
  * training throughput: forward + backward + Adam step on a batch of 64 windows of 64
    steps (GANs: 64 bars, one discriminator and one generator update), in frames (or
    tokens / events) per second.
Untrained weights cost the same time as trained ones. The daemon's CPU set-up is used:
oneDNN off, ``--threads`` torch threads (1 by default, as ``riffd serve``).

Run:  .venv/bin/python benchmarks/symbolic_latency.py [--steps 2000] [--threads 1] [--json OUT]
      [--only gan]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from riffd.engine.checkpoint import read_metadata  # noqa: E402
from riffd.engine.loading import BUNDLED_MODEL, MODEL_FAMILIES  # noqa: E402
from riffd.engine.melody_representation import Note  # noqa: E402
from riffd.engine.pianoroll import OCTAVE_CUT  # noqa: E402
from riffd.engine.sampling import sample  # noqa: E402

SEED = [Note(p, i * 0.5, 0.5) for i, p in enumerate([60, 62, 64, 65, 67, 65, 64, 62])]
SYMBOLIC_PREFIXES = ("melody", "notewise", "multilabel", "gan")
BATCH, LENGTH = 64, 64


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(seconds: list[float]) -> dict:
    ms = [1000 * s for s in seconds]
    return {"mean_ms": statistics.fmean(ms), "p50_ms": statistics.median(ms),
            "p99_ms": percentile(ms, 0.99), "max_ms": max(ms)}


# -- what each family needs from the data ---------------------------------------------
def _melody_setup():
    vocab = read_metadata(BUNDLED_MODEL)["representation"]["vocabulary"]
    return {"vocab_size": len(vocab)}, {"representation": {"vocabulary": vocab}}


def _notewise_setup(variant: str):
    from riffd.engine.notewise_representation import NotewiseVocabulary, encode_events
    song = [Note(60 + (i * 7) % 24, i * 0.5, 0.5) for i in range(48)]
    song += [Note(p, 30.0 + i, 1.0) for i in range(8) for p in (60 + i, 64 + i, 67 + i)]
    vocab = NotewiseVocabulary.from_songs([encode_events(song, variant)], variant)
    return ({"vocab_size": len(vocab.pitch_tokens), "num_durations": len(vocab.duration_tokens)},
            {"representation": {"vocabulary": vocab.to_metadata(), "transpose": True}})


def _roll_setup():
    return ({"num_pitches": OCTAVE_CUT.size},
            {"representation": {"pitch_range": OCTAVE_CUT.to_dict(), "transpose": False,
                                "threshold": 0.5, "key_normalisation": "none"},
             "inference": {"mode": "threshold", "threshold": 0.3}})


def setup(family: str, data: dict):
    if family.startswith("melody"):
        return _melody_setup()
    if family.startswith("notewise"):
        return _notewise_setup(data.get("variant", "chords"))
    return _roll_setup()


# -- one training step per family -----------------------------------------------------
def train_step_fn(family: str, model, data_fields: dict):
    """A closure doing one optimiser step on a random batch; returns frames it covered."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    if family.startswith("gan"):
        opt_g = torch.optim.Adam(model.generator.parameters(), lr=1e-4)
        opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=1e-4)
        real = (torch.rand(BATCH, model.cfg.bar_steps, model.cfg.num_pitches) < 0.1).float()

        def gan_step():
            fake = model(model.sample_latent(BATCH)).detach()
            r, f = model.discriminate(real), model.discriminate(fake)
            loss = (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
                    + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            g = model.discriminate(model(model.sample_latent(BATCH)))
            loss = F.binary_cross_entropy_with_logits(g, torch.ones_like(g))
            opt_g.zero_grad()
            loss.backward()
            opt_g.step()
            return BATCH * model.cfg.bar_steps
        return gan_step
    if family.startswith("melody"):
        ids = torch.randint(0, data_fields["vocab_size"], (BATCH, LENGTH + 1))

        def loss_fn():
            logits = model(ids[:, :-1])
            return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
    elif family.startswith("notewise"):
        p = torch.randint(0, data_fields["vocab_size"], (BATCH, LENGTH + 1))
        d = torch.randint(0, data_fields["num_durations"], (BATCH, LENGTH + 1))

        def loss_fn():
            pl, dl = model(p[:, :-1], d[:, :-1])
            return (F.cross_entropy(pl.flatten(0, 1), p[:, 1:].flatten())
                    + F.cross_entropy(dl.flatten(0, 1), d[:, 1:].flatten()))
    else:
        frames = (torch.rand(BATCH, LENGTH + 1, data_fields["num_pitches"]) < 0.1).float()

        def loss_fn():
            return F.binary_cross_entropy_with_logits(model(frames[:, :-1]), frames[:, 1:])

    def step():
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return BATCH * LENGTH
    return step


def throughput(step, seconds: float = 4.0) -> float:
    step()                                                          # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += step()
    return done / (time.perf_counter() - started)


# -- latency --------------------------------------------------------------------------
def step_latency(generator, steps: int) -> list[float]:
    generator.prime(SEED)
    for _ in range(100):
        generator.next_step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        generator.next_step()
        times.append(time.perf_counter() - t)
    return times


def bar_latency(generator, bars: int) -> list[float]:
    generator.prime(SEED)
    times = []
    for _ in range(bars):
        t = time.perf_counter()
        generator.next_bar()
        times.append(time.perf_counter() - t)
    return times


@torch.inference_mode()
def sliding_window(generator, steps: int, window: int = 40) -> list[float]:
    """The documents' loop: the last ``window`` tokens through the whole model every step."""
    model = generator.model
    history = generator.vocab.encode(["/"] * window)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        logits = model(torch.tensor([history[-window:]]))[:, -1]
        history.append(int(sample(logits, generator.settings)[0]))
        times.append(time.perf_counter() - t)
    return times


def recipes() -> list[tuple[str, str, dict, dict]]:
    """(name, family, [model] overrides, [data]) for each family default and symbolic recipe."""
    rows = [(f"{family} (dataclass defaults)", family, {}, {})
            for family in MODEL_FAMILIES if family.startswith(SYMBOLIC_PREFIXES)]
    for path in sorted((ROOT / "configs").glob("*.toml")):
        doc = tomllib.loads(path.read_text())
        family = doc.get("family")
        if family in MODEL_FAMILIES and family.startswith(SYMBOLIC_PREFIXES):
            rows.append((path.stem, family, doc.get("model", {}), doc.get("data", {})))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="16th steps timed per model")
    parser.add_argument("--bars", type=int, default=200, help="GAN bars timed per model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-seconds", type=float, default=4.0)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--only", help="time only models whose name contains this text")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = False                           # as riffd serve on CPU
    results = []
    print(f"{'model':44s} {'step p50':>9s} {'step p99':>9s} {'bar mean':>9s} {'bar p99':>9s} "
          f"{'train frames/s':>15s}  ({args.threads} thread(s), ms)")
    for name, family, model_fields, data in recipes():
        if args.only and args.only not in name:
            continue
        spec = MODEL_FAMILIES[family]
        data_fields, metadata = setup(family, data)
        torch.manual_seed(0)
        model = spec.model(spec.config(**data_fields, **model_fields))
        generator = spec.make_generator(model.eval(), metadata, torch.device("cpu"))
        row = {"name": name, "family": family,
               "parameters": sum(p.numel() for p in model.parameters()),
               "step": summary(step_latency(generator, args.steps))}
        if hasattr(generator, "next_bar"):
            row["bar"] = summary(bar_latency(generator, args.bars))
        if name.startswith("melody"):
            baseline = summary(sliding_window(generator, args.steps))
            results.append({"name": f"{name}: sliding window T=40 (baseline)", "family": family,
                            "step": baseline})
        model.train()
        row["train_frames_per_s"] = throughput(train_step_fn(family, model, data_fields),
                                               args.train_seconds)
        results.append(row)
        for r in results[-2:] if name.startswith("melody") else results[-1:]:
            bar = r.get("bar", {})
            train = r.get("train_frames_per_s")
            print(f"{r['name'][:44]:44s} {r['step']['p50_ms']:9.3f} {r['step']['p99_ms']:9.3f} "
                  f"{bar.get('mean_ms', float('nan')):9.3f} {bar.get('p99_ms', float('nan')):9.3f} "
                  f"{train if train else float('nan'):15.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
