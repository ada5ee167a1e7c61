"""The audio side of the daemon behind one small API: load a spectral model, open the output,
run the audio voice, answer control commands.

    controller = AudioController(model_path=None, device=None, blocksize=256,
                                 latency="low", torch_device="cpu")
    controller.open()                  # AudioUnavailable (with the fix) when there is no device
    controller.handle("audio_start", {})
    controller.handle("audio_gain", {"db": -6})
    controller.status()
    controller.close()

Commands (``handle(cmd, args) -> dict``; bad arguments raise ``AudioCommandError`` with a
message that names the argument and its range):

  audio_start   {}                                   generate ahead, then play
  audio_stop    {}                                   fade out (5 ms) and stop generating
  audio_seed    {"path": str} | {"samples": [float], "sample_rate": int}
                                                     continue from this clip (mono or mixed)
  audio_gain    {"gain": float 0–2} | {"db": float -60–6}   output gain, ramped over a block
  audio_status  {}                                   the same dict as status()
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from daemon.audio_output import AudioOutput, AudioUnavailable
from daemon.audio_voice import AudioVoice

log = logging.getLogger(__name__)

BUNDLED_SPECTRAL_MODEL = (Path(__file__).resolve().parent.parent / "engine" / "models"
                          / "spectral_default.safetensors")
MAX_GAIN, MIN_DB, MAX_DB = 2.0, -60.0, 6.0
MAX_SEED_SECONDS = 60.0
MIN_SEED_RATE, MAX_SEED_RATE = 4000, 192000
COMMANDS = ("audio_start", "audio_stop", "audio_seed", "audio_gain", "audio_status")

__all__ = ["AudioController", "AudioCommandError", "AudioUnavailable", "COMMANDS"]


class AudioCommandError(ValueError):
    """An audio command's arguments are wrong, or the audio side is not open."""


