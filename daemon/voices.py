"""Several voices at once: building them from config or commands, finding them by name, and the
model files they can load.

A voice spec is a dict with ``name``, optional ``model`` (checkpoint path; "" = the bundled
melody model) and any control of ``set`` (protocol names: ``length`` is the answer length in
bars). :func:`split_controls` separates the voice settings from the sampling settings.
"""
from __future__ import annotations

import os
import stat
import threading
from dataclasses import fields, replace
from pathlib import Path

from riffd.daemon.voice import Voice, VoiceSettings, check_settings
from riffd.engine.checkpoint import DEFAULT_LIMITS, CheckpointError, ModelLimits, read_metadata
from riffd.engine.loading import BUNDLED_MODEL, WrongKindError, load_generator, resolve_model_path
from riffd.engine.safe_files import FileRefused, check_regular, is_within
from riffd.engine.melody_representation import Note
from riffd.engine.sampling import SamplingSettings

PROTOCOL_TO_SETTING = {"length": "length_bars"}
VOICE_FIELDS = {f.name for f in fields(VoiceSettings)}
SAMPLING_FIELDS = {f.name for f in fields(SamplingSettings)}


def split_controls(controls: dict) -> tuple[dict, dict]:
    """Protocol controls → (VoiceSettings fields, SamplingSettings fields). Raises ValueError
    naming an unknown control."""
    voice, sampling = {}, {}
    for key, value in controls.items():
        name = PROTOCOL_TO_SETTING.get(key, key)
        if name in VOICE_FIELDS:
            voice[name] = value
        elif name in SAMPLING_FIELDS:
            sampling[name] = value
        else:
            raise ValueError(f"no voice control {key!r}; controls: "
                             f"{', '.join(sorted(VOICE_FIELDS | SAMPLING_FIELDS))}")
    return voice, sampling


WARM_UP_PHRASE = [Note(60, 0.0, 0.5), Note(64, 0.5, 0.5), Note(67, 1.0, 1.0)]


def load_voice_generator(model: str | None, device: str, sampling: dict | None = None,
                         limits: ModelLimits = DEFAULT_LIMITS):
    """Load a checkpoint (None or "" = the bundled model) as a generator with ``sampling``,
    warmed up: the first prime and steps of a fresh model are slow (lazy allocations), and a
    voice's first answer must not pay for them. ``limits`` bounds the file and the model; an
    audio (spectral) model is refused with a message that says where it belongs."""
    try:
        generator = load_generator(model or None, device, limits, kind="midi")
    except WrongKindError as exc:
        raise CheckpointError(f"{exc.path} is an audio model ({exc.family}): it belongs to the "
                              "audio voice, not to a MIDI voice; start riffd with "
                              f"`riffd serve --audio-model {exc.path}` and play it with the "
                              "audio_* commands (audio_start, audio_seed, ...)") from None
    if sampling:
        generator.settings = replace(generator.settings, **sampling)
    generator.prime(WARM_UP_PHRASE)
    for _ in range(4):
        generator.next_step()
    generator.reset()
    return generator


BUNDLED_MODELS_DIR = BUNDLED_MODEL.parent


def model_folders(model_dirs: list[str | Path]) -> list[Path]:
    """The folders model files may be read from: the configured ones, then the bundled one."""
    return [Path(d) for d in model_dirs] + [BUNDLED_MODELS_DIR]


def allowed_model_path(path: str, model_dirs: list[str | Path]) -> Path:
    """The checkpoint ``path`` names, when it lies inside a model folder (links and ``..``
    resolved): a path, or a bundled model's name (``gan_cnn_chorales``, as in a serve config).
    Raises ValueError naming the allowed folders and how to add one, or listing the bundled
    models for an unknown name. Opens nothing."""
    if not path:
        raise ValueError("give the path of a checkpoint (.safetensors) or a bundled model's "
                         "name")
    if "\x00" in path:
        raise ValueError("a path cannot contain a NUL character")
    try:
        path = str(resolve_model_path(path))
    except CheckpointError as exc:
        raise ValueError(str(exc)) from None
    folders = model_folders(model_dirs)
    if not is_within(path, folders):
        shown = ", ".join(str(f) for f in folders)
        raise ValueError(f"{path} is outside the model folders ({shown}); copy the checkpoint "
                         "into one of them, or add its folder with `riffd serve --model-dir "
                         "FOLDER` (or model_dirs in the serve config)")
    return Path(path)


