"""The PortAudio sink: a sounddevice ``OutputStream`` whose callback plays an ``AudioRing``
through :meth:`riffd.daemon.audio_sink.AudioSink.render` (the block logic every sink shares).

riffd uses it for outputs other than a running JACK server (ALSA or PulseAudio on a Linux
desktop, CoreAudio, WASAPI) and for any output named with ``--audio-device``; a JACK server is
played through ``riffd.daemon.audio_jack`` instead, which can re-attach when the server comes back.
PortAudio's own underflow flags are counted in ``device_underflows``.

On PortAudio's JACK device its client is named ``client_name`` (``riffd-audio``), with ports
``riffd-audio:out_0`` / ``out_1`` connected to ``system:playback_*``; the stream's rate must be
the server's, which is the device's default rate (used when ``samplerate`` is None).
"""
from __future__ import annotations

import ctypes
import logging

import numpy as np

from riffd.daemon.audio_sink import NO_DEVICE_HINT, AudioSink, AudioUnavailable

log = logging.getLogger(__name__)

__all__ = ["AudioOutput", "AudioUnavailable", "NO_DEVICE_HINT", "find_output_device",
           "rescan_devices"]
_client_name_buffer = None          # PortAudio keeps the pointer: keep the bytes alive


def _set_jack_client_name(sd, name: str) -> None:
    """Name PortAudio's JACK client (before PortAudio initialises; a no-op off JACK)."""
    global _client_name_buffer
    try:
        lib = ctypes.CDLL(sd._libname)
        setter = lib.PaJack_SetClientName
    except (OSError, AttributeError):
        return
    _client_name_buffer = ctypes.create_string_buffer(name.encode())
    setter.argtypes = [ctypes.c_char_p]
    setter(_client_name_buffer)


def rescan_devices(client_name: str = "riffd-audio"):
    """Import sounddevice and make PortAudio enumerate devices again (it caches them at
    initialisation, so a JACK server started later would not be seen). Returns the module."""
    try:
        import sounddevice as sd
    except OSError as exc:    # the PortAudio library itself is missing
        raise AudioUnavailable(f"PortAudio is not installed ({exc}); install libportaudio2 "
                               "(apt) or portaudio (brew)") from exc
    while sd._initialized:
        sd._terminate()
    _set_jack_client_name(sd, client_name)
    sd._initialize()
    return sd


def find_output_device(sd, device: str | int | None) -> dict:
    """The device dict for a name (substring, as sounddevice matches), an index, or the
    default output; AudioUnavailable with the fix when there is none."""
    try:
        outputs = [d for d in sd.query_devices() if d["max_output_channels"] > 0]
    except sd.PortAudioError as exc:
        raise AudioUnavailable(f"no audio device ({exc}): {NO_DEVICE_HINT}") from exc
    if not outputs:
        raise AudioUnavailable(f"no audio output device: {NO_DEVICE_HINT}")
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    try:
        return dict(sd.query_devices(device, "output"))
    except (ValueError, sd.PortAudioError) as exc:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in outputs)
        raise AudioUnavailable(f"audio device {device!r} is not usable ({exc}); outputs here: "
                               f"{names}. Pick one with --audio-device NAME|INDEX") from exc


