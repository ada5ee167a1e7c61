"""Per-step generation latency of the melody model: riffd's streaming step against the
documents' sliding-window generation (re-running the last T = 40 tokens for every new one).

A step is: model step + sampling + token lookup (what the voice thread does per 16th note).
Run:  .venv/bin/python benchmarks/step_latency.py [--model PATH] [--steps 3000] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from riffd.engine.loading import load_generator  # noqa: E402
from riffd.engine.melody_representation import Note  # noqa: E402
from riffd.engine.sampling import sample  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, seconds: list[float]) -> dict:
    ms = [1000 * s for s in seconds]
    row = {"name": name, "p50_ms": statistics.median(ms), "p99_ms": percentile(ms, 0.99),
           "max_ms": max(ms)}
    print(f"{name:48s} p50 {row['p50_ms']:7.3f} ms   p99 {row['p99_ms']:7.3f} ms   "
          f"max {row['max_ms']:7.3f} ms")
    return row


def streaming(generator, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        generator.next_token()
        if generator.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times


@torch.inference_mode()
def sliding_window(generator, steps: int, window: int = 40) -> list[float]:
    """The documents' loop: feed the last ``window`` tokens through the whole model each step."""
    model, device = generator.model, generator.device
    history = generator.vocab.encode(["/"] * window)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        ids = torch.tensor([history[-window:]], device=device)
        logits = model(ids)[:, -1]
        token = int(sample(logits, generator.settings)[0])
        history.append(token)
        times.append(time.perf_counter() - t)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint (default: the bundled melody model)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = load_generator(args.model, args.device)
    seed = [Note(p, i * 0.5, 0.5) for i, p in enumerate([60, 62, 64, 65, 67, 65, 64, 62])]
    print(f"model {generator.metadata.get('name')} ({sum(p.numel() for p in generator.model.parameters())} "
          f"parameters) on {generator.device}, {args.threads} thread(s), {args.steps} steps\n")
    rows = []
    runs = [("streaming step (riffd)", streaming), ("sliding window T=40 (documents)", sliding_window)]
    onednn_modes = [False, True] if generator.device.type == "cpu" else [None]
    for onednn in onednn_modes:
        for name, fn in runs:
            if onednn is not None:
                torch.backends.mkldnn.enabled = onednn
                generator.use_onednn = onednn
                name = f"{name}, oneDNN {'on' if onednn else 'off'}"
            generator.prime(seed)
            fn(generator, 200)                                 # warm-up
            generator.prime(seed)
            rows.append(report(name, fn(generator, args.steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
