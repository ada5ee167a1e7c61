"""What the symbolic generators share: answering a seed in its key, register and constraints.

A model trained on songs moved to C major / A minor (``transposed``) answers in the seed's
key: ``prime`` estimates the seed's key (and mode), moves the seed into C/Am by ``shift``
semitones and every generated pitch is moved back. With ``follow_register`` (where a
generator offers it) the seed is also moved by whole octaves (``octave`` semitones, a
multiple of 12) towards the middle of the model's pitch range, and the answer back by as
much: a phrase played two octaves up is answered two octaves up, in the model's register.

So a model pitch ``m`` sounds as ``m - shift + octave`` (``_from_model``), and a seed pitch
``p`` is fed as ``p + shift - octave`` (``_to_model``). Constraints (pitch range, scale in
the seed's key) are checked on sounding pitches (``_allows``).

A generator built on ``KeyedGenerator`` calls ``super().__init__(model, metadata, device)``
first in its ``__init__`` (and ``reset()`` last), and gives:
  ``_restart()``              forget the model's state and the steps played (for ``reset``)
  ``_feed_seed(notes)``       start from the seed (sounding notes on the 16th grid, beats,
                              in the seed's key; ``shift`` and ``octave`` are set)
  ``_register_range()``       (low, high) MIDI pitches the model knows when the seed is to be
                              moved by octaves, None when not (the default)
  ``_update_mask()``          recompute what the constraints allow (nothing by default)
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from riffd.engine.generator import Constraints, Step
from riffd.engine.key_finding import Key, estimate_key
from riffd.engine.melody_representation import STEP_BEATS, Note
from riffd.engine.sampling import SamplingSettings
from riffd.engine.seed_profile import octave_offset, register


def quantize_notes(notes: Sequence[Note], step: float = STEP_BEATS) -> list[Note]:
    """Snap note starts and ends to a grid of ``step`` beats, the 16th grid by default (a
    played phrase is never exactly on it); a note keeps at least one step."""
    out = []
    for n in notes:
        start = round(n.start / step) * step
        end = max(start + step, round((n.start + n.duration) / step) * step)
        out.append(Note(n.pitch, start, end - start))
    return out


def draw_seed() -> int:
    """A seed for a generator's own torch.Generator, drawn from torch's global generator."""
    return int(torch.randint(0, 2**62, ()).item())


class KeyedGenerator:
    """Base of a generator that answers a seed in its key, within constraints (one stream)."""

    step_beats = STEP_BEATS
    transposed = True          # the model was trained on songs moved to C major / A minor

    def __init__(self, model: nn.Module, metadata: dict, device: torch.device):
        """The model (moved to ``device``, in eval mode), its checkpoint's metadata, and the
        sampler settings, constraints and key every generator starts with."""
        self.model = model.to(device).eval()
        self.metadata = metadata
        self.device = device
        self.path = None           # the checkpoint file (riffd.engine.loading sets it)
        self.settings = SamplingSettings()
        self.constraints = Constraints()
        self.key = Key(0, "major")
        self.shift = 0             # semitones seed key → C/Am (0 for untransposed models)
        self.octave = 0            # semitones (×12) seed → model register
        # every random draw of this stream comes from here (reseed makes them repeatable), on
        # the model's device, where the sampled logits are; its first seed is drawn from
        # torch's global generator, so torch.manual_seed before loading repeats a whole run
        self.rng = torch.Generator(device=device)
        self.rng.manual_seed(draw_seed())

    # -- state --------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything and start a new piece."""
        self.key, self.shift, self.octave = Key(0, "major"), 0, 0
        self._restart()
        self._update_mask()

    def reseed(self, seed: int) -> None:
        """Make the draws from here on repeatable: after ``reseed(n)`` the same calls (a
        ``prime`` with the same phrase, the same settings, then the same steps) give the same
        notes. ``seed``: 0 … 2**63 - 1."""
        self.rng.manual_seed(seed)

    @torch.inference_mode()
    def prime(self, notes: Sequence[Note]) -> Key:
        """Start a new piece from a seed phrase (beats); returns the key it was heard in."""
        self.reset()
        notes = quantize_notes([n for n in notes if n.pitch is not None])
        if not notes:
            return self.key
        self.key = estimate_key(notes)
        self.shift = self.key.shift_to_reference() if self.transposed else 0
        known = self._register_range()
        if known is not None:
            low, high = known
            self.octave = octave_offset(register(notes), low - self.shift, high - self.shift)
        self._update_mask()
        self._feed_seed(notes)
        return self.key

    def observe(self, step: Step) -> None:
        """Advance as if this generator had played ``step`` (sounding pitches in the seed's
        key), so what it plays next continues from there. This default draws a step of its
        own and drops it, which keeps the generator in time."""
        self.next_step()

    def set_constraints(self, constraints: Constraints) -> None:
        """Pitch range and scale (in the seed's key) for what is generated from now on."""
        self.constraints = constraints
        self._update_mask()

    # -- pitches ------------------------------------------------------------------
    def _from_model(self, model_pitch: int) -> int:
        """The MIDI pitch a model pitch sounds as, in the seed's key and register."""
        return model_pitch - self.shift + self.octave

    def _to_model(self, pitch: int) -> int:
        """The model pitch a MIDI pitch of the seed (its key and register) is fed as."""
        return pitch + self.shift - self.octave

    def _allows(self, model_pitch: int) -> bool:
        """Whether the constraints let a model pitch sound (checked as it sounds)."""
        return self.constraints.allows(self._from_model(model_pitch), self.key.tonic)

    # -- what a generator gives ---------------------------------------------------
    def _restart(self) -> None:
        raise NotImplementedError

    def _feed_seed(self, notes: list[Note]) -> None:
        raise NotImplementedError

    def _register_range(self) -> tuple[int, int] | None:
        return None

    def _update_mask(self) -> None:
        pass
