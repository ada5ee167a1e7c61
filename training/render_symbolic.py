"""``riffd render CHECKPOINT -o out.mid`` for the symbolic families (melody_lstm,
notewise_lstm, multilabel_lstm, gan_cnn, gan_bilstm).

The checkpoint becomes the same generator the daemon serves. With ``--seed FILE.mid`` it is
primed with the seed's notes (drums left out; a melody model hears the top note of each
chord) and continues in the seed's key; without one it starts a new piece. It generates
``--bars`` bars of 4/4 (16th steps) with the sampling controls given, and writes a MIDI file
with two tracks, the seed as given and the continuation from the bar after the seed; with
``--wav`` also a WAV rendered with FluidSynth, with ``--png`` a piano roll, both beside the
MIDI file. ``--rng-seed N`` makes the output repeatable.

As the daemon's voices do by default, the continuation follows the seed: it keeps to the
seed's scale (its mode: D dorian, G mixolydian...), to a window around the seed's median
pitch (within ``--low`` … ``--high``) and, without ``--density``, to at most 2 × the seed's
notes per bar. ``--no-follow`` lets the model play on its own terms.
"""
from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from riffd.engine.generator import Step
from riffd.engine.loading import load_generator
from riffd.engine.melody_generator import Constraints
from riffd.engine.melody_representation import Note
from riffd.engine.seed_profile import density_limit, register, register_window
from riffd.training.render_seed import DEFAULT_TEMPO_BPM, notes_to_pretty_midi, read_seed_midi, synthesize

log = logging.getLogger(__name__)
BEATS_PER_BAR = 4
DEFAULT_BARS = 8
MAX_BARS = 1024
SEED_BEATS = 64.0                 # a longer seed primes with its last 16 bars only
MAX_LEADING_SILENCE_STEPS = 16    # as a daemon answer: skip up to one bar of silence first
WAV_RATE = 44100                  # Hz


class RenderError(ValueError):
    """A render request that cannot be done; the message names the problem and the fix."""


@dataclass
class SymbolicRequest:
    """What to render: length in bars, tempo in BPM, sampling controls (None = the model's
    defaults), ``density`` (most note starts per bar, 0 = no limit), pitch range (MIDI),
    note velocity, the RNG seed and which extra files to write."""

    bars: int = DEFAULT_BARS
    tempo: float | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False
    density: int = 0
    low: int = 0
    high: int = 127
    velocity: int = 90
    follow: bool = True
    rng_seed: int | None = None
    wav: bool = False
    png: bool = False


def check_request(r: SymbolicRequest) -> None:
    """Raise RenderError naming a control out of range and its allowed values."""
    if not 1 <= r.bars <= MAX_BARS:
        raise RenderError(f"--bars must be 1..{MAX_BARS}, not {r.bars}")
    if r.tempo is not None and not 20 <= r.tempo <= 300:
        raise RenderError(f"--tempo must be 20..300 BPM, not {r.tempo:g}")
    if r.temperature is not None and not 0.05 <= r.temperature <= 5.0:
        raise RenderError(f"--temperature must be 0.05..5, not {r.temperature:g}")
    if r.top_k is not None and not 0 <= r.top_k <= 512:
        raise RenderError(f"--top-k must be 0..512 (0 = off), not {r.top_k}")
    if r.top_p is not None and not 0.01 <= r.top_p <= 1.0:
        raise RenderError(f"--top-p must be 0.01..1 (1 = off), not {r.top_p:g}")
    if not 0 <= r.density <= 64:
        raise RenderError(f"--density must be 0..64 notes per bar (0 = no limit), not {r.density}")
    if not (0 <= r.low <= 127 and 0 <= r.high <= 127 and r.low <= r.high):
        raise RenderError(f"--low and --high must be MIDI pitches 0..127 with low <= high, "
                          f"not {r.low} and {r.high}")
    if not 1 <= r.velocity <= 127:
        raise RenderError(f"--velocity must be 1..127, not {r.velocity}")


def seed_rng(seed: int | None) -> int:
    """Seed Python's, NumPy's and torch's RNGs with ``seed`` (a fresh one when None);
    returns the seed used."""
    if seed is None:
        seed = random.SystemRandom().randrange(2**31 - 1)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def skyline(notes: list[Note]) -> list[Note]:
    """The top note of each onset (what a melody model can hear of chords)."""
    top: dict[float, Note] = {}
    for n in notes:
        if n.start not in top or n.pitch > top[n.start].pitch:
            top[n.start] = n
    return [top[s] for s in sorted(top)]


def apply_controls(generator, r: SymbolicRequest, heard: list[Note] | None = None) -> int:
    """Sampling controls and pitch range onto a generator (the daemon's names); with
    ``r.follow`` and the seed's notes ``heard`` (the generator primed with them), also the
    seed's scale and register. Returns the density to play at (most note starts per bar,
    0 = no limit): ``r.density``, else (following) 2 × the seed's notes per bar."""
    s = generator.settings
    if r.temperature is not None:
        s.temperature = r.temperature
    if r.top_k is not None:
        s.top_k = r.top_k
    if r.top_p is not None:
        s.top_p = r.top_p
    s.greedy = r.greedy or s.greedy
    density, low, high, scale = r.density, r.low, r.high, None
    if r.follow and heard:
        scale = tuple(getattr(generator.key, "scale", ())) or None          # the seed's mode
        low, high = register_window(register(heard), r.low, r.high)
        density = density or density_limit(heard, BEATS_PER_BAR)
    generator.set_constraints(Constraints(low=low, high=high, scale=scale))
    if generator.family.startswith("gan") and (r.temperature, r.top_k, r.top_p) != (None,) * 3:
        log.warning("a GAN decodes whole bars by threshold: --temperature, --top-k and "
                    "--top-p change nothing for %s (use --density, --low, --high)",
                    generator.family)
    return density


