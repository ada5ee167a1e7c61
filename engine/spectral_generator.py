"""Generating audio with a spectral LSTM, one frame at a time.

``SpectralGenerator`` keeps the model's recurrent state: ``prime(samples)`` runs a seed clip
through the model once, then every ``next_frame()`` costs one model step, one inverse FFT and
one overlap-add, whatever the length of the output so far.

``WindowedSpectralGenerator`` is the documents' generation, kept as a baseline: for every new
frame it re-runs the model from a zero state over the last ``window`` (T = 40) frames and
takes the last prediction. Its cost per frame grows with the history until the window is full,
then stays at T model steps.

Both return ``hop`` float32 samples at ``sample_rate`` Hz per call.

A model with the ``laplace`` head is sampled: each next vector is drawn from the predicted
distribution at ``temperature`` (default: ``metadata["generation"]["temperature"]``, measured
at training time so that the output moves as much as the training audio, else 1.0), with a
seeded torch generator (``rng_seed``). Log-magnitude vectors get their phases from a streaming
phase vocoder (``riffd.engine.spectral_representation.PhaseVocoder``), and their samples are
drawn so that each bin's expected magnitude is the predicted one (noise of scale s in the log
domain multiplies a magnitude by 1 / (1 - s²) on average; the draw is lowered by ln(1 - s²)),
otherwise the output grows louder with every frame it feeds back.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import torch

from riffd.engine.melody_generator import _cpu_fast_path as _no_onednn   # batch-1 steps: oneDNN off
from riffd.engine.spectral_lstm import FAMILY, SpectralLSTM, laplace_noise, laplace_parts
from riffd.engine.spectral_representation import OverlapAdd, PhaseVocoder, SpectralCodec


def default_temperature(metadata: dict) -> float:
    """The sampling temperature a checkpoint asks for (1.0 when it names none)."""
    return float((metadata.get("generation") or {}).get("temperature", 1.0))

DEFAULT_WINDOW = 40       # frames (T), the document's sliding window
MAX_NOISE_NATS = 0.4      # cap of a log-magnitude bin's noise scale (see SpectralGenerator._draw)


class SpectralGenerator:
    """A spectral model, its codec and one stream's state.

    Attributes: ``family``, ``sample_rate`` (Hz), ``hop`` (samples per ``next_frame``),
    ``device``, ``metadata``, ``path``, ``frames_generated``.
    """

    family = FAMILY

    def __init__(self, model: SpectralLSTM, codec: SpectralCodec, metadata: dict,
                 device: torch.device | str = "cpu", temperature: float | None = None,
                 rng_seed: int = 0):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.codec = codec
        self.metadata = metadata
        self.path = None
        self.sample_rate = codec.settings.sample_rate
        self.hop = codec.settings.hop
        self.temperature = default_temperature(metadata) if temperature is None else temperature
        self.rng_seed = rng_seed
        self._synth = OverlapAdd(codec.settings)
        self._phase = PhaseVocoder(codec.settings, rng_seed)
        self._rng = torch.Generator(device=self.device)
        self._log_std = (torch.tensor(codec.std, dtype=torch.float32, device=self.device)
                         if codec.settings.form == "logmag" and model.cfg.head == "laplace"
                         else None)                                  # (D,) nats per unit
        self.frames_generated = 0
        self.reset()

    @classmethod
    def from_metadata(cls, model: SpectralLSTM, metadata: dict, device) -> "SpectralGenerator":
        return cls(model, SpectralCodec.from_metadata(metadata["representation"]), metadata, device)

    def reset(self) -> None:
        """Forget the stream: zero state, a silent next input."""
        self._state = self.model.init_state(1, self.device)
        self._next = torch.zeros(1, self.codec.settings.dim, device=self.device)  # (1, D)
        self._synth.reset()
        self._phase.reset(self.rng_seed)
        self._rng.manual_seed(self.rng_seed)
        self.frames_generated = 0

    @torch.inference_mode()
    def prime(self, samples: np.ndarray) -> int:
        """Start from a seed clip (mono float samples at ``sample_rate``); returns its frames.

        The seed's own frames are synthesised into the overlap-add tail, so the first
        generated samples continue the seed without a jump.
        """
        vectors = self.codec.encode(np.asarray(samples, dtype=np.float32))      # (T, D)
        if not np.isfinite(vectors).all():
            raise ValueError("the seed clip holds NaN or infinite samples")
        self.reset()
        x = torch.from_numpy(vectors).to(self.device).unsqueeze(0)             # (1, T, D)
        with _no_onednn(self.device):
            y, self._state = self.model.forward_with_state(x, self._state)
        for frame in self.codec.vectors_to_frames(vectors, self._phase):
            self._synth.push(frame)
        self._next = self._draw(y[:, -1])                                      # (1, D)
        return len(vectors)

    def _draw(self, prediction: torch.Tensor) -> torch.Tensor:
        """The next input vector (1, D) from a prediction (1, O).

        Log-magnitude bins get Laplace noise of scale s = temperature × the predicted scale,
        in nats, at most ``MAX_NOISE_NATS``: a magnitude times e^noise has mean 1 / (1 - s²)
        and mean square 1 / (1 - 4 s²), both unbounded as s nears 1 and ½. Without the cap a
        hand-set temperature of 0.75 fed ever louder frames back and ran past 0 dBFS within
        30 s; with it, high temperatures are noisier, not louder.
        """
        if self._log_std is None or self.temperature <= 0:
            return self.model.sample(prediction, self.temperature, self._rng)
        loc, log_scale = laplace_parts(prediction)                    # (1, D) normalised units
        s = (self._log_std * self.temperature * torch.exp(log_scale)).clamp(max=MAX_NOISE_NATS)
        noise = laplace_noise(loc, self._rng) * s                     # (1, D) nats
        return loc + (noise + torch.log1p(-s * s)) / self._log_std    # E[magnitude] kept

    @torch.inference_mode()
    def next_frame(self) -> np.ndarray:
        """Generate ``hop`` samples (float32): one model step, inverse FFT, overlap-add."""
        vector = self._next
        with _no_onednn(self.device):
            prediction, self._state = self.model.step(vector, self._state)     # (1, O)
            self._next = self._draw(prediction)                                # (1, D)
        frame = self.codec.vectors_to_frames(vector[0].float().cpu().numpy(), self._phase)
        self.frames_generated += 1
        return self._synth.push(frame).astype(np.float32)


class WindowedSpectralGenerator:
    """The documents' sliding-window generation (a baseline): each frame re-runs the model
    from a zero state over the last ``window`` frames. Same interface as SpectralGenerator."""

    family = FAMILY

    def __init__(self, model: SpectralLSTM, codec: SpectralCodec, metadata: dict,
                 device: torch.device | str = "cpu", window: int = DEFAULT_WINDOW):
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.codec = codec
        self.metadata = metadata
        self.path = None
        self.window = window
        self.sample_rate = codec.settings.sample_rate
        self.hop = codec.settings.hop
        self.temperature = default_temperature(metadata)
        self._synth = OverlapAdd(codec.settings)
        self._phase = PhaseVocoder(codec.settings)
        self._rng = torch.Generator(device=self.device)
        self.reset()

    def reset(self) -> None:
        self._history: deque[torch.Tensor] = deque(maxlen=self.window)
        self._synth.reset()
        self._phase.reset(0)
        self._rng.manual_seed(0)
        self.frames_generated = 0

    @torch.inference_mode()
    def prime(self, samples: np.ndarray) -> int:
        vectors = self.codec.encode(np.asarray(samples, dtype=np.float32))      # (T, D)
        self.reset()
        for v in torch.from_numpy(vectors).to(self.device):
            self._history.append(v)
        for frame in self.codec.vectors_to_frames(vectors, self._phase):
            self._synth.push(frame)
        return len(vectors)

    @torch.inference_mode()
    def next_frame(self) -> np.ndarray:
        if not self._history:
            self._history.append(torch.zeros(self.codec.settings.dim, device=self.device))
        x = torch.stack(list(self._history)).unsqueeze(0)                      # (1, ≤T, D)
        with _no_onednn(self.device):
            vector = self.model.sample(self.model(x)[0, -1], self.temperature, self._rng)  # (D,)
        self._history.append(vector)
        frame = self.codec.vectors_to_frames(vector.float().cpu().numpy(), self._phase)
        self.frames_generated += 1
        return self._synth.push(frame).astype(np.float32)
