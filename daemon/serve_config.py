"""The daemon's settings: a TOML file (configs/serve.toml) with command-line overrides."""
from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, fields
from pathlib import Path


class ServeConfigError(ValueError):
    """A serve config file is wrong; the message names the key and what is known."""


@dataclass
class ServeConfig:
    model: str = ""                         # checkpoint path; "" = the bundled melody model
    device: str = "auto"                    # auto | cpu | cuda | cuda:N
    midi_api: str = "auto"                  # auto | alsa | jack | coremidi | windows
    client_name: str = "riffd"
    control: str = "tcp://127.0.0.1:5555"   # ZeroMQ ROUTER for requests
    events: str = "tcp://127.0.0.1:5556"    # ZeroMQ PUB for events
    tempo: float = 120.0                    # BPM
    channel: int = 1                        # MIDI channel 1–16
    velocity: int = 90                      # 1–127
    length_bars: int = 4                    # answer length
    silence_s: float = 1.0                  # silence that ends a played phrase, seconds
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False
    lookahead_s: float = 0.15               # how far ahead the voice generates, seconds
    threads: int = 1                        # torch CPU threads (more are not faster here)


def load_serve_config(path: str | Path | None) -> ServeConfig:
    """Read ``[serve]`` from a TOML file (all keys optional); no path gives the defaults."""
    cfg = ServeConfig()
    if path is None:
        return cfg
    try:
        document = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ServeConfigError(f"config {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ServeConfigError(f"{path} is not valid TOML: {exc}") from None
    table = document.get("serve", {})
    hints = typing.get_type_hints(ServeConfig)
    known = {f.name for f in fields(ServeConfig)}
    for key, value in table.items():
        if key not in known:
            raise ServeConfigError(f"{path}: [serve] has no key {key!r}; known keys: "
                                   f"{', '.join(sorted(known))}")
        expected = hints[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ServeConfigError(f"{path}: [serve] {key} must be {expected.__name__}, "
                                   f"got {value!r}")
        setattr(cfg, key, value)
    return cfg
