"""``riffd render``: one entry point for every family.

Reads the checkpoint's family, checks that the options and the seed fit its kind (symbolic
models: a MIDI seed, a length in ``--bars``, sampling controls; the spectral model: an
audio or MIDI seed, a length in ``--seconds``, ``--temperature``) and hands over to
:mod:`riffd.training.render_symbolic` or :mod:`riffd.training.spectral_render`. Every refusal is a
ValueError whose message names the problem and the fix (``riffd render`` exits 2).
"""
from __future__ import annotations

from pathlib import Path

from riffd.engine.checkpoint import read_metadata
from riffd.engine.loading import MODEL_FAMILIES

SAMPLING_OPTIONS = ("temperature", "top_k", "top_p", "greedy", "density", "low", "high",
                    "velocity", "no_follow", "tempo", "bars")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def output_path(args) -> str:
    """The output file from ``-o OUT`` or the positional OUTPUT (one of them, not two
    different ones)."""
    given = [p for p in (getattr(args, "output_option", None), getattr(args, "output", None))
             if p]
    if not given:
        raise ValueError("no output file: give one with -o, e.g. -o out.mid (symbolic models) "
                         "or -o out.wav (spectral models)")
    if len(set(given)) > 1:
        raise ValueError(f"two output files ({given[1]} and -o {given[0]}); give one")
    return given[0]


def render_command(args) -> str:
    """Render ``args.checkpoint`` as the family demands; returns what was written."""
    from riffd.training.render_seed import seed_kind
    checkpoint = Path(args.checkpoint)
    family = read_metadata(checkpoint).get("family")
    if family not in MODEL_FAMILIES:
        raise ValueError(f"{checkpoint}: unknown model family {family!r}; riffd render knows "
                         f"{', '.join(sorted(MODEL_FAMILIES))}")
    args.output = output_path(args)
    kind = MODEL_FAMILIES[family].kind
    seed = getattr(args, "seed", None)
    seed_is = seed_kind(seed) if seed else None
    if kind == "audio":
        given = [_flag(n) for n in SAMPLING_OPTIONS if n != "temperature"
                 and getattr(args, n, None) not in (None, False)]
        if given:
            raise ValueError(f"{', '.join(given)} apply to symbolic (MIDI) models; {family} "
                             "is an audio model: give its length with --seconds S (and "
                             "--temperature T, --rng-seed N)")
        from riffd.training.spectral_render import render_command as spectral
        return f"wrote {spectral(checkpoint, args)}"
    if getattr(args, "seconds", None) is not None:
        raise ValueError(f"{family} is a symbolic (MIDI) model, measured in bars: use --bars N "
                         "instead of --seconds (with --tempo BPM; 8 bars at 120 BPM last 16 s)")
    if seed_is == "audio":
        raise ValueError(f"seed {seed} is an audio file, but {family} is a symbolic (MIDI) "
                         "model: give a MIDI file (.mid) as --seed")
    from riffd.training.render_symbolic import DEFAULT_BARS, SymbolicRequest, render_symbolic
    request = SymbolicRequest(
        bars=args.bars if args.bars is not None else DEFAULT_BARS, tempo=args.tempo,
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        greedy=bool(args.greedy), density=args.density or 0,
        low=args.low if args.low is not None else 0,
        high=args.high if args.high is not None else 127,
        velocity=args.velocity if args.velocity is not None else 90,
        follow=not getattr(args, "no_follow", False), rng_seed=args.rng_seed, wav=bool(args.wav), png=bool(args.png))
    return render_symbolic(checkpoint, args.output, request, seed)
