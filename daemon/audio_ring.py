"""A preallocated float32 ring buffer between one producer thread and the audio callback.

Single producer, single consumer, no lock: the producer only moves ``_written`` and the
consumer only moves ``_read`` (both are ever-growing sample counts; an int assignment is
atomic under the GIL), and each side copies samples before publishing its count. The
consumer side (:meth:`read_into`) allocates nothing and never waits: it copies what is there
with numpy slice assignments, fills the rest with silence and counts an underflow.
"""
from __future__ import annotations

import numpy as np


class AudioRing:
    """Mono float32 samples; ``capacity`` in samples (fixed at construction)."""

    def __init__(self, capacity: int):
        if capacity < 2:
            raise ValueError(f"ring capacity must be at least 2 samples, got {capacity}")
        self.capacity = int(capacity)
        self._buffer = np.zeros(self.capacity, dtype=np.float32)
        self._written = 0          # total samples ever written (producer's count)
        self._read = 0             # total samples ever read (consumer's count)
        self.underflows = 0        # reads that found fewer samples than asked for
        self.missing_samples = 0   # silence samples put in their place

    # --- both sides ----------------------------------------------------------------------
    @property
    def fill(self) -> int:
        """Samples written and not yet read."""
        return self._written - self._read

    @property
    def total_read(self) -> int:
        """Samples handed to the device so far (silence put in for underflows not counted)."""
        return self._read

    @property
    def free(self) -> int:
        return self.capacity - self.fill

    # --- producer ------------------------------------------------------------------------
    def write(self, samples: np.ndarray) -> int:
        """Append as many of ``samples`` as fit; returns how many were written."""
        n = min(len(samples), self.free)
        if n <= 0:
            return 0
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._buffer[start:start + first] = samples[:first]
        if n > first:
            self._buffer[:n - first] = samples[first:n]
        self._written += n                 # publish after the copy
        return n

    # --- consumer (the audio callback) ---------------------------------------------------
    def read_into(self, out: np.ndarray, count_underflow: bool = True) -> int:
        """Copy up to ``len(out)`` samples into ``out`` (a 1-D float32 view); silence after.

        Returns the samples copied. A short read counts one underflow when
        ``count_underflow`` (pass False while the stream is intentionally idle).
        """
        frames = len(out)
        n = min(frames, self._written - self._read)
        if n > 0:
            start = self._read % self.capacity
            first = min(n, self.capacity - start)
            out[:first] = self._buffer[start:start + first]
            if n > first:
                out[first:n] = self._buffer[:n - first]
            self._read += n                # publish after the copy
        else:
            n = 0
        if n < frames:
            out[n:] = 0.0
            if count_underflow:
                self.underflows += 1
                self.missing_samples += frames - n
        return n

    def discard(self) -> None:
        """Drop every sample written so far (consumer side: after a fade-out)."""
        self._read = self._written
