"""Output latency compensation: sending notes early so they sound on the grid at a slow synth.

A synth (or the MIDI interface and cable in front of it) takes a while from receiving a
note-on to sounding it. ``output_latency_ms`` tells riffd how long: each note of a voice then
leaves ``riffd:out`` that many milliseconds *before* its grid time and sounds on it. A negative
value delays the notes instead (a synth that is early against the others, or a deliberate
lay-back). ``riffd calibrate`` (daemon/calibrate.py) measures the value through a loopback.

Where it is set:

- daemon-wide: ``riffd serve --output-latency-ms MS`` (serve config key ``output_latency_ms``):
  the value every voice starts with (riffd has one output port, so this is the port's value);
- per voice: the voice control ``output_latency_ms`` ([[voice]] key, ``add_voice``, ``set``).
  ``set output_latency_ms=…`` without a voice sets every voice and the daemon-wide value (which
  later ``add_voice`` calls start with).

Mechanics: the voice asks the scheduler to send each note ``early_s`` seconds before its time
(:meth:`riffd.daemon.scheduler.Scheduler.schedule_on`); the voice generates that much further ahead
and starts an answer no sooner than ``PREPARE_S + early_s`` from the request, so an early note
is never late. A note keeps the offset it was started with for its note-off, so changing the
offset while notes sound never sends an off before its on. riffd's record of what it played
(``note_on`` / ``note_off`` events, recordings) keeps the grid time in ``at``; the events add
``send_at``, when the message left the port. MIDI clock out is not shifted (see README).
"""
from __future__ import annotations

MAX_OUTPUT_LATENCY_MS = 500.0     # |output_latency_ms| allowed, milliseconds


def check_output_latency_ms(value: float, where: str = "output_latency_ms") -> float:
    """``value`` as a float when it lies within ±MAX_OUTPUT_LATENCY_MS milliseconds; raises
    ValueError saying what is allowed and what the value means otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{where} must be a number of milliseconds, not {value!r}")
    if not -MAX_OUTPUT_LATENCY_MS <= value <= MAX_OUTPUT_LATENCY_MS:
        raise ValueError(f"{where} must be between {-MAX_OUTPUT_LATENCY_MS:g} and "
                         f"{MAX_OUTPUT_LATENCY_MS:g} ms (how much earlier notes leave riffd "
                         f"than they should sound; negative delays them), not {value:g}; "
                         f"measure your synth with `riffd calibrate`")
    return float(value)


def early_s(output_latency_ms: float) -> float:
    """Seconds a note leaves before its grid time for an offset in milliseconds."""
    return output_latency_ms / 1000.0


def lead_s(output_latency_ms: float) -> float:
    """Seconds a voice must prepare further ahead for an offset (never negative: a delayed
    note needs no more time than an on-time one)."""
    return max(0.0, early_s(output_latency_ms))
