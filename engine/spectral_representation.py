"""Audio as a sequence of spectral frames: the representation of the spectral LSTM family.

A frame is ``frame_size`` samples (N; 4000 at 16 kHz = 0.25 s by default, as the document).
Its FFT is unrolled into one real vector, the real parts followed by the imaginary parts:

* ``full``: the document's form, all N bins → a 2N vector (8000 values for N = 4000);
* ``half``: the real FFT (``rfft``), N // 2 + 1 bins → 2 (N // 2 + 1) values, about half as
  many, with no redundant mirrored bins.

Frames either follow each other without overlap and without a window (the documents' blocks;
``hop == frame_size``), or overlap by ``frame_size - hop`` samples with a square-root Hann
window at analysis and again at synthesis (overlap-add). With hop = N / 2 the two windows
multiply to a Hann window whose shifted copies sum to one, so reconstruction is exact and
generated frames cross-fade instead of clicking at block edges.

Two forms of vector (``form``):

* ``fft``: the documents' raw FFT above (exact round trip; a model that predicts the mean
  of real and imaginary parts whose phases it cannot know predicts values near zero, and its
  free-running output fades to a quiet drone);
* ``logmag``: the log magnitude ``ln(|X| + LOG_FLOOR)`` of each bin, ``bins`` values, no phase.
  Phase is made at synthesis by a phase vocoder (:class:`PhaseVocoder`): each bin's phase
  advances by its centre frequency times the hop, from random start phases. O(1) per frame.

Vectors are normalised per dimension (``(v - mean) / std``); the mean and std are measured on
the training data and stored in the checkpoint's metadata (``representation``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SPECTRA = ("full", "half")
FORMS = ("fft", "logmag")
LOG_FLOOR = 1e-3         # added to |X| before the log (|X| of a full-scale 0.25 s sine is ~1000)
_STD_FLOOR = 1e-6        # dimensions that never vary (the imaginary part of DC) stay finite


@dataclass(frozen=True)
class SpectralSettings:
    """How samples become vectors.

    sample_rate: Hz. frame_size: N samples per frame. hop: samples between frame starts
    (``frame_size`` = no overlap, rectangular frames; ``frame_size // 2`` = windowed
    overlap-add). spectrum: ``full`` (2N values) or ``half`` (2 (N // 2 + 1) values).
    form: ``fft`` (real and imaginary parts) or ``logmag`` (log magnitude, one value per bin;
    ``half`` only).
    """

    sample_rate: int = 16000
    frame_size: int = 4000
    hop: int = 4000
    spectrum: str = "full"
    form: str = "fft"

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}, got {self.form!r}")
        if self.form == "logmag" and self.spectrum != "half":
            raise ValueError("the logmag form needs spectrum = \"half\" (a full spectrum's "
                             "magnitudes are mirrored copies)")
        if self.spectrum not in SPECTRA:
            raise ValueError(f"spectrum must be one of {', '.join(SPECTRA)}, got {self.spectrum!r}")
        if self.sample_rate <= 0 or self.frame_size < 4:
            raise ValueError(f"sample_rate ({self.sample_rate} Hz) must be positive and "
                             f"frame_size ({self.frame_size} samples) at least 4")
        if self.hop not in (self.frame_size, self.frame_size // 2) or self.frame_size % 2:
            raise ValueError(f"hop must be frame_size ({self.frame_size}, no overlap) or "
                             f"frame_size // 2 (windowed overlap-add) with an even frame_size; "
                             f"got hop {self.hop}")

    @property
    def overlap(self) -> bool:
        return self.hop != self.frame_size

    @property
    def bins(self) -> int:
        return self.frame_size if self.spectrum == "full" else self.frame_size // 2 + 1

    @property
    def dim(self) -> int:
        """Length D of one vector (real parts then imaginary parts, or log magnitudes)."""
        return self.bins if self.form == "logmag" else 2 * self.bins

    @property
    def hop_seconds(self) -> float:
        return self.hop / self.sample_rate

    def window(self) -> np.ndarray:
        """Analysis (= synthesis) window, float64 (N,): ones, or the square root of a
        periodic Hann window."""
        if not self.overlap:
            return np.ones(self.frame_size)
        n = np.arange(self.frame_size)
        return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * n / self.frame_size))


class SpectralCodec:
    """Encode samples to normalised vectors and decode vectors back to samples.

    ``mean`` and ``std`` are (D,) arrays; None means identity (before they are measured).
    """

    def __init__(self, settings: SpectralSettings, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None):
        self.settings = settings
        d = settings.dim
        self.mean = np.zeros(d) if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = np.ones(d) if std is None else np.maximum(np.asarray(std, np.float64), _STD_FLOOR)
        if self.mean.shape != (d,) or self.std.shape != (d,):
            raise ValueError(f"normalisation must have {d} values per array for these settings "
                             f"({settings.spectrum} spectrum of {settings.frame_size} samples), "
                             f"got {self.mean.shape} and {self.std.shape}")
        self._window = settings.window()

    # --- metadata -------------------------------------------------------------------------
    def to_metadata(self) -> dict:
        """The ``representation`` entry of a checkpoint's metadata."""
        return {"name": "spectral_frames", **asdict(self.settings),
                "mean": [float(f"{v:.7g}") for v in self.mean],
                "std": [float(f"{v:.7g}") for v in self.std]}

    @classmethod
    def from_metadata(cls, rep: dict) -> "SpectralCodec":
        settings = SpectralSettings(sample_rate=int(rep["sample_rate"]),
                                    frame_size=int(rep["frame_size"]), hop=int(rep["hop"]),
                                    spectrum=rep["spectrum"], form=rep.get("form", "fft"))
        return cls(settings, np.array(rep["mean"]), np.array(rep["std"]))

    def fit(self, vectors: np.ndarray) -> None:
        """Measure mean and std per dimension on raw (unnormalised) vectors (T, D)."""
        self.mean = vectors.mean(axis=0).astype(np.float64)
        self.std = np.maximum(vectors.std(axis=0).astype(np.float64), _STD_FLOOR)

    # --- samples ↔ frames -----------------------------------------------------------------
    def frames(self, samples: np.ndarray) -> np.ndarray:
        """Cut mono samples (S,) into windowed frames (T, N), zero-padding the end.

        With overlap, ``frame_size - hop`` zeros are put before the first and after the last
        sample so that every sample is covered by two frames; :meth:`decode` removes them again.
        """
        s = self.settings
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        if s.overlap:
            pad = np.zeros(s.frame_size - s.hop)
            x = np.concatenate([pad, x, pad])
        count = max(1, -(-(len(x) - s.frame_size) // s.hop) + 1) if len(x) > s.frame_size else 1
        padded = np.zeros((count - 1) * s.hop + s.frame_size)
        padded[:len(x)] = x
        starts = np.arange(count) * s.hop
        index = starts[:, None] + np.arange(s.frame_size)[None, :]
        return padded[index] * self._window                        # (T, N)

    def raw_vectors(self, samples: np.ndarray) -> np.ndarray:
        """Unnormalised vectors (T, D) of a clip."""
        spectrum = (np.fft.fft if self.settings.spectrum == "full" else np.fft.rfft)(
            self.frames(samples), axis=1)                            # (T, bins) complex
        if self.settings.form == "logmag":
            return np.log(np.abs(spectrum) + LOG_FLOOR)
        return np.concatenate([spectrum.real, spectrum.imag], axis=1)

    def magnitudes(self, vectors: np.ndarray) -> np.ndarray:
        """Normalised vectors (T, D) or (D,) → magnitude spectra |X| (T, bins), float64."""
        v = np.asarray(vectors, dtype=np.float64) * self.std + self.mean
        if self.settings.form == "logmag":
            return np.maximum(np.exp(np.minimum(v, 30.0)) - LOG_FLOOR, 0.0)
        bins = self.settings.bins
        return np.hypot(v[..., :bins], v[..., bins:])

    def encode(self, samples: np.ndarray) -> np.ndarray:
        """Normalised float32 vectors (T, D) of mono samples."""
        return ((self.raw_vectors(samples) - self.mean) / self.std).astype(np.float32)

    def vectors_to_frames(self, vectors: np.ndarray,
                          phase: "PhaseVocoder | None" = None) -> np.ndarray:
        """Normalised vectors (T, D) or (D,) → windowed time frames (T, N) or (N,), float64.

        logmag vectors take their phases from ``phase`` (a fresh vocoder when None), which
        advances one hop per frame."""
        if self.settings.form == "logmag":
            phase = phase or PhaseVocoder(self.settings)
            mags = self.magnitudes(vectors)
            frames = np.stack([phase.synthesise(m) for m in np.atleast_2d(mags)])
            return frames[0] if np.ndim(vectors) == 1 else frames
        v = np.asarray(vectors, dtype=np.float64) * self.std + self.mean
        bins = self.settings.bins
        spectrum = v[..., :bins] + 1j * v[..., bins:]
        if self.settings.spectrum == "full":
            frames = np.fft.ifft(spectrum, axis=-1).real
        else:
            frames = np.fft.irfft(spectrum, n=self.settings.frame_size, axis=-1)
        return frames * self._window

    def decode(self, vectors: np.ndarray, length: int | None = None) -> np.ndarray:
        """Normalised vectors (T, D) → float32 samples (overlap-added), cut to ``length``."""
        synth = OverlapAdd(self.settings)
        out = [synth.push(frame) for frame in self.vectors_to_frames(np.atleast_2d(vectors))]
        samples = np.concatenate(out)
        if self.settings.overlap:               # drop the leading pad of :meth:`frames`
            samples = samples[self.settings.frame_size - self.settings.hop:]
        return (samples if length is None else samples[:length]).astype(np.float32)


class PhaseVocoder:
    """Phases for magnitude-only frames, one hop at a time (streaming, O(bins) per frame).

    Bin k's phase advances by 2π k hop / N per frame (the phase a steady sinusoid at the bin's
    centre frequency gains in one hop), from start phases drawn with ``seed``. A bin whose
    magnitude jumps by more than ``onset_ratio`` (an attack) gets a fresh random phase, so
    that new notes do not inherit the previous note's phase relation. Phases are kept as unit
    phasors (complex), advanced by one multiplication per bin (with hop = N / 2 the advance is
    exactly ±1).
    """

    def __init__(self, settings: SpectralSettings, seed: int = 0, onset_ratio: float = 4.0):
        self.settings = settings
        self.onset_ratio = onset_ratio
        k = np.arange(settings.bins)
        if 2 * settings.hop == settings.frame_size:
            self._advance = np.where(k % 2, -1.0, 1.0)                       # e^{iπk}, exact
        else:
            self._advance = np.exp(2j * np.pi * k * settings.hop / settings.frame_size)
        self._window = settings.window()
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self.phasor = self._random_phasors(self.settings.bins)             # (bins,) complex
        self._last = np.zeros(self.settings.bins)

    def _random_phasors(self, count: int) -> np.ndarray:
        return np.exp(1j * self._rng.uniform(-np.pi, np.pi, count))

    @property
    def phase(self) -> np.ndarray:
        """The current phases (bins,), radians."""
        return np.angle(self.phasor)

    def synthesise(self, magnitude: np.ndarray) -> np.ndarray:
        """Magnitudes (bins,) → a windowed time frame (N,), advancing the phases one hop."""
        onset = magnitude > self.onset_ratio * (self._last + 1e-2)
        if onset.any():
            self.phasor[onset] = self._random_phasors(int(onset.sum()))
        frame = np.fft.irfft(magnitude * self.phasor, n=self.settings.frame_size) * self._window
        self.phasor *= self._advance
        self._last = magnitude
        return frame


class OverlapAdd:
    """Streaming synthesis: push windowed frames (N,), get ``hop`` finished samples each.

    Without overlap a frame is returned as it is; with overlap its first half is added to the
    tail of the previous frame and returned, and its second half is kept for the next one.
    """

    def __init__(self, settings: SpectralSettings):
        self.hop = settings.hop
        self.tail = np.zeros(settings.frame_size - settings.hop)    # (N - hop,)

    def reset(self) -> None:
        self.tail[:] = 0.0

    def push(self, frame: np.ndarray) -> np.ndarray:
        """frame: (N,) windowed time samples → (hop,) finished samples."""
        if not len(self.tail):
            return np.array(frame, dtype=np.float64)
        out = frame[:self.hop].copy()
        out[:len(self.tail)] += self.tail
        self.tail = np.array(frame[self.hop:], dtype=np.float64)
        return out


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``reference`` in dB."""
    ref = np.asarray(reference, np.float64)
    noise = ref - np.asarray(estimate, np.float64)[:len(ref)]
    return float(10 * np.log10(np.sum(ref ** 2) / max(np.sum(noise ** 2), 1e-300)))
