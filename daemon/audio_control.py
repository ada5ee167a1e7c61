"""The audio side of the daemon behind one small API: load a spectral model, open the output,
run the audio voice, answer control commands.

    controller = AudioController(model_path=None, device=None, blocksize=256,
                                 latency="low", torch_device="cpu", client_name="riffd-audio")
    controller.open()                  # AudioUnavailable (with the fix) when there is no device
    controller.watch()                 # main loop, every 0.25 s: re-attach after a JACK restart
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

The output: with no ``device`` and a JACK server running, riffd's own JACK client
``client_name`` (``riffd.daemon.audio_jack``), which re-attaches when the server comes back; any other
output (``device`` given, or no JACK server) through PortAudio (``riffd.daemon.audio_output``).
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from riffd.daemon.audio_jack import JackAudioOutput, JackServerMissing
from riffd.daemon.audio_output import AudioOutput
from riffd.daemon.audio_sink import AudioSink, AudioUnavailable
from riffd.daemon.audio_voice import AudioVoice
from riffd.engine.checkpoint import CheckpointError, ModelLimits
from riffd.engine.safe_files import MB, FileRefused, open_regular

log = logging.getLogger(__name__)

BUNDLED_SPECTRAL_MODEL = (Path(__file__).resolve().parent.parent / "engine" / "models"
                          / "spectral_default.safetensors")
MAX_GAIN, MIN_DB, MAX_DB = 2.0, -60.0, 6.0
MAX_SEED_SECONDS = 60.0
MAX_SEED_FILE_BYTES = 64 * MB       # a minute of 96 kHz stereo float32 WAV is 46 MB
REOPEN_EVERY_S = 0.5                # while the audio server is gone, try to re-attach this often
MIN_SEED_RATE, MAX_SEED_RATE = 4000, 192000
COMMANDS = ("audio_start", "audio_stop", "audio_seed", "audio_gain", "audio_status")

__all__ = ["AudioController", "AudioCommandError", "AudioUnavailable", "COMMANDS"]


class AudioCommandError(ValueError):
    """An audio command's arguments are wrong, or the audio side is not open."""


def read_clip(path: str | Path) -> tuple[np.ndarray, int]:
    """Read the last MAX_SEED_SECONDS of an audio file (WAV, FLAC, OGG, MP3 where libsndfile
    can) as mono float32 and its rate in Hz. Only a regular file of at most
    MAX_SEED_FILE_BYTES is opened (a FIFO or a device is refused at once, never waited on);
    AudioCommandError naming the file and the fix otherwise."""
    import soundfile as sf
    try:
        f = open_regular(path, MAX_SEED_FILE_BYTES,
                         "trim the clip to a minute or less, or send samples")
    except FileRefused as exc:
        raise AudioCommandError(f"seed file refused: {exc} (give a WAV, FLAC or OGG file "
                                "the daemon can read, or send samples)") from None
    try:
        with f, sf.SoundFile(f) as clip:
            rate = int(clip.samplerate)
            keep = int(MAX_SEED_SECONDS * rate)          # the model needs the end only
            if clip.frames > keep and clip.seekable():
                clip.seek(clip.frames - keep)
            data = clip.read(keep, dtype="float32", always_2d=True)     # (S, channels)
    except (RuntimeError, TypeError, ValueError, OSError) as exc:   # LibsndfileError too
        raise AudioCommandError(f"seed file {str(path)!r} cannot be read as audio ({exc}); "
                                "use WAV, FLAC or OGG") from None
    return data.mean(axis=1), rate


