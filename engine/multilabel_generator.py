"""Streaming piano-roll generation with a multilabel model: one 16th-note frame per step.

Each step the model gives one probability per pitch. ``mode = "threshold"`` turns on
every pitch whose probability reaches ``threshold`` (0.3 in the document);
``mode = "bernoulli"`` draws each pitch on with its probability. The temperature divides
the logits first (lower = fewer, surer notes); ``settings.greedy`` forces the threshold.
A pitch newly on starts a note, a pitch on in the previous frame too is held.

Keys (``riffd.engine.keyed_generator``): when the model was trained on pieces moved to
C major / A minor, a seed is moved there (its key estimated) and generated pitches moved
back; otherwise (the document's preferred, untransposed input) pitches pass unchanged.
Constraints (pitch range, scale in the seed's key) switch the other pitches off. With
``follow_register`` the seed is moved by whole octaves towards the middle of the model's
pitch range and the answer back by as much.
"""
from __future__ import annotations

import numpy as np
import torch

from riffd.engine.generator import Step
from riffd.engine.keyed_generator import KeyedGenerator, draw_seed
from riffd.engine.melody_representation import Note
from riffd.engine.multilabel_lstm import FAMILY, MultilabelLSTM
from riffd.engine.onednn import cpu_fast_path
from riffd.engine.pianoroll import PitchRange, notes_to_roll

MODES = ("threshold", "bernoulli")


class MultilabelGenerator(KeyedGenerator):
    """A multilabel model, its pitch range, sampler state and key shift (one stream)."""

    family = FAMILY

    def __init__(self, model: MultilabelLSTM, pitch_range: PitchRange, metadata: dict,
                 device: torch.device, mode: str = "threshold", threshold: float = 0.3,
                 transposed: bool = False):
        if mode not in MODES:
            raise ValueError(f"multilabel inference mode {mode!r} is unknown; use one of "
                             f"{', '.join(MODES)}")
        super().__init__(model, metadata, device)
        self.pitch_range = pitch_range
        self.mode, self.threshold, self.transposed = mode, threshold, transposed
        self.follow_register = True           # move the seed by octaves (prime)
        self.rng = torch.Generator().manual_seed(draw_seed())     # its draws are on the CPU
        self._allowed = torch.ones(pitch_range.size, dtype=torch.bool)
        self._previous = torch.zeros(pitch_range.size, dtype=torch.bool)
        self._state = None
        self._logits: torch.Tensor | None = None
        self.reset()

    @torch.inference_mode()
    def _restart(self) -> None:
        """A new piece: fresh LSTM state, nothing sounding, then the silent start frame."""
        self._state = self.model.init_state(1, self.device)
        self._previous = torch.zeros(self.pitch_range.size, dtype=torch.bool)
        self._feed(np.zeros((1, self.pitch_range.size), dtype=bool))

    def _register_range(self) -> tuple[int, int] | None:
        return (self.pitch_range.low, self.pitch_range.high) if self.follow_register else None

    def _feed_seed(self, notes: list[Note]) -> None:
        origin = min(n.start for n in notes)
        roll = notes_to_roll([Note(self._to_model(n.pitch), n.start - origin, n.duration)
                              for n in notes], self.pitch_range)            # (T, P)
        self._feed(roll)          # the seed was played by someone else: the answer starts
                                  # every pitch it sounds (nothing is held over from it)

    @torch.inference_mode()
    def next_frame(self) -> torch.Tensor:
        """Draw the next frame: (P,) bool, column i = model pitch ``pitch_range.low + i``."""
        logits = self._logits[0].float().cpu() / max(self.settings.temperature, 1e-4)
        probs = torch.sigmoid(logits)
        if self.mode == "threshold" or self.settings.greedy:
            frame = probs >= self.threshold
        else:
            frame = torch.bernoulli(probs, generator=self.rng).bool()
        frame &= self._allowed
        self._feed(frame[None].numpy())
        return frame

    def next_step(self) -> Step:
        """The next 16th step: pitches newly on start, pitches still on are held."""
        frame = self.next_frame()
        started = frame & ~self._previous
        held = frame & self._previous
        self._previous = frame
        low = self._from_model(self.pitch_range.low)
        return Step(starts=tuple(low + int(i) for i in torch.nonzero(started).flatten()),
                    holds=tuple(low + int(i) for i in torch.nonzero(held).flatten()))

    @torch.inference_mode()
    def observe(self, step: Step) -> None:
        """Feed the frame of ``step``'s sounding pitches (the seed's key) as if drawn."""
        size = self.pitch_range.size
        frame = torch.zeros(size, dtype=torch.bool)
        low = self._from_model(self.pitch_range.low)                    # column 0's pitch
        for pitch in step.starts + step.holds:
            if 0 <= pitch - low < size:
                frame[pitch - low] = True
        self._feed(frame[None].numpy())
        self._previous = frame

    @torch.inference_mode()
    def _feed(self, frames: np.ndarray) -> None:
        x = torch.as_tensor(np.asarray(frames, dtype=np.float32), device=self.device)  # (T, P)
        with cpu_fast_path(self.device):
            for t in range(x.shape[0]):
                self._logits, self._state = self.model.step(x[t:t + 1], self._state)

    def _update_mask(self) -> None:
        """Pitches inside the constraints' range and scale (in the seed's key)."""
        allowed = torch.zeros(self.pitch_range.size, dtype=torch.bool)
        for i in range(self.pitch_range.size):
            allowed[i] = self._allows(self.pitch_range.pitch(i))
        self._allowed = allowed if bool(allowed.any()) else torch.ones_like(allowed)


def make_multilabel_generator(model: MultilabelLSTM, metadata: dict, device: torch.device):
    """``riffd.engine.loading`` factory: pitch range and inference settings from the metadata."""
    rep = metadata["representation"]
    inference = metadata.get("inference", {})
    r = rep["pitch_range"]
    return MultilabelGenerator(model, PitchRange(r["low"], r["high"], r["fold"]), metadata,
                               device, mode=inference.get("mode", "threshold"),
                               threshold=inference.get("threshold", 0.3),
                               transposed=rep.get("transpose", False))
