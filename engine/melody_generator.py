"""Streaming melody generation: prime with a seed phrase, then draw one 16th step at a time.

The model works in C major / A minor: the seed is moved there from its key and the answer
moved back; with ``follow_register`` (the default) the seed is also moved by octaves into
the model's register (``riffd.engine.keyed_generator`` does both for every family).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from riffd.engine.generator import Constraints, Step
from riffd.engine.keyed_generator import KeyedGenerator, quantize_notes
from riffd.engine.melody_lstm import MelodyLSTM
from riffd.engine.melody_representation import (DELIMITER, HOLD, REST, Note, Vocabulary,
                                                encode_notes, OffGrid)
from riffd.engine.onednn import cpu_fast_path as _cpu_fast_path
from riffd.engine.sampling import sample

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
# Constraints and quantize_notes are imported from here by the daemon and training too.
__all__ = ["MAJOR_SCALE", "Constraints", "MelodyGenerator", "quantize_notes"]


class MelodyGenerator(KeyedGenerator):
    """A melody model plus its vocabulary, sampler state and key shift (one stream)."""

    family = "melody_lstm"

    def __init__(self, model: MelodyLSTM, vocab: Vocabulary, metadata: dict,
                 device: torch.device):
        super().__init__(model, metadata, device)
        self.vocab = vocab
        self.use_onednn = False            # CPU only: keep oneDNN on for single steps
        self.follow_register = True        # move the seed by octaves (prime)
        self._allowed: torch.Tensor | None = None
        self._pitch_ids = vocab.pitches()
        self._state = None
        self._logits: torch.Tensor | None = None
        self._last_token = DELIMITER
        self._sounding: int | None = None              # pitch held by "_" in next_step
        self.reset()

    # -- state --------------------------------------------------------------------
    @torch.inference_mode()
    def _restart(self) -> None:
        """A new song: fresh LSTM state, then the delimiter."""
        self._state = self.model.init_state(1, self.device)
        self._sounding = None
        self._feed([DELIMITER])

    def _register_range(self) -> tuple[int, int] | None:
        known = self._pitch_ids.values()
        return (min(known), max(known)) if self.follow_register else None

    def _feed_seed(self, notes: list[Note]) -> None:
        origin = min(n.start for n in notes)
        moved = [Note(self.vocab.fit_pitch(self._to_model(n.pitch)), n.start - origin,
                      n.duration) for n in notes]
        try:
            tokens = encode_notes(moved)
        except OffGrid:                                  # cannot happen after quantize
            tokens = []
        self._feed(tokens)

    @torch.inference_mode()
    def observe(self, step: Step) -> None:
        """Feed ``step`` as this model's 16th-step token: its first started pitch (moved
        into the model's key and register), a hold of what sounds, or a rest."""
        if step.starts:
            pitch = step.starts[0]
            token, sounding = str(self.vocab.fit_pitch(self._to_model(pitch))), pitch
        elif step.holds and self._sounding is not None:
            token, sounding = HOLD, self._sounding
        else:
            token, sounding = REST, None
        self._feed([token])
        self._sounding = sounding

    # -- generation ---------------------------------------------------------------
    @torch.inference_mode()
    def next_token(self) -> str:
        """Draw the next 16th step: a MIDI pitch as text (in the seed's key), ``r`` or ``_``."""
        with _cpu_fast_path(self.device, self.use_onednn):
            choice = sample(self._logits, self.settings, self._allowed, self.rng)
            token_id = int(choice[0])
            self._logits, self._state = self.model.step(choice, self._state)
        token = self.vocab.tokens[token_id]
        self._last_token = token
        if token in (REST, HOLD, DELIMITER):
            return REST if token == DELIMITER else token
        return str(self._from_model(int(token)))

    def next_step(self) -> Step:
        """The next 16th step as a ``Step`` (the daemon's interface for every family)."""
        token = self.next_token()
        if token == HOLD:
            return Step(holds=(self._sounding,)) if self._sounding is not None else Step()
        self._sounding = None if token == REST else int(token)
        return Step(starts=(self._sounding,)) if self._sounding is not None else Step()

    def tokens(self, count: int) -> Iterator[str]:
        for _ in range(count):
            yield self.next_token()

    @torch.inference_mode()
    def _feed(self, tokens: Sequence[str]) -> None:
        if not tokens:
            return
        ids = torch.tensor([self.vocab.encode(tokens)], device=self.device)   # (1, T)
        with _cpu_fast_path(self.device, self.use_onednn):
            x = self.model.embed(ids)
            y, self._state = self.model.lstm(x, self._state)
            self._logits = self.model.head(y[:, -1])                          # (1, V)
        self._last_token = tokens[-1]

    def _update_mask(self) -> None:
        """Allowed token ids: specials always; pitches inside range and scale (seed key)."""
        allowed = torch.ones(len(self.vocab), dtype=torch.bool)
        for token_id, model_pitch in self._pitch_ids.items():
            allowed[token_id] = self._allows(model_pitch)
        allowed[self.vocab.id(DELIMITER)] = False   # a streamed answer never ends the song
        if not bool(allowed[list(self._pitch_ids)].any()):
            allowed[list(self._pitch_ids)] = True   # impossible constraint: ignore it
        self._allowed = allowed.to(self.device)
