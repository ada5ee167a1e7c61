"""The daemon's settings: a TOML file (configs/serve.toml) with command-line overrides.

``[serve]`` holds the daemon's keys (all optional). ``[[voice]]`` tables declare voices (each
with ``name``, ``model`` and any control of ``set``: mode, channel, program, temperature, ...);
without them the daemon has one voice, ``main``, built from ``[serve]``. ``[cc]`` maps controls
to CC numbers: ``temperature = 21`` or ``"bass.temperature" = 22`` (voice.control).
"""
from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path


class ServeConfigError(ValueError):
    """A serve config file is wrong; the message names the key and what is known."""


@dataclass
class ServeConfig:
    model: str = ""                         # checkpoint path; "" = the bundled melody model
    device: str = "auto"                    # auto | cpu | cuda | cuda:N
    midi_api: str = "auto"                  # auto | alsa | jack | coremidi | windows
    client_name: str = "riffd"
    connect_out: str = ""                   # an existing MIDI port the output goes to (loopMIDI
    connect_in: str = ""                    # on Windows, a synth on JACK), and one to listen to
    control: str = ""    # ZeroMQ ROUTER for requests; "" = ipc://$XDG_RUNTIME_DIR/riffd/control
    events: str = ""     # ZeroMQ PUB for events; "" = the events socket beside it
                         # (tcp:// endpoints use CURVE keys: see daemon/auth.py, `riffd keys`)
    tempo: float = 120.0                    # BPM
    channel: int = 1                        # MIDI channel 1–16
    velocity: int = 90                      # 1–127
    length_bars: int = 4                    # answer length
    silence_s: float = 1.0                  # silence that ends a played phrase, seconds
    max_hold_s: float = 10.0                # a key held longer without its note-off is released
    max_phrase_notes: int = 256             # a played phrase ends at this many notes
    max_phrase_s: float = 60.0              # ... or this many seconds after its first note
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False
    rng_seed: int = -1                      # ≥ 0: every voice's answers repeatable (-1 = fresh)
    lookahead_s: float = 0.15               # how far ahead the voice generates, seconds
    threads: int = 1                        # torch CPU threads (more are not faster here)
    mode: str = "answer"                    # answer | continuous | follow (the default voice)
    answer_on: str = "beat"                 # an answer starts on the next beat | bar
    phrase_end: str = "silence"             # a played phrase ends on silence | bar (line)
    beats_per_bar: int = 4                  # meter
    clock_source: str = "internal"          # internal | midi (follow MIDI clock on riffd:in)
                                            # | link (join an Ableton Link session; multicast)
    link_start_stop: bool = False           # Link start/stop sync (with clock_source = link)
    clock_out: bool = True                  # send MIDI clock on riffd:out (internal or link)
    model_dirs: list = field(default_factory=lambda: ["runs", "models"])  # the only folders
                                            # load_model, add_voice and list_models read
    max_model_mb: float = 512.0             # largest checkpoint file loaded, MB
    max_model_params: int = 50_000_000      # largest model loaded, parameters
    record_dir: str = "recordings"          # where `record start` writes without a path
    monitor: bool = False                   # play generated notes through a pyo synth (JACK)
    audio: bool = False                     # run the spectral audio voice on the audio device
    audio_model: str = ""                   # spectral checkpoint; "" = the bundled one
    audio_device: str = ""                  # output device name or index; "" = the default
    audio_blocksize: int = 256              # frames per audio callback (0 = PortAudio's choice)
    audio_latency: str = "low"              # low | high | seconds
    realtime: str = "auto"                  # auto | on | off: SCHED_FIFO threads, locked memory
    osc: str = ""            # OSC commands on udp://127.0.0.1:PORT; "" = off (docs/osc.md)
    osc_reply: str = ""      # udp://HOST:PORT for every OSC reply; "" = back to the sender
    osc_events: str = ""     # udp://HOST:PORT that gets every event as OSC; "" = subscribers only
    osc_allow_remote: bool = False          # let --osc bind a non-loopback host (no auth!)
    output_latency_ms: float = 0.0          # notes leave this many ms before their beat
                                            # (a synth's latency; -500..500, daemon/latency.py)
    voices: list = field(default_factory=list)     # [[voice]] tables
    cc: dict = field(default_factory=dict)         # [cc] table: control -> CC number


