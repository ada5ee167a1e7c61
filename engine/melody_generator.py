"""Streaming melody generation: prime with a seed phrase, then draw one 16th step at a time.

The model works in C major / A minor. ``prime`` estimates the seed's key (and mode), moves
the seed into C/Am and remembers the shift; every generated pitch is moved back, so the
answer is in the seed's key. With ``follow_register`` (the default) the seed is also moved
by whole octaves towards the middle of the model's range, and the answer back by as much:
a phrase played two octaves up is answered two octaves up, in the model's own register.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from riffd.engine.generator import Step
from riffd.engine.key_finding import Key, estimate_key
from riffd.engine.melody_lstm import MelodyLSTM
from riffd.engine.melody_representation import (DELIMITER, HOLD, REST, STEP_BEATS, Note,
                                          Vocabulary, encode_notes, OffGrid)
from riffd.engine.sampling import SamplingSettings, sample
from riffd.engine.seed_profile import octave_offset, register

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)


@dataclass
class Constraints:
    """Limits on generated pitches, in the seed's key (MIDI numbers, pitch classes 0–11)."""

    low: int = 0
    high: int = 127
    scale: tuple[int, ...] | None = None    # allowed pitch classes, None = all


def quantize_notes(notes: Sequence[Note]) -> list[Note]:
    """Snap note starts and ends to the 16th grid (a played phrase is never exactly on it)."""
    out = []
    for n in notes:
        start = round(n.start / STEP_BEATS) * STEP_BEATS
        end = max(start + STEP_BEATS, round((n.start + n.duration) / STEP_BEATS) * STEP_BEATS)
        out.append(Note(n.pitch, start, end - start))
    return out


@contextlib.contextmanager
def _cpu_fast_path(device: torch.device, use_onednn: bool = False):
    """Run without oneDNN on the CPU unless asked: at batch 1 it makes single-step LSTM
    calls slower here (benchmarks/step_latency.py measures both)."""
    if device.type != "cpu" or use_onednn or not torch.backends.mkldnn.enabled:
        yield
        return
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = True


class MelodyGenerator:
    """A melody model plus its vocabulary, sampler state and key shift (one stream)."""

    family = "melody_lstm"
    step_beats = STEP_BEATS

    def __init__(self, model: MelodyLSTM, vocab: Vocabulary, metadata: dict,
                 device: torch.device):
        self.model = model.to(device).eval()
        self.vocab = vocab
        self.metadata = metadata
        self.device = device
        self.use_onednn = False            # CPU only: keep oneDNN on for single steps
        self.key = Key(0, "major")
        self.shift = 0                                 # semitones seed key → C/Am
        self.octave = 0                                # semitones (×12) seed → model register
        self.follow_register = True                    # move the seed by octaves (prime)
        self.settings = SamplingSettings()
        self.constraints = Constraints()
        self._allowed: torch.Tensor | None = None
        self._pitch_ids = vocab.pitches()
        self._state = None
        self._logits: torch.Tensor | None = None
        self._last_token = DELIMITER
        self._sounding: int | None = None              # pitch held by "_" in next_step
        self.reset()

    # -- state --------------------------------------------------------------------
    @torch.inference_mode()
    def reset(self) -> None:
        """Forget everything and start a new song (feeds the delimiter)."""
        self._state = self.model.init_state(1, self.device)
        self.key, self.shift, self.octave = Key(0, "major"), 0, 0
        self._sounding = None
        self._update_mask()
        self._feed([DELIMITER])

    @torch.inference_mode()
    def prime(self, notes: Sequence[Note]) -> Key:
        """Start a new song from a seed phrase (beats); returns the key it was heard in."""
        self.reset()
        notes = quantize_notes([n for n in notes if n.pitch is not None])
        if not notes:
            return self.key
        self.key = estimate_key(notes)
        self.shift = self.key.shift_to_reference()
        if self.follow_register:
            known = self._pitch_ids.values()
            self.octave = octave_offset(register(notes), min(known) - self.shift,
                                        max(known) - self.shift)
        origin = min(n.start for n in notes)
        moved = [Note(self.vocab.fit_pitch(n.pitch + self.shift - self.octave),
                      n.start - origin, n.duration) for n in notes]
        try:
            tokens = encode_notes(moved)
        except OffGrid:                                  # cannot happen after quantize
            tokens = []
        self._update_mask()
        self._feed(tokens)
        return self.key

    def set_constraints(self, constraints: Constraints) -> None:
        self.constraints = constraints
        self._update_mask()

    # -- generation ---------------------------------------------------------------
    @torch.inference_mode()
    def next_token(self) -> str:
        """Draw the next 16th step: a MIDI pitch as text (in the seed's key), ``r`` or ``_``."""
        with _cpu_fast_path(self.device, self.use_onednn):
            choice = sample(self._logits, self.settings, self._allowed)
            token_id = int(choice[0])
            self._logits, self._state = self.model.step(choice, self._state)
        token = self.vocab.tokens[token_id]
        self._last_token = token
        if token in (REST, HOLD, DELIMITER):
            return REST if token == DELIMITER else token
        return str(int(token) - self.shift + self.octave)

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
        c = self.constraints
        allowed = torch.ones(len(self.vocab), dtype=torch.bool)
        for token_id, model_pitch in self._pitch_ids.items():
            pitch = model_pitch - self.shift + self.octave
            in_scale = c.scale is None or ((pitch - self.key.tonic) % 12) in c.scale
            allowed[token_id] = c.low <= pitch <= c.high and in_scale
        allowed[self.vocab.id(DELIMITER)] = False   # a streamed answer never ends the song
        if not bool(allowed[list(self._pitch_ids)].any()):
            allowed[list(self._pitch_ids)] = True   # impossible constraint: ignore it
        self._allowed = allowed.to(self.device)
