"""Generating audio with a spectral LSTM, one frame at a time.

``SpectralGenerator`` keeps the model's recurrent state: ``prime(samples)`` runs a seed clip
through the model once, then every ``next_frame()`` costs one model step, one inverse FFT and
one overlap-add, whatever the length of the output so far.

``WindowedSpectralGenerator`` is the documents' generation, kept as a baseline: for every new
frame it re-runs the model from a zero state over the last ``window`` (T = 40) frames and
takes the last prediction. Its cost per frame grows with the history until the window is full,
then stays at T model steps.

Both return ``hop`` float32 samples at ``sample_rate`` Hz per call.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import torch

from riffd.engine.melody_generator import _cpu_fast_path as _no_onednn   # batch-1 steps: oneDNN off
from riffd.engine.spectral_lstm import FAMILY, SpectralLSTM
from riffd.engine.spectral_representation import OverlapAdd, SpectralCodec

DEFAULT_WINDOW = 40       # frames (T), the document's sliding window


class SpectralGenerator:
    """A spectral model, its codec and one stream's state.

    Attributes: ``family``, ``sample_rate`` (Hz), ``hop`` (samples per ``next_frame``),
    ``device``, ``metadata``, ``path``, ``frames_generated``.
    """

    family = FAMILY

    def __init__(self, model: SpectralLSTM, codec: SpectralCodec, metadata: dict,
                 device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.codec = codec
        self.metadata = metadata
        self.path = None
        self.sample_rate = codec.settings.sample_rate
        self.hop = codec.settings.hop
        self._synth = OverlapAdd(codec.settings)
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
        for frame in self.codec.vectors_to_frames(vectors):
            self._synth.push(frame)
        self._next = y[:, -1]                                                  # (1, D)
        return len(vectors)

    @torch.inference_mode()
    def next_frame(self) -> np.ndarray:
        """Generate ``hop`` samples (float32): one model step, inverse FFT, overlap-add."""
        vector = self._next
        with _no_onednn(self.device):
            self._next, self._state = self.model.step(vector, self._state)     # (1, D)
        frame = self.codec.vectors_to_frames(vector[0].float().cpu().numpy())  # (N,)
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
        self._synth = OverlapAdd(codec.settings)
        self.reset()

    def reset(self) -> None:
        self._history: deque[torch.Tensor] = deque(maxlen=self.window)
        self._synth.reset()
        self.frames_generated = 0

    @torch.inference_mode()
    def prime(self, samples: np.ndarray) -> int:
        vectors = self.codec.encode(np.asarray(samples, dtype=np.float32))      # (T, D)
        self.reset()
        for v in torch.from_numpy(vectors).to(self.device):
            self._history.append(v)
        for frame in self.codec.vectors_to_frames(vectors):
            self._synth.push(frame)
        return len(vectors)

    @torch.inference_mode()
    def next_frame(self) -> np.ndarray:
        if not self._history:
            self._history.append(torch.zeros(self.codec.settings.dim, device=self.device))
        x = torch.stack(list(self._history)).unsqueeze(0)                      # (1, ≤T, D)
        with _no_onednn(self.device):
            vector = self.model(x)[0, -1]                                      # (D,)
        self._history.append(vector)
        frame = self.codec.vectors_to_frames(vector.float().cpu().numpy())
        self.frames_generated += 1
        return self._synth.push(frame).astype(np.float32)
