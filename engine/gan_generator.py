"""Streaming a GAN: bar after bar, each decoded into 16th-note ``Step``s for the daemon.

Coherence between bars: the latent vector moves by a spherical random walk. For the next
bar, ``z' = cos(a)·z + sin(a)·n``, where ``n`` is a fresh Gaussian made orthogonal to ``z``
and scaled to ``z``'s length, and ``a`` is ``walk_angle`` (radians). The length of ``z``
stays what a standard-normal latent has, so every latent is one the generator saw in
training, and successive bars differ by a set amount: 0 repeats the bar, π/2 jumps to an
unrelated one.

Decoding: the bar's probabilities (bar_steps × pitches) are thresholded at ``threshold``
(0.5 by default); a pitch on in consecutive frames is held, across the bar line too.

``prime(notes)`` estimates the seed's key and starts the walk from the best of
``prime_candidates`` random latents: the one whose bar's pitch-class profile is closest
(cosine) to the seed's. When the model was trained on music moved to C major / A minor
(``representation.key_normalisation``), its bars are moved back into the seed's key.

Cost per bar: the walk's next ``lookahead`` latents are known in advance, so their bars
are made in one batched generator pass (8 by default: the document-sized bi-LSTM generator
takes about 33 ms for 8 bars against 14–18 ms for one, on one CPU thread), and kept as
probabilities; the threshold and the constraints are applied when a bar is played, so
changing them takes effect at the next bar. ``prime`` does one pass at batch
``prime_candidates`` and plays the chosen bar first. Nothing grows with the history.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch

from riffd.engine.gan_bilstm import GANBase
from riffd.engine.generator import Step
from riffd.engine.keyed_generator import KeyedGenerator, draw_seed
from riffd.engine.melody_representation import Note
from riffd.engine.onednn import onednn
from riffd.engine.pianoroll import PitchRange, notes_to_roll, roll_to_steps


class GANGenerator(KeyedGenerator):
    """A GAN model, its latent walk and the bar being played (one stream)."""

    def __init__(self, model: GANBase, metadata: dict, device: torch.device,
                 seed: int | None = None):
        # the sampler settings serve only the daemon's interface: a bar is decoded by threshold
        super().__init__(model, metadata, device)
        self.family = model.family
        representation = metadata.get("representation", {})
        self.pitch_range = PitchRange(**representation.get("pitch_range",
                                                           {"low": 60, "high": 83, "fold": True}))
        self.transposed = representation.get("key_normalisation", "none") != "none"
        self.threshold = float(representation.get("threshold", 0.5))
        self.walk_angle = 0.35                 # radians between successive latents
        self.prime_candidates = 16             # latents tried by prime (one batched pass)
        self.lookahead = 8                     # bars generated per batched pass
        self.use_onednn = True                 # CPU: oneDNN for the batched pass (faster at
                                               # batch 8; benchmarks/symbolic_latency.py)
        self.rng = torch.Generator().manual_seed(      # latents are drawn on the CPU
            seed if seed is not None else draw_seed())
        self._z: torch.Tensor | None = None
        self._pending: deque[Step] = deque()
        self._bars: deque[np.ndarray] = deque()    # (T, P) probabilities of coming bars
        self._last_frame: np.ndarray | None = None
        self.reset()

    # -- state --------------------------------------------------------------------
    def _restart(self) -> None:
        """A new piece from a random latent, nothing pending."""
        self._z = self._random_latent(1)
        self._pending.clear()
        self._bars.clear()
        self._last_frame = None

    def _feed_seed(self, notes: list[Note]) -> None:
        """Start the walk from the latent (of ``prime_candidates``) whose bar best fits the
        seed; that bar is played first. (The register is not followed: ``octave`` stays 0.)"""
        moved = [Note(self._to_model(n.pitch), n.start, n.duration) for n in notes]
        seed_profile = _chroma(notes_to_roll(moved, self.pitch_range), self.pitch_range)
        candidates = self._random_latent(self.prime_candidates)              # (K, Z)
        bars = self.model(candidates.to(self.device)).cpu().numpy()          # (K, T, P)
        profiles = np.stack([_chroma(b >= self.threshold, self.pitch_range) for b in bars])
        scores = profiles @ seed_profile / (np.linalg.norm(profiles, axis=1)
                                            * np.linalg.norm(seed_profile) + 1e-9)
        best = int(np.argmax(scores))
        self._z = self._walk(candidates[best][None])
        self._bars.append(bars[best])               # the chosen bar is played first

    # -- generation ---------------------------------------------------------------
    def next_step(self) -> Step:
        """The next 16th step; a new bar is generated when the current one is used up."""
        if not self._pending:
            self._pending.extend(self.next_bar())
        return self._pending.popleft()

    @torch.inference_mode()
    def next_bar_roll(self) -> np.ndarray:
        """The next bar as a ``(bar_steps, pitches)`` bool roll (the walk moves on)."""
        if not self._bars:
            latents = []
            for _ in range(max(1, self.lookahead)):
                latents.append(self._z)
                self._z = self._walk(self._z)
            with onednn(self.device, self.use_onednn):
                probs = self.model(torch.cat(latents).to(self.device)).cpu().numpy()  # (K, T, P)
            self._bars.extend(probs)
        return self._bars.popleft() >= self.threshold

    def next_bar(self) -> list[Step]:
        """The next bar as ``Step``s, pitches in the seed's key, constraints applied."""
        roll = self._constrain(self.next_bar_roll())
        steps = roll_to_steps(roll, self._out_range, previous=self._last_frame)
        self._last_frame = roll[-1]
        return steps

    # -- helpers ------------------------------------------------------------------
    _out_range = PitchRange(0, 127, fold=False)    # columns of a constrained roll: MIDI pitches

    def _constrain(self, roll: np.ndarray) -> np.ndarray:
        """(T, P) model roll → (T, 128) roll of MIDI pitches in the seed's key, limited to
        the constraints (out-of-range pitches moved by octaves, off-scale ones dropped)."""
        c = self.constraints
        out = np.zeros((roll.shape[0], 128), dtype=bool)
        for column in np.flatnonzero(roll.any(axis=0)):
            pitch = self._from_model(self.pitch_range.pitch(int(column)))
            if c.high - c.low >= 11:
                while pitch < c.low:
                    pitch += 12
                while pitch > c.high:
                    pitch -= 12
            if 0 <= pitch <= 127 and c.allows(pitch, self.key.tonic):
                out[:, pitch] |= roll[:, column]
        return out

    def _random_latent(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.model.latent_dim, generator=self.rng)

    def _walk(self, z: torch.Tensor) -> torch.Tensor:
        """One step of the spherical random walk: (1, Z) → (1, Z), same length."""
        noise = torch.randn(z.shape, generator=self.rng)
        norm = z.norm()
        unit = z / norm
        noise = noise - (noise * unit).sum() * unit                 # orthogonal to z
        noise = noise / noise.norm() * norm
        a = self.walk_angle
        return math.cos(a) * z + math.sin(a) * noise


def _chroma(roll: np.ndarray, pitch_range: PitchRange) -> np.ndarray:
    """(12,) sounding frames per pitch class of a roll."""
    counts = np.asarray(roll, dtype=float).sum(axis=0)
    chroma = np.zeros(12)
    np.add.at(chroma, (np.arange(pitch_range.size) + pitch_range.low) % 12, counts)
    return chroma
