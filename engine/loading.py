"""From a checkpoint file to a ready generator: the one place that maps families to classes."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import torch

from engine.checkpoint import CheckpointError, load_checkpoint
from engine.devices import resolve_device
from engine.melody_generator import MelodyGenerator
from engine.melody_lstm import FAMILY as MELODY_FAMILY, MelodyLSTM, MelodyLSTMConfig
from engine.melody_representation import Vocabulary

BUNDLED_MODEL = Path(__file__).parent / "models" / "melody_erk.safetensors"

# family name → (config class, model class)
MODEL_FAMILIES = {MELODY_FAMILY: (MelodyLSTMConfig, MelodyLSTM)}


def build_model(family: str, config: dict) -> torch.nn.Module:
    """Rebuild a model from its family name and stored config dict."""
    if family not in MODEL_FAMILIES:
        raise CheckpointError(f"unknown model family {family!r}; this riffd knows "
                              f"{', '.join(sorted(MODEL_FAMILIES))}")
    config_cls, model_cls = MODEL_FAMILIES[family]
    known = {f.name for f in fields(config_cls)}
    unknown = set(config) - known
    if unknown:
        raise CheckpointError(f"the checkpoint's {family} config has fields this riffd does "
                              f"not know ({', '.join(sorted(unknown))}); upgrade riffd")
    return model_cls(config_cls(**config))


def load_generator(path: str | Path | None = None, device: str = "auto") -> MelodyGenerator:
    """Load a checkpoint (the bundled model when ``path`` is None) onto a device."""
    path = Path(path) if path is not None else BUNDLED_MODEL
    tensors, metadata = load_checkpoint(path)
    family = metadata.get("family")
    model = build_model(family, metadata.get("config", {}))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not fit the stored {family} config "
                              f"({str(exc).splitlines()[0]}); the file is damaged.") from exc
    vocab = Vocabulary(metadata["representation"]["vocabulary"])
    generator = MelodyGenerator(model, vocab, metadata, resolve_device(device))
    generator.path = path
    return generator
