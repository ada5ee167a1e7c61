"""The interface every symbolic generator offers the daemon, whatever its model family.

A generator owns one stream of a model and produces one time step at a time
(``step_beats`` beats each, e.g. 0.25 for 16th notes). Each step says which pitches start
there and which keep sounding from earlier steps; the daemon turns that into note-ons and
note-offs, so a melody (one pitch per step) and a piano roll (several) play the same way.

Methods every generator has (see ``riffd.engine.melody_generator.MelodyGenerator``):
  ``reset()``                      forget everything, start a new piece
  ``prime(notes) -> Key``          start from a seed phrase (notes in beats); returns its key
  ``next_step() -> Step``          generate the next step (must not grow in cost with history)
  ``set_constraints(Constraints)`` pitch range and scale, in the seed's key
Attributes: ``family``, ``step_beats``, ``device``, ``metadata``, ``path``, ``settings``
(``riffd.engine.sampling.SamplingSettings``), ``key`` (``riffd.engine.key_finding.Key``).

The symbolic generators share their key, register and constraint handling through
``riffd.engine.keyed_generator.KeyedGenerator``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One time step of generated music.

    starts: MIDI pitches whose notes begin at this step (a pitch that was sounding is
    re-struck). holds: pitches that keep sounding from the previous step. Any pitch that
    sounded before and is in neither ends at this step.
    """

    starts: tuple[int, ...] = ()
    holds: tuple[int, ...] = ()

    @property
    def silent(self) -> bool:
        return not self.starts and not self.holds


@dataclass
class Constraints:
    """Limits on generated pitches, in the seed's key (MIDI numbers, pitch classes 0–11)."""

    low: int = 0
    high: int = 127
    scale: tuple[int, ...] | None = None    # allowed pitch classes, None = all

    def allows(self, pitch: int, tonic: int) -> bool:
        """Whether MIDI ``pitch`` lies in ``low`` … ``high`` and, with a scale, on it
        (pitch classes counted from ``tonic``, the seed's key's 0–11)."""
        return self.low <= pitch <= self.high and (
            self.scale is None or (pitch - tonic) % 12 in self.scale)
