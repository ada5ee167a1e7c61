"""Training recipes: typed TOML configs with ``--set section.key=value`` overrides.

A recipe names a model ``family`` and has three sections: ``[data]`` and ``[train]``, typed
by the family's dataclasses in ``riffd.training.families``, and ``[model]``, the fields of the
family's engine config (less those the data decides, such as the vocabulary size).
Unknown keys and wrong types are errors that list what is known.
"""
from __future__ import annotations

import tomllib
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from riffd.engine.loading import MODEL_FAMILIES

# fields of an engine config that the data decides, never set in [model]
DATA_DECIDED = {"vocab_size", "input_dim", "output_dim", "num_pitches"}


class RecipeError(ValueError):
    """A recipe file or override is wrong; the message names the key and the fix."""


@dataclass
class Recipe:
    name: str
    family: str
    data: Any                                # the family's [data] dataclass
    model: dict[str, Any] = field(default_factory=dict)
    train: Any = None                        # the family's [train] dataclass

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _model_fields(family: str) -> dict[str, Any]:
    if family not in MODEL_FAMILIES:
        raise RecipeError(f"family {family!r} is unknown; known: {', '.join(MODEL_FAMILIES)}")
    config_cls = MODEL_FAMILIES[family].config
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in fields(config_cls) if f.name not in DATA_DECIDED}


def _check_type(where: str, value: Any, expected: Any) -> Any:
    origin = typing.get_origin(expected)
    if origin is list:
        (item,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise RecipeError(f"{where} must be a list of {item.__name__}, got {value!r}")
        return [_check_type(f"{where}[{i}]", v, item) for i, v in enumerate(value)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is typing.Any:
        return value
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
    from riffd.training.families import training_family
    family = _check_type("family", document.pop("family", "melody_lstm"), str)
    name = _check_type("name", document.pop("name", path.stem), str)
    _model_fields(family)
    spec = training_family(family)
    recipe = Recipe(name=name, family=family, data=spec.data(), train=spec.train())
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
