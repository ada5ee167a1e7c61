"""Streaming notewise generation: one event at a time, played out as 16th-note Steps.

A generated event of duration d beats becomes d / 0.25 steps: its pitches start at the
first step and are held for the rest (a chord token starts several pitches; a rest gives
silent steps). Keys and register as ``riffd.engine.keyed_generator`` describes: when the
model was trained on songs moved to C major / A minor the seed is moved there and every
generated pitch moved back; with ``follow_register`` the seed is moved by whole octaves
towards the middle of the model's pitch range and the answer back by as much.
"""
from __future__ import annotations

from collections import deque
from typing import Sequence

import torch

from riffd.engine.generator import Step
from riffd.engine.keyed_generator import KeyedGenerator
from riffd.engine.melody_representation import STEP_BEATS, Note
from riffd.engine.notewise_lstm import FAMILY, NotewiseLSTM
from riffd.engine.notewise_representation import (DELIMITER, REST, NotewiseVocabulary,
                                            encode_events, token_pitches)
from riffd.engine.onednn import cpu_fast_path
from riffd.engine.sampling import sample


class NotewiseGenerator(KeyedGenerator):
    """A notewise model, its vocabularies, sampler state and key shift (one stream)."""

    family = FAMILY

    def __init__(self, model: NotewiseLSTM, vocab: NotewiseVocabulary, metadata: dict,
                 device: torch.device):
        super().__init__(model, metadata, device)
        self.vocab = vocab
        self.transposed = metadata.get("representation", {}).get("transpose", True)
        self.follow_register = True           # move the seed by octaves (prime)
        known = [p for t in vocab.pitch_tokens if t not in (REST, DELIMITER)
                 for p in token_pitches(t)]
        self._known_range = (min(known), max(known)) if known else (0, 127)
        self._pitch_mask: torch.Tensor | None = None
        self._duration_mask = torch.ones(len(vocab.duration_tokens), dtype=torch.bool)
        self._duration_mask[vocab.duration_id(DELIMITER)] = False
        self._duration_mask = self._duration_mask.to(device)
        self._steps: deque[Step] = deque()
        self._state = None
        self._logits: tuple[torch.Tensor, torch.Tensor] | None = None
        self.reset()

    # -- state --------------------------------------------------------------------
    @torch.inference_mode()
    def _restart(self) -> None:
        """A new song: fresh LSTM state, no steps left to play, then the delimiter event."""
        self._state = self.model.init_state(1, self.device)
        self._steps.clear()
        self._feed([(DELIMITER, DELIMITER)])

    def _register_range(self) -> tuple[int, int] | None:
        return self._known_range if self.follow_register else None

    def _feed_seed(self, notes: list[Note]) -> None:
        events = []
        for pitch, duration in encode_events(
                [Note(self._to_model(n.pitch), n.start, n.duration) for n in notes],
                self.vocab.variant):
            if pitch not in self.vocab.pitch_tokens:      # an unknown chord or pitch: its root
                pitch = self.vocab.nearest_pitch_token(min(token_pitches(pitch)))
            if duration in self.vocab.duration_tokens:
                events.append((pitch, duration))
        self._feed(events)

    # -- generation ---------------------------------------------------------------
    @torch.inference_mode()
    def next_event(self) -> tuple[str, str]:
        """Draw the next event: (pitch token in the seed's key, duration token in beats)."""
        pitch_logits, duration_logits = self._logits
        with cpu_fast_path(self.device):
            pitch_id = sample(pitch_logits, self.settings, self._pitch_mask, self.rng)
            duration_id = sample(duration_logits, self.settings, self._duration_mask,
                                 self.rng)
            self._logits, self._state = self.model.step(pitch_id, duration_id, self._state)
        pitch = self.vocab.pitch_tokens[int(pitch_id[0])]
        duration = self.vocab.duration_tokens[int(duration_id[0])]
        if pitch != REST:
            pitch = ".".join(str(self._from_model(p)) for p in token_pitches(pitch))
        return pitch, duration

    def next_step(self) -> Step:
        """The next 16th step (draws a new event when the last one has been played out)."""
        while not self._steps:
            pitch, duration = self.next_event()
            steps = max(1, round(float(duration) / STEP_BEATS))
            pitches = () if pitch == REST else token_pitches(pitch)
            self._steps.append(Step(starts=pitches))
            self._steps.extend(Step(holds=pitches) for _ in range(steps - 1))
        return self._steps.popleft()

    @torch.inference_mode()
    def _feed(self, events: Sequence[tuple[str, str]]) -> None:
        if not events:
            return
        pitch_ids, duration_ids = self.vocab.encode(events)
        with cpu_fast_path(self.device):
            for p, d in zip(pitch_ids, duration_ids):
                self._logits, self._state = self.model.step(
                    torch.tensor([p], device=self.device), torch.tensor([d], device=self.device),
                    self._state)

    def _update_mask(self) -> None:
        """Allowed pitch tokens: rests always; notes and chords wholly inside range and scale."""
        allowed = torch.zeros(len(self.vocab.pitch_tokens), dtype=torch.bool)
        playable = []
        for token_id, token in enumerate(self.vocab.pitch_tokens):
            if token == REST:
                allowed[token_id] = True
            elif token != DELIMITER:
                playable.append(token_id)
                allowed[token_id] = all(self._allows(p) for p in token_pitches(token))
        if playable and not bool(allowed[playable].any()):
            allowed[playable] = True                  # impossible constraint: ignore it
        self._pitch_mask = allowed.to(self.device)


def make_notewise_generator(model: NotewiseLSTM, metadata: dict, device: torch.device):
    """``riffd.engine.loading`` factory: the vocabularies come from the checkpoint's metadata."""
    vocab = NotewiseVocabulary.from_metadata(metadata["representation"]["vocabulary"])
    return NotewiseGenerator(model, vocab, metadata, device)
