"""From a checkpoint file to a ready generator: the one place that maps families to classes.

A family adds one ``Family`` entry to ``MODEL_FAMILIES``: its engine config dataclass, its
``nn.Module`` class, a function that wraps a loaded model into a generator, and its kind
(``"midi"``: notes for a MIDI voice; ``"audio"``: frames for the audio voice).

Loading checks a checkpoint before it builds anything real: the stored config's values are of
the right type and within sane bounds, the model it describes (built on the ``meta`` device,
which allocates nothing) has at most ``limits.max_params`` parameters, every stored tensor has
the shape that model expects, and the weights are finite.
"""
from __future__ import annotations

import math
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import torch

from riffd.engine.checkpoint import (DEFAULT_LIMITS, CheckpointError, CheckpointReader, ModelLimits,
                               check_param_count, restore_dtype)
from riffd.engine.devices import resolve_device
from riffd.engine.melody_generator import MelodyGenerator
from riffd.engine.melody_lstm import FAMILY as MELODY_FAMILY, MelodyLSTM, MelodyLSTMConfig
from riffd.engine.melody_representation import Vocabulary
from riffd.engine.gan_bilstm import FAMILY as GAN_BILSTM, BiLSTMGAN, BiLSTMGANConfig
from riffd.engine.gan_cnn import FAMILY as GAN_CNN, CNNGAN, CNNGANConfig
from riffd.engine.gan_generator import GANGenerator
from riffd.engine.spectral_generator import SpectralGenerator
from riffd.engine.spectral_lstm import SpectralLSTM, SpectralLSTMConfig
from riffd.engine.multilabel_generator import make_multilabel_generator
from riffd.engine.multilabel_lstm import FAMILY as MULTILABEL_FAMILY, MultilabelLSTM, MultilabelLSTMConfig
from riffd.engine.notewise_generator import make_notewise_generator
from riffd.engine.notewise_lstm import FAMILY as NOTEWISE_FAMILY, NotewiseLSTM, NotewiseLSTMConfig

BUNDLED_DIR = Path(__file__).parent / "models"
BUNDLED_MODEL = BUNDLED_DIR / "melody_erk.safetensors"
BUNDLED_PREFIX = "bundled:"


def bundled_models() -> dict[str, Path]:
    """The models inside the riffd package by name (file name without .safetensors):
    melody_erk, notewise_n2_folk, multilabel_m5_chorales, gan_cnn_chorales, spectral_default."""
    return {p.stem: p for p in sorted(BUNDLED_DIR.glob("*.safetensors"))}


def resolve_model_path(model: str | Path | None) -> Path:
    """The checkpoint a voice's ``model`` names: None or "" = the bundled melody model; a
    bundled model's name (``gan_cnn_chorales`` or ``bundled:gan_cnn_chorales``) = that file
    inside the package; anything else is a path. An unknown bundled name raises
    CheckpointError listing the bundled models."""
    if model is None or model == "":
        return BUNDLED_MODEL
    text = str(model)
    name = text[len(BUNDLED_PREFIX):] if text.startswith(BUNDLED_PREFIX) else None
    if name is None and not isinstance(model, Path) and "/" not in text and "\\" not in text \
            and not text.endswith(".safetensors"):
        name = text
    if name is None:
        return Path(model)
    bundled = bundled_models()
    if name not in bundled:
        raise CheckpointError(f"no bundled model called {name!r}; the bundled models are "
                              f"{', '.join(bundled)} (or give the path of a .safetensors file)")
    return bundled[name]


@dataclass(frozen=True)
class Family:
    """How to rebuild one model family: config class, model class, generator factory.

    make_generator(model, metadata, device) → a generator (see engine.generator).
    """

    config: type
    model: type
    make_generator: Callable[[torch.nn.Module, dict, torch.device], Any]
    kind: str = "midi"      # "midi" (a MIDI voice plays it) or "audio" (the audio voice)


class WrongKindError(CheckpointError):
    """A checkpoint of another kind than asked for (an audio model for a MIDI voice...)."""

    def __init__(self, path: Path, family: str, kind: str, wanted: str):
        super().__init__(f"{path} is an {kind} model ({family}), not a {wanted} model")
        self.path, self.family, self.kind, self.wanted = path, family, kind, wanted


def _melody_generator(model, metadata, device):
    return MelodyGenerator(model, Vocabulary(metadata["representation"]["vocabulary"]),
                           metadata, device)


MODEL_FAMILIES: dict[str, Family] = {
    MELODY_FAMILY: Family(MelodyLSTMConfig, MelodyLSTM, _melody_generator),
    GAN_CNN: Family(CNNGANConfig, CNNGAN, GANGenerator),
    GAN_BILSTM: Family(BiLSTMGANConfig, BiLSTMGAN, GANGenerator),
    "spectral_lstm": Family(SpectralLSTMConfig, SpectralLSTM, SpectralGenerator.from_metadata,
                            kind="audio"),
    NOTEWISE_FAMILY: Family(NotewiseLSTMConfig, NotewiseLSTM, make_notewise_generator),
    MULTILABEL_FAMILY: Family(MultilabelLSTMConfig, MultilabelLSTM, make_multilabel_generator),
}


# Sanity bounds on a stored config, checked before the model is even described: a layer count
# or size past these is a damaged or hostile file, not a model riffd could play.
MAX_CONFIG_INT = 1 << 20        # any size, count or width
MAX_LAYERS = 32                 # fields named *layers*


