"""From a checkpoint file to a ready generator: the one place that maps families to classes.

A family adds one ``Family`` entry to ``MODEL_FAMILIES``: its engine config dataclass, its
``nn.Module`` class, and a function that wraps a loaded model into a generator.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import torch

from engine.checkpoint import CheckpointError, load_checkpoint
from engine.devices import resolve_device
from engine.melody_generator import MelodyGenerator
from engine.melody_lstm import FAMILY as MELODY_FAMILY, MelodyLSTM, MelodyLSTMConfig
from engine.melody_representation import Vocabulary
from engine.gan_bilstm import FAMILY as GAN_BILSTM, BiLSTMGAN, BiLSTMGANConfig
from engine.gan_cnn import FAMILY as GAN_CNN, CNNGAN, CNNGANConfig
from engine.gan_generator import GANGenerator
from engine.spectral_generator import SpectralGenerator
from engine.spectral_lstm import SpectralLSTM, SpectralLSTMConfig
from engine.multilabel_generator import make_multilabel_generator
from engine.multilabel_lstm import FAMILY as MULTILABEL_FAMILY, MultilabelLSTM, MultilabelLSTMConfig
from engine.notewise_generator import make_notewise_generator
from engine.notewise_lstm import FAMILY as NOTEWISE_FAMILY, NotewiseLSTM, NotewiseLSTMConfig

BUNDLED_MODEL = Path(__file__).parent / "models" / "melody_erk.safetensors"


@dataclass(frozen=True)
class Family:
    """How to rebuild one model family: config class, model class, generator factory.

    make_generator(model, metadata, device) → a generator (see engine.generator).
    """

    config: type
    model: type
    make_generator: Callable[[torch.nn.Module, dict, torch.device], Any]


def _melody_generator(model, metadata, device):
    return MelodyGenerator(model, Vocabulary(metadata["representation"]["vocabulary"]),
                           metadata, device)


MODEL_FAMILIES: dict[str, Family] = {
    MELODY_FAMILY: Family(MelodyLSTMConfig, MelodyLSTM, _melody_generator),
    GAN_CNN: Family(CNNGANConfig, CNNGAN, GANGenerator),
    GAN_BILSTM: Family(BiLSTMGANConfig, BiLSTMGAN, GANGenerator),
    "spectral_lstm": Family(SpectralLSTMConfig, SpectralLSTM, SpectralGenerator.from_metadata),
    NOTEWISE_FAMILY: Family(NotewiseLSTMConfig, NotewiseLSTM, make_notewise_generator),
    MULTILABEL_FAMILY: Family(MultilabelLSTMConfig, MultilabelLSTM, make_multilabel_generator),
}


def build_model(family: str, config: dict) -> torch.nn.Module:
    """Rebuild a model from its family name and stored config dict."""
    if family not in MODEL_FAMILIES:
        raise CheckpointError(f"unknown model family {family!r}; this riffd knows "
                              f"{', '.join(sorted(MODEL_FAMILIES))}")
    spec = MODEL_FAMILIES[family]
    known = {f.name for f in fields(spec.config)}
    unknown = set(config) - known
    if unknown:
        raise CheckpointError(f"the checkpoint's {family} config has fields this riffd does "
                              f"not know ({', '.join(sorted(unknown))}); upgrade riffd")
    return spec.model(spec.config(**config))


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Load a checkpoint's model (on the CPU, eval mode) and its metadata."""
    path = Path(path)
    tensors, metadata = load_checkpoint(path)
    family = metadata.get("family")
    model = build_model(family, metadata.get("config", {}))
    weights = {k: v for k, v in tensors.items() if not k.startswith("_")}   # "_optim." etc.
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not fit the stored {family} config "
                              f"({str(exc).splitlines()[0]}); the file is damaged.") from exc
    return model.eval(), metadata


def load_generator(path: str | Path | None = None, device: str = "auto"):
    """Load a checkpoint (the bundled melody model when ``path`` is None) as a generator."""
    path = Path(path) if path is not None else BUNDLED_MODEL
    model, metadata = load_model(path)
    generator = MODEL_FAMILIES[metadata["family"]].make_generator(
        model, metadata, resolve_device(device))
    generator.path = path
    return generator
