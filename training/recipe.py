"""Training recipes: typed TOML configs with ``--set section.key=value`` overrides.

A recipe names a model ``family`` and has three sections: ``[data]`` and ``[train]``, typed
by the family's dataclasses in ``riffd.training.families``, and ``[model]``, the fields of the
family's engine config (less those the data decides, such as the vocabulary size).
Unknown keys and wrong types are errors that list what is known.
"""
from __future__ import annotations

import importlib.resources
import tomllib
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from riffd.engine.loading import MODEL_FAMILIES

CONFIGS_PACKAGE = "riffd.configs"           # the recipes and serve configs shipped as package data
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


def _bundled_configs():
    """The folder of TOML files that ships inside the package (``riffd.configs``, mapped from
    the checkout's ``configs/``): a Traversable, read with importlib.resources."""
    return importlib.resources.files(CONFIGS_PACKAGE)


def _is_recipe(document: dict[str, Any]) -> bool:
    """A recipe has no ``[serve]`` or ``[[voice]]`` table (those are serve configs)."""
    return not ({"serve", "voice", "cc"} & set(document))


def _summary(text: str, width: int = 100) -> str:
    """The first sentence of a TOML file's opening comment block, cut to ``width`` characters."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    sentence = " ".join(lines)
    end = sentence.find(". ")
    sentence = sentence[:end + 1] if end >= 0 else sentence
    if len(sentence) > width:
        sentence = sentence[:width - 1].rsplit(" ", 1)[0] + "…"
    return sentence


def list_recipes() -> list[tuple[str, str, str]]:
    """(name, family, one line of what it trains) of every recipe shipped in the package, by
    name. The name is the file's stem: ``riffd train NAME`` reads it."""
    found = []
    for entry in sorted(_bundled_configs().iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        text = entry.read_text(encoding="utf-8")
        document = tomllib.loads(text)
        if _is_recipe(document):
            found.append((entry.name[:-len(".toml")], document.get("family", "melody_lstm"),
                          _summary(text)))
    return found


def list_recipes_text() -> str:
    """``riffd train --list``: one recipe a line, name, family and what it trains."""
    recipes = list_recipes()
    width = max(len(name) for name, _, _ in recipes)
    family_width = max(len(family) for _, family, _ in recipes)
    lines = [f"{name:<{width}}  {family:<{family_width}}  {summary}"
             for name, family, summary in recipes]
    lines.append("")
    lines.append("Train one with: riffd train NAME (e.g. riffd train melody_erk); a path to "
                 "your own .toml works too (start from a copy: riffd train --show NAME > my.toml).")
    return "\n".join(lines)


def recipe_text(name_or_path: str | Path) -> tuple[str, str]:
    """(text, where) of a recipe given by path or by the name of a shipped recipe.

    A path that exists is read as it is; otherwise a bare name (``melody_erk``, with or
    without ``.toml``) is looked up in the recipes shipped in the package.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path)
    name = path.name[:-len(".toml")] if path.name.endswith(".toml") else path.name
    known = [recipe for recipe, _, _ in list_recipes()]
    if name in known and (len(path.parts) == 1 or path.parent.name == "configs"):
        return (_bundled_configs() / f"{name}.toml").read_text(encoding="utf-8"), name
    raise RecipeError(f"recipe {name_or_path} does not exist: give the path of a .toml file or "
                      f"the name of a shipped recipe ({', '.join(known)}; riffd train --list "
                      "says what each trains)")


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a TOML recipe, by path or by the name of a shipped one (``melody_erk``), and apply
    ``section.key=value`` overrides (values in TOML syntax)."""
    text, where = recipe_text(path)
    path = Path(where)
    try:
        document = tomllib.loads(text)
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
