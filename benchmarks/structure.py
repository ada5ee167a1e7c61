"""Structure: do motifs come back? riffd's continuous output against the training corpus.

    .venv/bin/python benchmarks/structure.py [--bars 64] [--runs 5] [--songs 300]

Plays ``--bars`` bars of continuous output from the bundled melody model (seeded with the
opening bar or two of ``--runs`` corpus songs, fixed random seeds) with ``repeat`` = 0 (the
model alone) and at the voice's defaults (engine/motif_memory.py, as daemon/voice.py plays
on), and reads the Essen ``erk`` songs the model was trained on. For each it prints

- the longest repeated run: the most consecutive notes (same pitch and duration) that occur
  twice without overlapping, in notes;
- the share of recurring 4-bar patterns: of the 4-bar windows starting at each bar line, how
  many have their notes (onset in the window, pitch, duration) again in another window of
  the same piece (and the same for 2-bar windows).

riffd plays 4/4 bars; a corpus song is measured in its own time signature, its bars counted
from its first full bar line (a pickup sits at the end of bar 0). Corpus songs
are short (median about 20 bars), so their windows are few: the share is the fairer figure.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from riffd.daemon.voice import VoiceSettings
from riffd.engine.loading import load_generator
from riffd.engine.melody_representation import Note
from riffd.engine.motif_memory import (MotifMemory, longest_repeat, play_on, recurring_share,
                                       steps_to_notes)


def corpus_songs(limit: int) -> list[tuple[list[Note], float]]:
    """(notes in beats from the first bar line, bar length in beats) of up to ``limit`` erk
    songs, in file order."""
    from riffd.training.corpus import iter_scores, resolve_corpus
    songs = []
    for path in resolve_corpus(["essen:erk"]):
        for _, score in iter_scores(path, melody_only=True):
            measures = score.parts[0].getElementsByClass("Measure") if score.parts else []
            if not measures:
                continue
            sig = measures[0].barDuration.quarterLength
            pickup = float(sig - measures[0].duration.quarterLength) \
                if measures[0].duration.quarterLength < sig else 0.0
            notes = [Note(e.pitch.midi, float(e.offset) + pickup, float(e.quarterLength))
                     for e in score.flatten().notes if not e.isChord and e.quarterLength > 0]
            if notes:
                songs.append((notes, float(sig)))
            if len(songs) >= limit:
                return songs
    return songs


def summary(name: str, longest: list[int], recurring: int, windows: int, two: int,
            two_windows: int) -> str:
    share = recurring / windows if windows else 0.0
    return (f"{name:<30} longest repeated run: median {statistics.median(longest):5.1f}, "
            f"max {max(longest):3d} notes | recurring 4-bar patterns: {share:6.1%} "
            f"({recurring}/{windows}) | 2-bar: {two / max(1, two_windows):6.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bars", type=int, default=64, help="bars of riffd output per run")
    ap.add_argument("--runs", type=int, default=5, help="riffd runs (seeds)")
    ap.add_argument("--songs", type=int, default=300, help="corpus songs read (0 = all)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    started = time.perf_counter()
    songs = corpus_songs(args.songs or 10**9)
    c_long, c_rec, c_win, c_two, c_two_win = [], 0, 0, 0, 0
    for notes, bar in songs:
        c_long.append(longest_repeat(notes))
        r, w = recurring_share(notes, bar)
        r2, w2 = recurring_share(notes, bar, 2)
        c_rec, c_win, c_two, c_two_win = c_rec + r, c_win + w, c_two + r2, c_two_win + w2
    bars = statistics.median(max(n.start + n.duration for n in s) / b for s, b in songs)
    print(f"corpus: {len(songs)} erk songs read in {time.perf_counter() - started:.0f} s "
          f"(median {bars:.0f} bars)")

    defaults = VoiceSettings()
    generator = load_generator(None, "cpu")
    rows = []
    for label, repeat in (("riffd, repeat 0", 0.0), ("riffd, repeat 0.25", 0.25),
                          (f"riffd, repeat {defaults.repeat} (default)", defaults.repeat)):
        longest, rec, win, two, two_win, recalls = [], 0, 0, 0, 0, 0
        for run in range(args.runs):
            seed, bar = songs[run % len(songs)]
            opening = [n for n in seed if n.start < 2 * bar]
            generator.reseed(run)
            generator.prime(opening)
            memory = MotifMemory(seed=run)
            steps = play_on(generator, memory, args.bars, repeat, defaults.motif_bars)
            notes = steps_to_notes(steps, generator.step_beats)
            longest.append(longest_repeat(notes))
            r, w = recurring_share(notes, 4.0)
            r2, w2 = recurring_share(notes, 4.0, 2)
            rec, win, recalls = rec + r, win + w, recalls + memory.recalls
            two, two_win = two + r2, two_win + w2
        rows.append(summary(label, longest, rec, win, two, two_win)
                    + f" | {recalls / args.runs:.1f} phrases recalled per run")
    print(f"riffd: {args.runs} runs of {args.bars} bars (4/4), motif_bars "
          f"{defaults.motif_bars}, bundled melody model")
    for row in rows:
        print(row)
    print(summary(f"erk corpus ({len(songs)} songs)", c_long, c_rec, c_win, c_two, c_two_win))


if __name__ == "__main__":
    main()
