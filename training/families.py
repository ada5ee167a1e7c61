"""What the training package knows per model family: recipe sections and the commands.

A family adds one ``TrainingFamily`` entry: its ``[data]`` and ``[train]`` dataclasses, the
function that trains it from a recipe, and optionally its evaluation and offline rendering.
Functions are named as ``"module:function"`` and imported on use, so that a family's heavy
dependencies load only when that family is used.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from riffd.training.melody_config import MelodyDataConfig, MelodyTrainConfig
from riffd.training.gan_config import GANDataConfig, GANTrainConfig
from riffd.training.spectral_config import SpectralDataConfig, SpectralTrainConfig
from riffd.training.multilabel_config import MultilabelDataConfig, MultilabelTrainConfig
from riffd.training.notewise_config import NotewiseDataConfig, NotewiseTrainConfig


@dataclass(frozen=True)
class TrainingFamily:
    data: type
    train: type
    trainer: str                      # "module:function", fn(recipe, resume: bool) -> Path
    evaluator: str | None = None      # "module:function", fn(checkpoint, args) -> dict
    renderer: str | None = None       # "module:function", fn(checkpoint, args) -> Path


TRAINING_FAMILIES: dict[str, TrainingFamily] = {
    "melody_lstm": TrainingFamily(MelodyDataConfig, MelodyTrainConfig,
                                  "riffd.training.train_melody:train", "riffd.training.evaluate:evaluate_melody"),
    "gan_cnn": TrainingFamily(GANDataConfig, GANTrainConfig, "riffd.training.train_gan:train", "riffd.training.evaluate:evaluate_gan"),
    "gan_bilstm": TrainingFamily(GANDataConfig, GANTrainConfig, "riffd.training.train_gan:train", "riffd.training.evaluate:evaluate_gan"),
    "spectral_lstm": TrainingFamily(SpectralDataConfig, SpectralTrainConfig,
                                    "riffd.training.train_spectral:train",
                                    "riffd.training.spectral_eval:evaluate_command",
                                    "riffd.training.spectral_render:render_command"),
    "notewise_lstm": TrainingFamily(NotewiseDataConfig, NotewiseTrainConfig,
                                    "riffd.training.train_notewise:train", "riffd.training.evaluate:evaluate_notewise"),
    "multilabel_lstm": TrainingFamily(MultilabelDataConfig, MultilabelTrainConfig,
                                      "riffd.training.train_multilabel:train", "riffd.training.evaluate:evaluate_multilabel"),
}


def training_family(family: str) -> TrainingFamily:
    if family not in TRAINING_FAMILIES:
        raise ValueError(f"family {family!r} cannot be trained; known families: "
                         f"{', '.join(sorted(TRAINING_FAMILIES))}")
    return TRAINING_FAMILIES[family]


def resolve(target: str) -> Callable:
    """Import ``"module:function"``."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
