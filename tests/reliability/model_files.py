"""Checkpoint files for the reliability tests: real riffd checkpoints built from the bundled melody
model, with a config, a size or weights changed; and a thread that pings a daemon and records
how long each answer took."""
from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import torch

from riffd.daemon.client import RiffdClient, RiffdUnavailable
from riffd.engine.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from riffd.engine.loading import BUNDLED_MODEL, MODEL_FAMILIES


def bundled_parts() -> tuple[dict[str, torch.Tensor], dict]:
    """The bundled melody model's tensors and metadata (a copy to change)."""
    tensors, metadata = load_checkpoint(BUNDLED_MODEL)
    return dict(tensors), dict(metadata)


def with_config(path: Path, **config) -> Path:
    """A checkpoint whose stored config has ``config`` changed but whose tensors are the bundled
    model's (small): only the config claims a large model."""
    tensors, metadata = bundled_parts()
    metadata["config"] = {**metadata["config"], **config}
    return save_checkpoint(path, tensors, metadata)


def with_nan(path: Path) -> Path:
    """The bundled model with one NaN in its first weight (the right shapes: a diverged run)."""
    tensors, metadata = bundled_parts()
    name = sorted(tensors)[0]
    bad = tensors[name].clone()
    bad.view(-1)[0] = float("nan")
    tensors[name] = bad
    return save_checkpoint(path, tensors, metadata)


def large_melody(path: Path, hidden_size: int, num_layers: int = 2) -> Path:
    """A valid melody checkpoint of the bundled model's vocabulary, with random weights and
    ``hidden_size`` LSTM units per layer (hidden 1600 × 2 layers: ~32 M parameters, 127 MB)."""
    _, metadata = bundled_parts()
    metadata["config"] = {**metadata["config"], "hidden_size": hidden_size,
                          "num_layers": num_layers}
    family = MODEL_FAMILIES[metadata["family"]]
    torch.manual_seed(0)
    model = family.model(family.config(**metadata["config"]))
    save_checkpoint(path, model.state_dict(), metadata)
    assert read_metadata(path)["config"]["hidden_size"] == hidden_size
    return path


class Pinger:
    """Ping the daemon at ``endpoint`` from a thread of its own (its own socket) every
    ``interval_s`` seconds while open; ``times`` holds each round trip in seconds and
    ``missed`` counts pings with no answer within ``timeout_s``."""

    def __init__(self, endpoint: str, interval_s: float = 0.01, timeout_s: float = 2.0):
        self.endpoint, self.interval_s, self.timeout_s = endpoint, interval_s, timeout_s
        self.times: list[float] = []
        self.missed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pinger", daemon=True)

    def _run(self) -> None:
        with RiffdClient(self.endpoint, timeout_s=self.timeout_s) as client:
            while not self._stop.is_set():
                asked = time.perf_counter()
                try:
                    client.ping()
                    self.times.append(time.perf_counter() - asked)
                except RiffdUnavailable:
                    self.missed += 1
                self._stop.wait(self.interval_s)

    def __enter__(self) -> Pinger:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(self.timeout_s + 1)

    def summary(self) -> dict:
        """Count, median, 95th percentile and maximum round trip, in milliseconds."""
        ms = sorted(t * 1000 for t in self.times)
        if not ms:
            return {"pings": 0, "missed": self.missed}
        return {"pings": len(ms), "missed": self.missed, "median_ms": statistics.median(ms),
                "p95_ms": ms[int(0.95 * (len(ms) - 1))], "max_ms": ms[-1]}
