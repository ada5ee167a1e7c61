"""The audio voice: one thread that keeps the output ring filled with generated audio.

Per chunk: the spectral generator makes one frame (model step → inverse FFT → overlap-add,
``hop`` samples at the model's rate), a streaming polyphase resampler takes it to the device's
rate, and the samples go into the ring. The thread generates while the ring holds less than
``high_water`` seconds and then sleeps until it falls to ``low_water``; the callback side
(``riffd.daemon.audio_sink``: JACK or PortAudio) never waits on it.

The thread applies the process's torch thread count to itself as it starts: OpenMP and MKL
keep that count per thread, so a new thread would otherwise run every small op on a team of
one thread per core that spin-waits at each barrier (measured here: 10× the CPU time per
frame, the daemon's real-time factor of 12× against 130–220× offline).

``start()`` pre-fills the ring to the high-water mark before the output starts reading (so the
first block does not underflow); ``stop()`` fades out in a few ms. ``seed()`` primes the
generator with a clip (file path or float samples) and continues from it.
"""
from __future__ import annotations

import logging
import threading
import time
from math import gcd

import numpy as np

from riffd.daemon.audio_sink import AudioSink

log = logging.getLogger(__name__)


def _adopt_torch_threads() -> None:
    """Give the calling thread the process's torch thread count (``torch.set_num_threads`` in
    the main thread does not reach OpenMP's and MKL's per-thread settings of other threads)."""
    try:
        import torch
    except ImportError:          # a generator without torch (tests' stand-ins)
        return
    torch.set_num_threads(torch.get_num_threads())