def generate_steps(generator, n_steps: int, density: int, skip_silence: bool,
                   beats_per_bar: int = BEATS_PER_BAR) -> list[Step]:
    """``n_steps`` steps from a primed generator. ``density`` (> 0): past that many starts
    in a bar, starts become holds of what sounds (as the daemon's voice thins). With
    ``skip_silence``, up to one bar of silent steps before the first start is skipped."""
    steps: list[Step] = []
    sounding: tuple[int, ...] = ()
    steps_per_bar = round(beats_per_bar / generator.step_beats)
    to_skip = MAX_LEADING_SILENCE_STEPS if skip_silence else 0
    bar_starts = 0
    while len(steps) < n_steps:
        step = generator.next_step()
        if to_skip > 0:
            if not step.starts:
                to_skip -= 1
                continue
            to_skip = 0
        if len(steps) % steps_per_bar == 0:
            bar_starts = 0
        if density > 0 and step.starts:
            if bar_starts >= density:
                step = Step(starts=(), holds=sounding)
            else:
                bar_starts += 1
        sounding = tuple(sorted(set(step.starts) | set(step.holds)))
        steps.append(step)
    return steps


def plot_piano_roll(path: Path, tracks: dict[str, list[Note]], title: str,
                    beats_per_bar: int = BEATS_PER_BAR) -> None:
    """A piano roll (PNG): one colour per track, time in beats with bar lines, MIDI pitch up."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(12, 4))
    pitches, end = [], float(beats_per_bar)
    for (name, notes), colour in zip(tracks.items(), ["tab:grey", "tab:blue", "tab:orange"]):
        for n in notes:
            ax.add_patch(Rectangle((n.start, n.pitch - 0.4), n.duration, 0.8, color=colour,
                                   alpha=0.85))
            pitches.append(n.pitch)
            end = max(end, n.start + n.duration)
        ax.plot([], [], color=colour, linewidth=8, label=f"{name} ({len(notes)} notes)")
    low, high = (min(pitches) - 2, max(pitches) + 2) if pitches else (55, 80)
    for bar in range(0, int(math.ceil(end)) + 1, beats_per_bar):
        ax.axvline(bar, color="lightgrey", linewidth=0.5, zorder=0)
    ax.set(xlim=(0, end), ylim=(low, high), xlabel="beats", ylabel="MIDI pitch", title=title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render_symbolic(checkpoint: str | Path, output: str | Path, request: SymbolicRequest,
                    seed: str | Path | None = None) -> str:
    """Render ``request.bars`` bars from a symbolic checkpoint into ``output`` (.mid), plus
    a WAV and a PNG beside it on request. Returns a one-line summary of what was written."""
    from riffd.training.evaluate import steps_to_notes
    from riffd.training.spectral_render import write_wav

    check_request(request)
    output = Path(output)
    if output.suffix.lower() not in (".mid", ".midi"):
        raise RenderError(f"symbolic models render MIDI: give an output ending in .mid, not "
                          f"{output.name} (add --wav and --png for audio and a piano roll)")
    seed_notes: list[Note] = []
    seed_tempo = None
    if seed is not None:
        seed_notes, seed_tempo = read_seed_midi(seed)
    tempo = request.tempo or seed_tempo or DEFAULT_TEMPO_BPM
    rng_seed = seed_rng(request.rng_seed)
    generator = load_generator(checkpoint, "cpu", kind="midi")
    generator.reseed(rng_seed)                     # every draw comes from the generator's own
    heard: list[Note] = []
    if hasattr(generator, "follow_register"):      # the seed moved into the model's register
        generator.follow_register = request.follow  # by octaves, and the answer back to its own
    if seed_notes:
        seed_end = max(n.start + n.duration for n in seed_notes)
        recent = [n for n in seed_notes if n.start + n.duration > seed_end - SEED_BEATS]
        heard = skyline(recent) if generator.family == "melody_lstm" else recent
        key = generator.prime(heard).name
    else:
        seed_end, key = 0.0, "no seed"
        generator.reset()
    density = apply_controls(generator, request, heard)
    n_steps = round(request.bars * BEATS_PER_BAR / generator.step_beats)
    steps = generate_steps(generator, n_steps, density, skip_silence=bool(seed_notes))
    offset = math.ceil(seed_end / BEATS_PER_BAR) * BEATS_PER_BAR
    generated = [Note(n.pitch, n.start + offset, n.duration)
                 for n in steps_to_notes(steps, generator.step_beats)]
    tracks = {"seed": seed_notes, "riffd": generated} if seed_notes else {"riffd": generated}

    output.parent.mkdir(parents=True, exist_ok=True)
    pm = notes_to_pretty_midi(tracks, tempo, request.velocity)
    pm.write(str(output))
    written = [f"{output} ({request.bars} bars, {len(generated)} notes, {tempo:g} BPM, "
               f"{generator.family}, key {key}, rng seed {rng_seed})"]
    if request.wav:
        wav = output.with_suffix(".wav")
        write_wav(wav, synthesize(pm, WAV_RATE), WAV_RATE)
        written.append(str(wav))
    if request.png:
        png = output.with_suffix(".png")
        plot_piano_roll(png, tracks, f"{Path(checkpoint).name}: {request.bars} bars"
                        + (f" after {Path(seed).name}" if seed_notes else ""))
        written.append(str(png))
    log.debug("wrote %s", ", ".join(written))
    return "wrote " + ", ".join(written)