CHOICES = {"mode": ("answer", "continuous", "follow"), "answer_on": ("beat", "bar"),
           "phrase_end": ("silence", "bar"), "clock_source": ("internal", "midi", "link"),
           "realtime": ("auto", "on", "off")}


CONFIGS_PACKAGE = "riffd.configs"           # serve configs (and recipes) shipped as package data


def shipped_serve_configs() -> list[str]:
    """Names of the serve configs that ship with riffd (``serve``, ...): the TOML files of
    ``riffd.configs`` with a ``[serve]`` or ``[[voice]]`` table (the others are recipes)."""
    import importlib.resources
    names = []
    for entry in importlib.resources.files(CONFIGS_PACKAGE).iterdir():
        if entry.name.endswith(".toml"):
            document = tomllib.loads(entry.read_text(encoding="utf-8"))
            if {"serve", "voice"} & set(document):
                names.append(entry.name[:-len(".toml")])
    return sorted(names)


def _config_text(path: str | Path) -> str:
    """A serve config's text: the file at ``path`` when it exists, else the shipped config of
    that name (``serve``, ``serve.toml`` or ``configs/serve.toml`` outside a checkout)."""
    path = Path(path)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    name = path.name[:-len(".toml")] if path.name.endswith(".toml") else path.name
    shipped = shipped_serve_configs()
    if name in shipped and (len(path.parts) == 1 or path.parent.name == "configs"):
        import importlib.resources
        return (importlib.resources.files(CONFIGS_PACKAGE) / f"{name}.toml").read_text(
            encoding="utf-8")
    raise ServeConfigError(f"config {path} does not exist: give the path of a .toml file or "
                           f"the name of a shipped one ({', '.join(shipped)})")


def load_serve_config(path: str | Path | None) -> ServeConfig:
    """Read ``[serve]`` from a TOML file, by path or by the name of a shipped config
    (``serve``), all keys optional; no path gives the defaults."""
    cfg = ServeConfig()
    if path is None:
        return cfg
    try:
        document = tomllib.loads(_config_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ServeConfigError(f"{path} is not valid TOML: {exc}") from None
    table = document.get("serve", {})
    unknown_tables = sorted(set(document) - {"serve", "voice", "cc"})
    if unknown_tables:
        raise ServeConfigError(f"{path}: unknown table [{unknown_tables[0]}]; a serve config has "
                               f"[serve], [[voice]] and [cc]")
    voices = document.get("voice", [])
    if not isinstance(voices, list) or not all(isinstance(v, dict) for v in voices):
        raise ServeConfigError(f"{path}: voices are [[voice]] tables (an array of tables)")
    for i, v in enumerate(voices):
        if not isinstance(v.get("name"), str) or not v["name"]:
            raise ServeConfigError(f"{path}: [[voice]] number {i + 1} needs a name = \"...\"")
    cfg.voices = voices
    cc = document.get("cc", {})
    for control, number in cc.items():
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 119:
            raise ServeConfigError(f"{path}: [cc] {control} must be a CC number 0..119, "
                                   f"got {number!r}")
    cfg.cc = cc
    hints = typing.get_type_hints(ServeConfig)
    known = {f.name for f in fields(ServeConfig)} - {"voices", "cc"}
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
        if key in CHOICES and value not in CHOICES[key]:
            raise ServeConfigError(f"{path}: [serve] {key} must be one of "
                                   f"{', '.join(CHOICES[key])}, got {value!r}")
        setattr(cfg, key, value)
    return cfg
