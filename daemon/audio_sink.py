"""What every audio sink shares: the ring it plays, play / fade-out requests, and the block
logic its real-time callback runs.

A sink (``riffd.daemon.audio_jack.JackAudioOutput`` on JACK, ``riffd.daemon.audio_output.AudioOutput``
through PortAudio elsewhere) owns one callback thread that calls :meth:`AudioSink.render` once
per block. ``render`` only copies samples out of the ring with numpy slice assignments and
scales them in place with preallocated ramps: no allocation of sample buffers, no lock,
nothing that can wait on the generator. When the ring runs dry while playing, the rest of the
block is silence and the ring counts one underflow.

Playing and stopping are requests the callback picks up at its next block: ``play()`` starts
reading the ring, ``fade_out()`` ramps the output to zero over ``fade_seconds`` (a few ms, no
click), then drops whatever is left in the ring and goes idle (silence, no underflows).
"""
from __future__ import annotations

import numpy as np

from riffd.daemon.audio_ring import AudioRing

NO_DEVICE_HINT = ("start JACK (`jackd -d dummy -r 48000 -p 256`, or your sound card's driver) "
                  "or pick an output with --audio-device NAME|INDEX (`python -m sounddevice` "
                  "lists them)")
MAX_BLOCK = 8192                    # frames: longest block the gain ramp covers sample by sample
_IDLE, _PLAYING, _FADING = 0, 1, 2


class AudioUnavailable(RuntimeError):
    """No usable audio output; the message names the fix. MIDI voices are unaffected."""


class AudioSink:
    """A mono ring (made by :meth:`_prepare` once the output's rate is known) played by a
    callback on the sink's own thread.

    Subclasses open / re-open / close the output and call :meth:`render` from its callback;
    they set ``samplerate`` (Hz), ``blocksize`` (frames), ``device_name`` and count
    ``device_underflows`` (the backend's own underflow flags or xruns).
    fade_seconds: stop ramp length. ring_seconds: ring size.
    """

    backend = "none"

    def __init__(self, fade_seconds: float = 0.005, ring_seconds: float = 2.0):
        self.ring: AudioRing | None = None        # made by _prepare(), at the output's rate
        self.ring_seconds = ring_seconds
        self.fade_seconds = fade_seconds
        self.samplerate: int | None = None
        self.blocksize = 0
        self.device_name = ""
        self.gain = 1.0                  # target gain, written by control, read by the callback
        self.device_underflows = 0       # the backend's underflow flags / xruns
        self.callbacks = 0
        self._want_play = False          # written by control, read by the callback
        self._mode = _IDLE               # owned by the callback
        self._gain_now = 1.0             # owned by the callback
        self._fade_pos = 0

    def _prepare(self, rate: int) -> None:
        """Allocate the ring and the ramps for ``rate`` Hz (before the callback runs)."""
        self.samplerate = int(rate)
        fade_len = max(1, int(self.fade_seconds * rate))
        self.ring = AudioRing(int(self.ring_seconds * rate))
        self._fade = np.linspace(1.0, 0.0, fade_len, endpoint=False).astype(np.float32)
        self._ramp = np.arange(MAX_BLOCK, dtype=np.float32)       # 0, 1, … for gain ramps
        self._scratch = np.zeros(MAX_BLOCK, dtype=np.float32)

    # --- control side --------------------------------------------------------------------
    def play(self) -> None:
        """Start reading the ring at the next block."""
        self._want_play = True

    def fade_out(self) -> None:
        """Ramp to silence over ``fade_seconds``, then drop the ring's content and go idle."""
        self._want_play = False

    @property
    def idle(self) -> bool:
        return self._mode == _IDLE

    @property
    def playing(self) -> bool:
        return self._mode == _PLAYING

    @property
    def active(self) -> bool:
        """True while the callback runs (the output is open and its server is there)."""
        raise NotImplementedError

    @property
    def server_gone(self) -> bool:
        """True when the output stopped because its audio server (JACK) went away."""
        raise NotImplementedError

    def release(self) -> None:
        """Let go of what a dead output still holds, before anything else re-opens
        (a no-op unless the backend needs it)."""

    @property
    def reason(self) -> str:
        """Why the output is not running ("" while it is)."""
        return "" if self.active else "the audio output is closed"

    # --- the callback's thread -------------------------------------------------------------
    def render(self, out: np.ndarray) -> None:
        """Fill one block: ``out`` is a (frames,) float32 view written in place (the first
        channel; the sink copies it to the others)."""
        self.callbacks += 1
        frames = len(out)
        mode = self._mode
        if mode == _IDLE and self._want_play:
            mode = _PLAYING
            self._gain_now = self.gain
        elif mode == _PLAYING and not self._want_play:
            mode, self._fade_pos = _FADING, 0
        if mode == _IDLE:
            out.fill(0.0)
            self._mode = mode
            return
        self.ring.read_into(out, count_underflow=mode == _PLAYING)
        target, now = self.gain, self._gain_now
        if target != now:                                            # linear gain ramp
            if frames <= len(self._ramp):
                ramp = self._scratch[:frames]
                np.multiply(self._ramp[:frames], (target - now) / frames, out=ramp)
                ramp += now
                out *= ramp
            else:
                out *= target
            self._gain_now = target
        elif now != 1.0:
            out *= now
        if mode == _FADING:
            pos = self._fade_pos
            k = min(frames, len(self._fade) - pos)
            out[:k] *= self._fade[pos:pos + k]
            out[k:] = 0.0
            self._fade_pos = pos + k
            if self._fade_pos >= len(self._fade):
                mode = _IDLE
                self.ring.discard()
        self._mode = mode