def check_config(family: str, config: Any) -> Any:
    """The family's config object for the stored ``config`` dict, after checking every value's
    type and bounds; raises CheckpointError naming the field."""
    if family not in MODEL_FAMILIES:
        raise CheckpointError(f"unknown model family {family!r}; this riffd knows "
                              f"{', '.join(sorted(MODEL_FAMILIES))}")
    if not isinstance(config, dict):
        raise CheckpointError(f"the checkpoint's {family} config is not an object; the file is "
                              "damaged")
    spec = MODEL_FAMILIES[family]
    known = {f.name for f in fields(spec.config)}
    unknown = set(config) - known
    if unknown:
        raise CheckpointError(f"the checkpoint's {family} config has fields this riffd does "
                              f"not know ({', '.join(sorted(map(str, unknown)))}); upgrade riffd")
    hints = typing.get_type_hints(spec.config)
    for name, value in config.items():
        problem = _config_value_problem(name, hints.get(name), value)
        if problem:
            raise CheckpointError(f"the checkpoint's {family} config field {name!r} {problem}; "
                                  "the file is damaged or not a model riffd can play")
    try:
        return spec.config(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint's {family} config is not usable: {exc}") from None


def _config_value_problem(name: str, expected: Any, value: Any) -> str | None:
    if expected is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        limit = MAX_LAYERS if "layers" in name else MAX_CONFIG_INT
        if not -1 <= value <= limit:
            return f"is {value if abs(value) < 10**12 else 'huge'}, outside -1..{limit}"
        return None
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        try:
            return None if math.isfinite(value) and abs(value) <= 1e9 else "is out of range"
        except OverflowError:
            return "is out of range"
    if expected is str:
        return None if isinstance(value, str) and len(value) <= 256 else "must be a short string"
    return None


def expected_shapes(family: str, config: dict) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of the model a stored config describes, without allocating it (the
    model is built on the ``meta`` device)."""
    cfg = check_config(family, config)
    try:
        with torch.device("meta"):
            model = MODEL_FAMILIES[family].model(cfg)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"the checkpoint's {family} config does not describe a model "
                              f"riffd can build ({exc})") from None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def build_model(family: str, config: dict) -> torch.nn.Module:
    """Rebuild a model from its family name and stored config dict."""
    return MODEL_FAMILIES[family].model(check_config(family, config))


def load_model(path: str | Path, limits: ModelLimits = DEFAULT_LIMITS,
               kind: str | None = None) -> tuple[torch.nn.Module, dict]:
    """Load a checkpoint's model (on the CPU, eval mode) and its metadata.

    ``limits`` bounds the file size and the parameter count; ``kind`` ("midi" or "audio"),
    when given, refuses a model of the other kind with :class:`WrongKindError`. Everything is
    checked before the model is built (see the module docstring).
    """
    path = Path(path)
    with CheckpointReader(path, limits) as reader:
        metadata = reader.metadata
        family = metadata.get("family")
        if not isinstance(family, str) or family not in MODEL_FAMILIES:
            raise CheckpointError(f"{path}: unknown model family {family!r}; this riffd knows "
                                  f"{', '.join(sorted(MODEL_FAMILIES))}")
        if kind is not None and MODEL_FAMILIES[family].kind != kind:
            raise WrongKindError(path, family, MODEL_FAMILIES[family].kind, kind)
        try:
            shapes = expected_shapes(family, metadata.get("config", {}))
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        check_param_count(path, sum(math.prod(s) for s in shapes.values()), limits)
        reader.check_params()
        stored = {name: reader.tensors[name].shape for name in reader.weight_names()}
        if stored != shapes:
            raise CheckpointError(f"{path}: the weights do not fit the stored {family} config "
                                  f"({_shape_difference(shapes, stored)}); the file is damaged.")
        tensors = reader.load_tensors()
    weights = restore_dtype({k: v for k, v in tensors.items() if not k.startswith("_")},
                            metadata)          # "_optim." etc. left out; float16 → float32
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: weight {name!r} holds NaN or infinite values (the "
                                  "training diverged); use an earlier checkpoint or retrain "
                                  "with a lower learning rate.")
    model = build_model(family, metadata.get("config", {}))
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not fit the stored {family} config "
                              f"({str(exc).splitlines()[0]}); the file is damaged.") from exc
    return model.eval(), metadata


def _shape_difference(expected: dict, stored: dict) -> str:
    missing = sorted(set(expected) - set(stored))
    if missing:
        return f"tensor {missing[0]!r} is missing"
    extra = sorted(set(stored) - set(expected))
    if extra:
        return f"tensor {extra[0]!r} is not part of the model"
    name = next(k for k in expected if expected[k] != stored[k])
    return f"tensor {name!r} is {list(stored[name])}, the config needs {list(expected[name])}"


def load_generator(path: str | Path | None = None, device: str = "auto",
                   limits: ModelLimits = DEFAULT_LIMITS, kind: str | None = None):
    """Load a checkpoint (the bundled melody model when ``path`` is None, a bundled model by
    its name, see :func:`resolve_model_path`) as a generator; ``limits`` and ``kind`` as for
    :func:`load_model`."""
    path = resolve_model_path(path)
    model, metadata = load_model(path, limits, kind)
    generator = MODEL_FAMILIES[metadata["family"]].make_generator(
        model, metadata, resolve_device(device))
    generator.path = path
    return generator