class AudioController:
    """The audio voice of ``riffd serve``: model → voice thread → ring → output stream.

    model_path: a spectral_lstm checkpoint (None = the bundled one), checked against
    ``limits`` (file size, parameter count) like a MIDI voice's. device: a PortAudio output name
    or index (None = riffd's own JACK client when a JACK server runs, else PortAudio's default
    output). blocksize: frames per PortAudio callback (JACK's period on JACK). latency: seconds
    or ``low`` / ``high`` (PortAudio). torch_device: ``cpu``, ``cuda``, ``auto``.
    client_name: the JACK client's name (riffd's ``--client-name`` + ``-audio``).
    """

    def __init__(self, model_path: str | None, device: str | int | None, blocksize: int,
                 latency: float | str, torch_device: str, client_name: str = "riffd-audio",
                 limits: ModelLimits | None = None):
        self.model_path = Path(model_path) if model_path else BUNDLED_SPECTRAL_MODEL
        self.device = device
        self.blocksize = blocksize
        self.latency = latency
        self.torch_device = torch_device
        self.client_name = client_name
        self.limits = limits or ModelLimits()
        self.output: AudioSink | None = None
        self.voice: AudioVoice | None = None
        self.generator = None
        self.unavailable: str | None = None     # why the output is off, for status()
        self.losses = 0                         # times the output's server went away
        self._lost_at: float | None = None      # monotonic s when it went away
        self._next_reopen = 0.0                 # monotonic s of the next re-attach try

    def open(self) -> "AudioController":
        """Load the model and open the output; AudioUnavailable when there is no device
        (the model is loaded first, so a bad checkpoint is reported as such)."""
        from riffd.engine.devices import resolve_device
        from riffd.engine.loading import WrongKindError, load_model
        from riffd.engine.spectral_generator import SpectralGenerator
        try:
            model, metadata = load_model(self.model_path, self.limits, kind="audio")
        except WrongKindError as exc:
            raise CheckpointError(f"{exc}: --audio-model needs a spectral_lstm checkpoint (a "
                                  "MIDI model goes to --model or add_voice)") from None
        if metadata.get("family") != SpectralGenerator.family:
            raise CheckpointError(f"{self.model_path} is a {metadata.get('family')} model; "
                                  "--audio-model needs a spectral_lstm checkpoint")
        self.generator = SpectralGenerator.from_metadata(model, metadata,
                                                         resolve_device(self.torch_device))
        self.generator.path = self.model_path
        try:
            output = self._open_output()
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

    def _open_output(self) -> AudioSink:
        """riffd's own JACK client when no device is named and a JACK server runs; PortAudio
        otherwise (a named device, or no JACK server: ALSA, CoreAudio, WASAPI...)."""
        if self.device is None:
            try:
                return JackAudioOutput(self.client_name).open()
            except JackServerMissing as exc:
                log.info("audio output: %s; trying PortAudio's default output", exc)
        return AudioOutput(self.device, blocksize=self.blocksize, latency=self.latency,
                           client_name=self.client_name).open()

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
        output = self.output
        if output is None:
            raise AudioUnavailable(self.unavailable or "the audio output was never opened")
        try:
            output.reopen()
        except AudioUnavailable as exc:
            self.unavailable = f"{output.reason}: {exc}" if output.reason else str(exc)
            raise
        self.unavailable = None

    def watch(self, may_reopen: bool = True) -> str | None:
        """The daemon's main loop calls this every 0.25 s: notice that the output's server
        went away (say so once, and release the dead client at once) and try to re-attach
        every REOPEN_EVERY_S seconds, under the same client and port names. ``may_reopen``
        False holds the re-attach back (the process's other JACK clients still hold dead
        clients: see daemon.audio_jack). Returns "lost" or "back" on a change, else None."""
        output = self.output
        if output is None:
            return None
        now = time.monotonic()
        if output.active:
            if self._lost_at is None:
                return None
            log.info("audio output back as %s after %.1f s", ", ".join(
                getattr(output, "port_names", []) or [output.device_name]), now - self._lost_at)
            self._lost_at, self.unavailable = None, None
            return "back"
        if not output.server_gone:
            return None                          # closed on purpose
        output.release()
        if self._lost_at is None:
            self._lost_at, self._next_reopen = now, now + REOPEN_EVERY_S
            self.losses += 1
            self.unavailable = (f"{output.reason}; riffd tries to re-attach the audio voice every "
                                f"{REOPEN_EVERY_S:g} s: start the JACK server again (same name) "
                                "and it carries on; the MIDI voices are not affected")
            log.error("audio voice: %s", self.unavailable)
            return "lost"
        if now < self._next_reopen or not may_reopen:
            return None
        self._next_reopen = now + REOPEN_EVERY_S
        try:
            output.reopen()
        except JackServerMissing as exc:         # still gone: keep saying so, try again
            log.debug("audio output not back yet: %s", exc)
            return None
        except AudioUnavailable as exc:          # back, but unusable: say why and how to fix
            message = f"{output.reason}: {exc}"
            if message != self.unavailable:
                log.error("audio voice: %s", message)
            self.unavailable = message
            return None
        return self.watch()

    @property
    def alive(self) -> bool:
        """True while the output runs."""
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
        gen, output = self.generator, self.output
        voice = self.voice.status()
        alive = output.active
        if alive:
            lost = {"alive": True}
        else:
            voice["playing"] = False                 # nothing sounds while the output is down
            lost = {"alive": False,
                    "error": self.unavailable or output.reason or "the audio output is down"}
        return {"enabled": True, "backend": output.backend, "device": output.device_name,
                "ports": list(getattr(output, "port_names", [])),
                "sample_rate": output.samplerate, "blocksize": output.blocksize,
                "latency_seconds": round(output.latency_seconds, 4),
                "model": str(self.model_path), "model_sample_rate": gen.sample_rate,
                "frame_seconds": gen.hop / gen.sample_rate, "losses": self.losses,
                **voice, **lost}

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