def read_clip(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file (WAV, FLAC, OGG, MP3 where libsndfile can) as mono float32 and its
    rate in Hz; AudioCommandError naming the file when it cannot be read."""
    import soundfile as sf
    path = Path(path)
    if not path.is_file():
        raise AudioCommandError(f"seed file {str(path)!r} does not exist (give a path the "
                                "daemon can read, or send samples)")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)   # (S, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioCommandError(f"seed file {str(path)!r} cannot be read as audio ({exc}); "
                                "use WAV, FLAC or OGG") from exc
    return data.mean(axis=1), int(rate)


class AudioController:
    """The audio voice of ``riffd serve``: model → voice thread → ring → output stream.

    model_path: a spectral_lstm checkpoint (None = the bundled one). device: output name or
    index (None = the default output, JACK when it runs). blocksize: frames per callback.
    latency: seconds or ``low`` / ``high``. torch_device: ``cpu``, ``cuda``, ``auto``.
    """

    def __init__(self, model_path: str | None, device: str | None, blocksize: int,
                 latency: float | str, torch_device: str):
        self.model_path = Path(model_path) if model_path else BUNDLED_SPECTRAL_MODEL
        self.device = device
        self.blocksize = blocksize
        self.latency = latency
        self.torch_device = torch_device
        self.output: AudioOutput | None = None
        self.voice: AudioVoice | None = None
        self.generator = None
        self.unavailable: str | None = None     # why open() found no device, for status()

    def open(self) -> "AudioController":
        """Load the model and open the output; AudioUnavailable when there is no device
        (the model is loaded first, so a bad checkpoint is reported as such)."""
        from engine.devices import resolve_device
        from engine.loading import load_model
        from engine.spectral_generator import SpectralGenerator
        model, metadata = load_model(self.model_path)
        if metadata.get("family") != SpectralGenerator.family:
            raise ValueError(f"{self.model_path} is a {metadata.get('family')} model; "
                             "--audio-model needs a spectral_lstm checkpoint")
        self.generator = SpectralGenerator.from_metadata(model, metadata,
                                                         resolve_device(self.torch_device))
        self.generator.path = self.model_path
        output = AudioOutput(self.device, blocksize=self.blocksize, latency=self.latency)
        try:
            output.open()
        except AudioUnavailable as exc:
            self.unavailable = str(exc)
            raise
        self.output, self.unavailable = output, None
        try:
            self.voice = AudioVoice(self.generator, self.output).open()
        except Exception:
            self.output.close()
            raise
        return self

    def close(self) -> None:
        """Fade out, end the voice thread, close the stream."""
        try:
            if self.voice is not None:
                self.voice.close()
        finally:
            self.voice = None
            if self.output is not None:
                self.output.close()
                self.output = None

    def reopen(self) -> None:
        """Reconnect the output after the audio server came back (the voice carries on);
        AudioUnavailable while it is still missing."""
        if self.output is None:
            raise AudioUnavailable(self.unavailable or "the audio output was never opened")
        try:
            self.output.reopen()
        except AudioUnavailable as exc:
            self.unavailable = str(exc)
            raise
        self.unavailable = None

    @property
    def alive(self) -> bool:
        """True while the output stream runs."""
        return self.output is not None and self.output.active

    @property
    def server_gone(self) -> bool:
        """True when the output's audio server (JACK) went away."""
        return self.output is not None and self.output.server_gone

    def __enter__(self) -> "AudioController":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- commands -------------------------------------------------------------------------
    def handle(self, cmd: str, args: dict) -> dict:
        """Run one audio command; returns a reply dict (see the module docstring)."""
        if cmd not in COMMANDS:
            raise AudioCommandError(f"unknown audio command {cmd!r}; known: {', '.join(COMMANDS)}")
        if self.voice is None:
            raise AudioCommandError("the audio voice is not running (no audio device, or "
                                    "riffd serve was started without audio)")
        args = args or {}
        if cmd == "audio_start":
            self._no_args(cmd, args)
            self.voice.start()
        elif cmd == "audio_stop":
            self._no_args(cmd, args)
            self.voice.stop()
        elif cmd == "audio_seed":
            return {"seed_seconds": round(self._seed(args), 3), **self.status()}
        elif cmd == "audio_gain":
            self.output.gain = self._gain(args)
        else:
            self._no_args(cmd, args)
        return self.status()

    def status(self) -> dict:
        """Audio state: device, rates, buffer, underflows, real-time factor…"""
        if self.voice is None or self.output is None:
            return {"enabled": False, "error": self.unavailable}
        gen = self.generator
        lost = ({"alive": False, "error": self.unavailable or "the audio server went away"}
                if self.unavailable or self.output.server_gone else {"alive": True})
        return {"enabled": True, "device": self.output.device_name,
                "sample_rate": self.output.samplerate, "blocksize": self.output.blocksize,
                "latency_seconds": round(self.output.latency_seconds, 4),
                "model": str(self.model_path), "model_sample_rate": gen.sample_rate,
                "frame_seconds": gen.hop / gen.sample_rate, **self.voice.status(), **lost}

    @staticmethod
    def _no_args(cmd: str, args: dict) -> None:
        if args:
            raise AudioCommandError(f"{cmd} takes no arguments, got {', '.join(sorted(args))}")

    def _seed(self, args: dict) -> float:
        unknown = set(args) - {"path", "samples", "sample_rate"}
        if unknown:
            raise AudioCommandError(f"audio_seed has no argument {', '.join(sorted(unknown))}; "
                                    "give path, or samples and sample_rate")
        if ("path" in args) == ("samples" in args):
            raise AudioCommandError("audio_seed needs exactly one of path (an audio file) or "
                                    "samples (a list of floats, with sample_rate)")
        if "path" in args:
            if not isinstance(args["path"], str) or not args["path"]:
                raise AudioCommandError("audio_seed path must be a non-empty string")
            samples, rate = read_clip(args["path"])
        else:
            samples, rate = args["samples"], args.get("sample_rate")
            if isinstance(rate, bool) or not isinstance(rate, int) or not (
                    MIN_SEED_RATE <= rate <= MAX_SEED_RATE):
                raise AudioCommandError(f"audio_seed sample_rate must be a whole number of Hz "
                                        f"from {MIN_SEED_RATE} to {MAX_SEED_RATE}, got {rate!r}")
            if not isinstance(samples, list) or not samples or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in samples):
                raise AudioCommandError("audio_seed samples must be a non-empty list of numbers "
                                        "(mono, -1.0 to 1.0)")
            samples = np.asarray(samples, dtype=np.float32)
        if len(samples) > MAX_SEED_SECONDS * rate:
            samples = samples[-int(MAX_SEED_SECONDS * rate):]   # the model needs the end only
        try:
            return self.voice.seed(samples, rate)
        except ValueError as exc:
            raise AudioCommandError(f"audio_seed: {exc}") from exc

    @staticmethod
    def _gain(args: dict) -> float:
        if set(args) not in ({"gain"}, {"db"}):
            raise AudioCommandError("audio_gain needs exactly one of gain (0–2, linear) or "
                                    "db (-60–6 dB)")
        (key, value), = args.items()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise AudioCommandError(f"audio_gain {key} must be a number, got {value!r}")
        if key == "gain":
            if not 0.0 <= value <= MAX_GAIN:
                raise AudioCommandError(f"audio_gain gain must be from 0 to {MAX_GAIN}, got {value}")
            return float(value)
        if not MIN_DB <= value <= MAX_DB:
            raise AudioCommandError(f"audio_gain db must be from {MIN_DB} to {MAX_DB}, got {value}")
        return float(10 ** (value / 20))