class AudioOutput(AudioSink):
    """A running PortAudio output stream fed by ``self.ring`` (mono, copied to every channel),
    a ring of ``ring_seconds`` made by :meth:`open` once the device's rate is known.

    device: name / index / None (default output). samplerate: Hz, None = the device's own
    (the JACK server's). blocksize: frames per callback (0 = PortAudio's choice). latency:
    seconds or ``low`` / ``high``. fade_seconds: stop ramp length.
    """

    backend = "portaudio"

    def __init__(self, device: str | int | None = None, samplerate: int | None = None,
                 blocksize: int = 256, latency: float | str = "low", channels: int = 2,
                 fade_seconds: float = 0.005, ring_seconds: float = 2.0,
                 client_name: str = "riffd-audio"):
        super().__init__(fade_seconds, ring_seconds)
        self.device = device
        self.samplerate = samplerate
        self.blocksize = blocksize
        self.latency = latency
        self.channels = channels
        self.client_name = client_name
        self._stream = None
        self._opened = False             # the stream was started (it then runs until close)
        self._lost = False               # its server went away: PortAudio cannot come back

    # --- control side --------------------------------------------------------------------
    def open(self) -> "AudioOutput":
        """Open and start the stream (silent until :meth:`play`); AudioUnavailable when
        there is no usable output."""
        sd = rescan_devices(self.client_name)
        info = find_output_device(sd, self.device)
        self.device_name = info["name"]
        self._prepare(int(self.samplerate or info["default_samplerate"]))
        self._start_stream(sd, info)
        return self

    def _start_stream(self, sd, info: dict) -> None:
        rate = self.samplerate
        channels = max(1, min(self.channels, info["max_output_channels"]))
        try:
            self._stream = sd.OutputStream(device=info["index"], samplerate=rate,
                                           blocksize=self.blocksize, latency=self.latency,
                                           channels=channels, dtype="float32",
                                           callback=self._callback)
            self._stream.start()
        except sd.PortAudioError as exc:
            self._stream = None
            raise AudioUnavailable(f"cannot open {info['name']!r} at {rate} Hz ({exc}); the "
                                   "rate must be the device's (JACK's) rate: "
                                   f"{NO_DEVICE_HINT}") from exc
        self._opened = True
        log.info("audio output %s at %d Hz, block %s, latency %.1f ms", self.device_name, rate,
                 self.blocksize, 1000 * self._stream.latency)

    @property
    def server_gone(self) -> bool:
        """True when the stream stopped by itself: its server (JACK) went away. The stream
        runs from open() to close() (silence while idle), so it never stops otherwise."""
        return self._lost or (self._stream is not None and self._opened
                              and not self._stream.active)

    def _abandon(self) -> None:
        """Forget a stream whose JACK server died without touching PortAudio: with the
        server gone, PortAudio's abort, close and terminate wait forever (measured with
        PortAudio 19.6 / JACK2 1.9.21). Its exit handler is disarmed for the same reason."""
        import sounddevice as sd
        self._stream = None
        self._opened = False
        sd._initialized = 0

    def reopen(self) -> "AudioOutput":
        """Open the stream again after the audio server (JACK) went away and came back.

        A stream that is still running is kept. One whose server died cannot be re-opened
        in this process: PortAudio would have to be re-initialised (sounddevice's _terminate
        / _initialize, as it caches its devices and its JACK client), and with the old
        server gone PortAudio's terminate waits forever. AudioUnavailable then says to restart
        riffd; the MIDI voices carry on."""
        if self._stream is not None and not self.server_gone:
            return self
        if self._stream is not None:
            self._abandon()
            self._lost = True
        if self._lost:
            raise AudioUnavailable("the audio server (JACK) went away while the audio voice "
                                   "played; PortAudio cannot re-attach to a new server in the "
                                   "same process: restart riffd to get the audio voice back "
                                   "(the MIDI voices carry on)")
        sd = rescan_devices(self.client_name)
        info = find_output_device(sd, self.device)
        rate = int(info["default_samplerate"])
        if self.samplerate and rate != self.samplerate:
            raise AudioUnavailable(f"the audio device came back at {rate} Hz, not "
                                   f"{self.samplerate} Hz: restart riffd")
        self.device_name = info["name"]
        self._start_stream(sd, info)
        return self

    def close(self) -> None:
        """Stop the stream and release PortAudio (its JACK client leaves the graph, and no
        exit handler touches a JACK server that may be gone by then)."""
        if self._stream is not None and self.server_gone:
            self._abandon()
            return
        if self._stream is not None:
            import sounddevice as sd
            try:
                self._stream.stop()
                self._stream.close()
            finally:
                self._stream = None
                while sd._initialized:
                    sd._terminate()

    def __enter__(self) -> "AudioOutput":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def latency_seconds(self) -> float:
        return float(self._stream.latency) if self._stream is not None else 0.0

    @property
    def active(self) -> bool:
        return self._stream is not None and self._stream.active

    @property
    def reason(self) -> str:
        if self.active:
            return ""
        if self._lost or self.server_gone:
            return "the audio server (JACK) went away under PortAudio"
        return "the audio output is closed"

    # --- PortAudio's thread --------------------------------------------------------------
    def _callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:
        """outdata: (frames, channels) float32, filled in place."""
        if status.output_underflow:
            self.device_underflows += 1
        self.render(outdata[:, 0])                                   # (frames,) view
        if outdata.shape[1] > 1:
            outdata[:, 1:] = outdata[:, :1]