class StreamingResampler:
    """Polyphase resampling chunk by chunk, equal to one ``upfirdn`` over the whole stream.

    Uses the filter ``scipy.signal.resample_poly`` designs (Kaiser window, β = 5, half length
    10 × max(up, down)), applied causally: output lags by half the filter (under 1 ms for
    16 → 48 kHz). Input is consumed in multiples of ``down`` samples; the rest waits.
    """

    def __init__(self, source_rate: int, target_rate: int):
        from scipy.signal import firwin, upfirdn
        g = gcd(int(source_rate), int(target_rate))
        self.up, self.down = int(target_rate) // g, int(source_rate) // g
        self._upfirdn = upfirdn
        if self.up == self.down == 1:
            self._taps = None
            return
        half = 10 * max(self.up, self.down)
        self._taps = firwin(2 * half + 1, 1.0 / max(self.up, self.down),
                            window=("kaiser", 5.0)) * self.up
        history = -(-(len(self._taps) - 1) // self.up)                 # input samples needed
        self._history_len = -(-history // self.down) * self.down        # a multiple of down
        self.reset()

    def reset(self) -> None:
        if self._taps is not None:
            self._history = np.zeros(self._history_len)
            self._pending = np.zeros(0)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Samples at the source rate → float32 samples at the target rate."""
        if self._taps is None:
            return np.asarray(chunk, dtype=np.float32)
        x = np.concatenate([self._pending, np.asarray(chunk, dtype=np.float64)])
        usable = len(x) // self.down * self.down
        self._pending = x[usable:]
        if usable == 0:
            return np.zeros(0, dtype=np.float32)
        block = np.concatenate([self._history, x[:usable]])
        y = self._upfirdn(self._taps, block, self.up, self.down)
        first = self._history_len * self.up // self.down
        out = y[first:first + usable * self.up // self.down]
        self._history = block[len(block) - self._history_len:]
        return out.astype(np.float32)


class AudioVoice:
    """Streams a spectral generator into ``output``'s ring from its own thread.

    generator: ``riffd.engine.spectral_generator.SpectralGenerator`` (``next_frame``, ``prime``,
    ``sample_rate``, ``hop``). low_water / high_water: seconds of audio kept buffered.
    """

    def __init__(self, generator, output: AudioSink, low_water: float = 0.25,
                 high_water: float = 0.5):
        if not 0 < low_water < high_water:
            raise ValueError(f"need 0 < low_water ({low_water} s) < high_water ({high_water} s)")
        self.generator = generator
        self.output = output
        self.ring = output.ring
        self.rate = int(output.samplerate)
        self.low = int(low_water * self.rate)
        self.high = int(high_water * self.rate)
        chunk = int(np.ceil(generator.hop * self.rate / generator.sample_rate)) + 1
        if self.high + chunk > self.ring.capacity:
            raise ValueError(f"the ring ({self.ring.capacity} samples) cannot hold the high-water "
                             f"mark ({self.high}) plus one chunk ({chunk}); make it bigger")
        self.resampler = StreamingResampler(generator.sample_rate, self.rate)
        self.frames_generated = 0
        self.seconds_generated = 0.0          # at the model's rate
        self.compute_seconds = 0.0            # wall s in generate + resample (waits included)
        self.cpu_seconds = 0.0                # this thread's CPU s in generate + resample
        self._lock = threading.Lock()         # guards _pending_seed and _active
        self._pending_seed: np.ndarray | None = None
        self._active = False
        self._primed_once = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    # --- lifetime -------------------------------------------------------------------------
    def open(self) -> "AudioVoice":
        """Start the generation thread (idle until :meth:`start`)."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="riffd-audio-voice",
                                            daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Fade out and end the thread."""
        self.stop()
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # --- control (any thread) -------------------------------------------------------------
    def start(self) -> None:
        """Generate ahead, then play (the output starts once the ring reaches high water)."""
        with self._lock:
            self._active = True
        self._wake.set()

    def stop(self, wait: float = 0.1) -> None:
        """Fade out (``output.fade_seconds``) and stop generating; waits up to ``wait`` s
        for the fade to finish."""
        with self._lock:
            self._active = False
        self.output.fade_out()
        deadline = time.monotonic() + wait
        while not self.output.idle and self.output.active and time.monotonic() < deadline:
            time.sleep(0.002)

    def seed(self, samples: np.ndarray, sample_rate: int) -> float:
        """Prime the generator with mono float samples at ``sample_rate`` Hz (resampled to
        the model's rate); returns the seed's length in seconds. Playing voices fade out,
        then continue from the seed."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not x.size:
            raise ValueError("the seed clip is empty")
        if not np.isfinite(x).all():
            raise ValueError("the seed clip holds NaN or infinite samples")
        if int(sample_rate) != self.generator.sample_rate:
            from scipy.signal import resample_poly
            g = gcd(int(sample_rate), self.generator.sample_rate)
            x = resample_poly(x, self.generator.sample_rate // g, int(sample_rate) // g)
        with self._lock:
            self._pending_seed = x.astype(np.float32)
            was_active = self._active
        if was_active:
            self.output.fade_out()
        self._wake.set()
        return len(x) / self.generator.sample_rate

    def status(self) -> dict:
        """Counters for ``status`` replies."""
        return {
            "running": self._active,
            "playing": self.output.playing,
            "underflows": self.ring.underflows,
            "device_underflows": self.output.device_underflows,
            "buffer_seconds": round(self.ring.fill / self.rate, 4),
            "real_time_factor": (round(self.seconds_generated / self.compute_seconds, 1)
                                 if self.compute_seconds else None),
            "real_time_factor_cpu": (round(self.seconds_generated / self.cpu_seconds, 1)
                                     if self.cpu_seconds else None),
            "frames_generated": self.frames_generated,
            "seconds_generated": round(self.seconds_generated, 3),
            "seconds_played": round(self.ring.total_read / self.rate, 3),
            "gain": self.output.gain,
            "error": self.error,
        }

    # --- the thread -----------------------------------------------------------------------
    def _generate_chunk(self) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        samples = self.resampler.process(self.generator.next_frame())
        self.compute_seconds += time.perf_counter() - started
        self.cpu_seconds += time.thread_time() - cpu
        self.frames_generated += 1
        self.seconds_generated += self.generator.hop / self.generator.sample_rate
        self.ring.write(samples)

    def _take_seed(self) -> None:
        with self._lock:
            seed, self._pending_seed = self._pending_seed, None
        if seed is None:
            return
        deadline = time.monotonic() + 0.2                     # let a fade-out finish
        while not self.output.idle and self.output.active and time.monotonic() < deadline:
            time.sleep(0.002)
        self.generator.prime(seed)
        self.resampler.reset()
        self._primed_once = True

    def _run(self) -> None:
        try:
            _adopt_torch_threads()
            while not self._stopping.is_set():
                self._take_seed()
                with self._lock:
                    active = self._active
                if not active:
                    self._wake.wait(0.05)
                    self._wake.clear()
                    continue
                if not self.output.playing and not self.output.idle:
                    time.sleep(0.002)                         # a fade is still running
                    continue
                if self.ring.fill < self.high:
                    self._generate_chunk()
                    continue
                if not self.output.playing:
                    self.output.play()                        # pre-filled: start reading
                # sleep until the ring is down to the low-water mark
                wait = (self.ring.fill - self.low) / self.rate
                self._wake.wait(min(max(wait, 0.001), 0.05))
                self._wake.clear()
        except Exception as exc:        # keep the daemon up; report through status()
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("the audio voice stopped")
            self.output.fade_out()
