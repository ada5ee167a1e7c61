"""Training recipes: typed TOML configs with ``--set section.key=value`` overrides.

A recipe has three sections: ``[data]`` (corpus and encoding), ``[model]`` (the fields of
the model family's engine config, less the vocabulary size, which the data decides) and
``[train]`` (optimisation). Unknown keys and wrong types are errors that list what is known.
"""
from __future__ import annotations

import tomllib
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.loading import MODEL_FAMILIES


class RecipeError(ValueError):
    """A recipe file or override is wrong; the message names the key and the fix."""


@dataclass
class DataConfig:
    corpus: list[str] = field(default_factory=lambda: ["essen:erk"])  # specs, see corpus.py
    max_songs: int = 0                     # 0 = every song the corpus has
    acceptable_durations: list[float] = field(
        default_factory=lambda: [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0])  # beats
    transpose: bool = True                 # move songs to C major / A minor
    val_fraction: float = 0.1              # share of songs held out for validation
    cache_dir: str = ".cache/riffd"


@dataclass
class TrainConfig:
    sequence_length: int = 64              # steps (16th notes) per training window
    stride: int = 32                       # steps between window starts
    batch_size: int = 64
    learning_rate: float = 1e-3
    epochs: int = 50
    grad_clip: float = 1.0
    lr_patience: int = 2                   # epochs without improvement before annealing
    lr_factor: float = 0.5
    early_stop_patience: int = 6
    max_batches_per_epoch: int = 0         # 0 = all
    seed: int = 0
    device: str = "auto"
    threads: int = 0                       # torch CPU threads, 0 = torch's choice
    output_dir: str = "runs/melody_erk"


@dataclass
class Recipe:
    name: str = "melody_erk"
    family: str = "melody_lstm"
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _model_fields(family: str) -> dict[str, Any]:
    if family not in MODEL_FAMILIES:
        raise RecipeError(f"family {family!r} is unknown; known: {', '.join(MODEL_FAMILIES)}")
    config_cls = MODEL_FAMILIES[family][0]
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in fields(config_cls) if f.name != "vocab_size"}


def _check_type(where: str, value: Any, expected: Any) -> Any:
    origin = typing.get_origin(expected)
    if origin is list:
        (item,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise RecipeError(f"{where} must be a list of {item.__name__}, got {value!r}")
        return [_check_type(f"{where}[{i}]", v, item) for i, v in enumerate(value)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool and not isinstance(value, bool):
        raise RecipeError(f"{where} must be true or false, got {value!r}")
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise RecipeError(f"{where} must be a whole number, got {value!r}")
    if not isinstance(value, expected):
        raise RecipeError(f"{where} must be a {expected.__name__}, got {value!r}")
    return value


def _section_types(recipe: Recipe, section: str) -> dict[str, Any]:
    if section == "model":
        return _model_fields(recipe.family)
    target = getattr(recipe, section)
    hints = typing.get_type_hints(type(target))
    return {f.name: hints[f.name] for f in fields(target)}


def _apply(recipe: Recipe, section: str, key: str, value: Any) -> None:
    types = _section_types(recipe, section)
    if key not in types:
        raise RecipeError(f"[{section}] has no key {key!r}; known keys: "
                          f"{', '.join(sorted(types))}")
    value = _check_type(f"{section}.{key}", value, types[key])
    if section == "model":
        recipe.model[key] = value
    else:
        setattr(getattr(recipe, section), key, value)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a TOML recipe and apply ``section.key=value`` overrides (values in TOML syntax)."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RecipeError(f"recipe {path} does not exist; the recipes are in configs/") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path} is not valid TOML: {exc}") from None
    recipe = Recipe()
    for key in ("name", "family"):
        if key in document:
            setattr(recipe, key, _check_type(key, document.pop(key), str))
    _model_fields(recipe.family)
    sections = {"data", "model", "train"}
    for section, table in document.items():
        if section not in sections or not isinstance(table, dict):
            raise RecipeError(f"{path}: unknown top-level entry {section!r}; a recipe has "
                              "name, family, [data], [model] and [train]")
        for key, value in table.items():
            _apply(recipe, section, key, value)
    for item in overrides or []:
        apply_override(recipe, item)
    return recipe


def apply_override(recipe: Recipe, item: str) -> None:
    """Apply one ``section.key=value`` override; the value is parsed as TOML, else as text."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise RecipeError(f"override {item!r} must look like section.key=value, "
                          "for example train.epochs=5")
    dotted, raw = item.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    if section not in ("data", "model", "train"):
        raise RecipeError(f"override {item!r}: section must be data, model or train")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    _apply(recipe, section, key.strip(), value)