class VoiceSet:
    """The daemon's voices by name, in the order they were added (one lock)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._voices: dict[str, Voice] = {}

    def add(self, voice: Voice) -> None:
        with self._lock:
            if voice.name in self._voices:
                raise ValueError(f"there is already a voice called {voice.name!r}")
            self._voices[voice.name] = voice

    def remove(self, name: str) -> Voice:
        with self._lock:
            if name not in self._voices:
                raise KeyError(self._unknown(name))
            return self._voices.pop(name)

    def get(self, name: str | None) -> Voice:
        """The voice called ``name``; None = the first voice."""
        with self._lock:
            if name is None:
                if not self._voices:
                    raise KeyError("there are no voices; add one with add_voice")
                return next(iter(self._voices.values()))
            if name not in self._voices:
                raise KeyError(self._unknown(name))
            return self._voices[name]

    def select(self, name: str | None) -> list[Voice]:
        """``[voice name]``, or every voice when ``name`` is None."""
        if name is not None:
            return [self.get(name)]
        with self._lock:
            return list(self._voices.values())

    def names(self) -> list[str]:
        with self._lock:
            return list(self._voices)

    def _unknown(self, name: str) -> str:
        return f"no voice called {name!r}; voices: {', '.join(self._voices) or 'none'}"


def make_voice(spec: dict, scheduler, clock, device: str, on_event, lookahead_s: float,
               defaults: VoiceSettings, generator=None) -> Voice:
    """Build (not start) a voice from a spec dict (see the module docstring); ``generator``:
    already loaded from the spec's model (None: load it here)."""
    spec = dict(spec)
    name = spec.pop("name")
    model = spec.pop("model", "")
    voice_fields, sampling = split_controls(spec)
    settings = replace(defaults, **voice_fields)
    check_settings(settings)
    if generator is None:
        generator = load_voice_generator(model, device)
    if sampling:
        generator.settings = replace(generator.settings, **sampling)
    return Voice(name, generator, scheduler, clock, settings, on_event=on_event,
                 lookahead_s=lookahead_s)


MAX_LISTED_FILES = 1000       # list_models stops after this many files


def list_models(folders: list[str | Path], limits: ModelLimits = DEFAULT_LIMITS) -> list[dict]:
    """The checkpoints (*.safetensors) under ``folders`` and the bundled ones: path, name,
    family, metrics. Files that are not regular files (FIFOs, devices...) or lie outside the
    folders through a link are skipped without being opened and listed with their ``error``;
    so are unreadable files."""
    folders = [Path(f) for f in folders]
    if BUNDLED_MODELS_DIR not in folders:
        folders.append(BUNDLED_MODELS_DIR)
    out, seen = [], set()
    for path in _model_files(folders):
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        if len(out) >= MAX_LISTED_FILES:
            out.append({"path": str(path), "error": f"not listed: more than {MAX_LISTED_FILES} "
                                                    "files in the model folders"})
            break
        if not is_within(path, folders):
            out.append({"path": str(path), "error": "skipped: it links outside the model "
                                                    "folders"})
            continue
        try:
            check_regular(path, limits.max_bytes, limits.bytes_hint)
            meta = read_metadata(path, limits)
        except FileRefused as exc:
            out.append({"path": str(path), "error": f"skipped: {exc}"})
            continue
        except (CheckpointError, OSError, ValueError) as exc:
            out.append({"path": str(path), "error": str(exc)})
            continue
        out.append({"path": str(path), "name": meta.get("name", path.stem),
                    "family": meta.get("family"), "metrics": meta.get("metrics", {})})
    return out


def _model_files(folders: list[Path]):
    """Paths of *.safetensors entries under ``folders`` (links to folders are not followed;
    nothing is opened)."""
    for folder in folders:
        try:
            if not stat.S_ISDIR(os.stat(folder).st_mode):
                continue
        except (OSError, ValueError):
            continue
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".safetensors"):
                    yield Path(root) / name
