"""``riffd train`` / ``riffd eval`` / ``riffd render``: the offline commands.

``python -m riffd.training COMMAND …`` is the same; the daemon's ``riffd`` hands these commands
over to it in a fresh interpreter.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

TRAIN_EPILOG = """examples:
  riffd train --list                 # the recipes that ship with riffd, and what each trains
  riffd train melody_erk
  riffd train melody_erk --set train.epochs=5 --set model.hidden_size=128
  riffd train melody_erk --resume
  riffd train --show melody_erk > my.toml && riffd train my.toml
  riffd train melody_erk --set 'data.corpus=["my_midi_folder"]'
  riffd train --list-corpora

Overrides use section.key=value with TOML values (train.learning_rate=3e-4,
data.corpus=["songs/*.mid"]). An unknown key is an error that lists the known ones.
Corpora: chorales, essen:NAME (essen:erk), or your own MIDI, MusicXML, kern or ABC files
(audio for the spectral family); --list-corpora says which families take each.
Checkpoints go to train.output_dir: last.safetensors, best.safetensors and loss.png,
with corpus_report.json naming every file left out and why.
Serve one with: riffd serve --model runs/melody_erk/best.safetensors
"""


def _command_parser(sub, name: str, summary: str, description: str,
                    epilog: str) -> argparse.ArgumentParser:
    """A sub-command's parser: ``summary`` in ``riffd --help``, ``description`` above its
    options, ``epilog`` (examples, line breaks kept) below them."""
    return sub.add_parser(name, help=summary, description=description, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_flag(parser: argparse.ArgumentParser, option: str, help_text: str,
              dest: str | None = None) -> None:
    """An on/off option (False unless given)."""
    extra = {"dest": dest} if dest else {}
    parser.add_argument(option, action="store_true", help=help_text, **extra)


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``, which every offline command takes, last in its help."""
    _add_flag(parser, "--quiet", "log warnings only")


def _train_parser(sub) -> None:
    p = _command_parser(sub, "train", "train a model from a TOML recipe",
                        "Train a model from a TOML recipe: the name of one that ships with "
                        "riffd (riffd train --list) or a .toml file.", TRAIN_EPILOG)
    p.add_argument("recipe", nargs="?",
                   help="a shipped recipe's name (melody_erk) or the path of a .toml file")
    _add_flag(p, "--list", "list the shipped recipes and what each trains, then exit",
              dest="list_recipes")
    _add_flag(p, "--show", "print the recipe's TOML (to copy and edit), then exit")
    _add_flag(p, "--list-corpora", "list the corpora (data.corpus entries) and the families "
                                   "that take each, then exit")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override a recipe value (repeatable)")
    _add_flag(p, "--resume", "continue from last.safetensors in the output folder")
    p.add_argument("-o", "--output", help="output folder (same as --set train.output_dir=...); "
                   "with --from-recordings, the fine-tuned checkpoint (.safetensors) or its "
                   "folder (default runs/finetuned/NAME.safetensors, NAME the recordings "
                   "folder's)")
    p.add_argument("--from-recordings", metavar="FOLDER",
                   help="fine-tune a melody model on the phrases you played in the riffd "
                        "recordings (record start/stop) under FOLDER")
    p.add_argument("--base", metavar="MODEL",
                   help="with --from-recordings: the melody checkpoint to start from "
                        "(default: the bundled melody model)")
    p.add_argument("--steps", type=int, default=300,
                   help="with --from-recordings: training steps (default 300, a few minutes "
                        "on a CPU)")
    _add_quiet(p)


def _offline_command(args, target: str, verb: str) -> int:
    """Run ``riffd eval`` or ``riffd render``: print what it returns; a refusal
    (ValueError, CheckpointError, a refused file) is one line on stderr and exit status 2."""
    from riffd.engine.checkpoint import CheckpointError
    from riffd.training.families import resolve
    try:
        result = resolve(target)(args)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"riffd {verb}: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        print(result)
    return 0


def finetune_command(args) -> int:
    """``riffd train --from-recordings FOLDER [--base MODEL] [-o OUT]``."""
    from pathlib import Path

    from riffd.engine.checkpoint import CheckpointError
    from riffd.training.finetune import finetune
    output = args.output
    if output and not output.endswith(".safetensors"):
        output = str(Path(output) / f"{Path(args.from_recordings).resolve().name}.safetensors")
    try:
        result = finetune(args.from_recordings, args.base, output, steps=args.steps)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"riffd train: {exc}", file=sys.stderr)
        return 2
    print(f"fine-tuned on {result.phrases} phrases from {result.files} recordings in "
          f"{result.seconds:.0f} s ({result.loss_bits_before:.2f} -> "
          f"{result.loss_bits_after:.2f} bits/token on them): {result.path}\n"
          f"play it: riffd ctl load_model path={result.path}")
    return 0


def train_command(args) -> int:
    from riffd.training.families import resolve, training_family
    from riffd.training.recipe import RecipeError, load_recipe
    if args.from_recordings:
        return finetune_command(args)
    if args.base:
        print("riffd train: --base goes with --from-recordings FOLDER", file=sys.stderr)
        return 2
    if args.list_corpora:
        from riffd.training.corpora import list_corpora_text
        print(list_corpora_text())
        return 0
    if args.list_recipes:
        from riffd.training.recipe import list_recipes_text
        print(list_recipes_text())
        return 0
    if not args.recipe:
        print("riffd train: name a recipe, e.g. riffd train melody_erk (riffd train --list "
              "shows them; --list-corpora the corpora)", file=sys.stderr)
        return 2
    if args.show:
        from riffd.training.recipe import recipe_text
        try:
            print(recipe_text(args.recipe)[0], end="")
        except RecipeError as exc:
            print(f"riffd train: {exc}", file=sys.stderr)
            return 2
        return 0
    overrides = list(args.overrides)
    if args.output:
        overrides.append(f'train.output_dir="{args.output}"')
    try:
        recipe = load_recipe(args.recipe, overrides)
        best = resolve(training_family(recipe.family).trainer)(recipe, resume=args.resume)
    except (RecipeError, ValueError) as exc:
        print(f"riffd train: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":          # under torchrun, rank 0 speaks
        print(f"best checkpoint: {best}")
    return 0


EVAL_EPILOG = """examples:
  riffd eval runs/melody_erk/best.safetensors
  riffd eval runs/melody_erk/best.safetensors --out reports/ --store
  riffd eval engine/models/melody_erk.safetensors --out reports/

The checkpoint is only read. --store also writes the report into the checkpoint's
metadata (metrics.evaluation); a model inside the riffd package (engine/models/) is
never rewritten: copy it first (cp engine/models/melody_erk.safetensors my.safetensors).
"""

RENDER_EPILOG = """examples:
  riffd render engine/models/melody_erk.safetensors -o out.mid --wav --png
  riffd render runs/notewise_n2/best.safetensors -o riff.mid --seed phrase.mid --bars 16
  riffd render runs/melody_erk/best.safetensors -o a.mid --temperature 0.8 --top-p 0.9 --rng-seed 7
  riffd render engine/models/spectral_default.safetensors -o out.wav --seconds 30 --seed clip.flac
  riffd render engine/models/spectral_default.safetensors -o out.wav --seed phrase.mid

Symbolic models (melody_lstm, notewise_lstm, multilabel_lstm, gan_cnn, gan_bilstm) write
MIDI: the seed (if any) on one track and riffd's continuation, from the bar after the seed,
on another; --wav and --png add a WAV (FluidSynth, the TimGM6mb soundfont of pretty_midi)
and a piano roll beside it. Their length is --bars (4/4). The spectral model writes a WAV
and a spectrogram PNG; its length is --seconds. A wrong seed kind, option or output suffix
for the model is refused with exit status 2.
"""


def _eval_parser(sub) -> None:
    ev = _command_parser(sub, "eval", "evaluate a checkpoint on held-out data",
                         "Evaluate a checkpoint against the held-out part of its own recipe's "
                         "corpus: metrics as JSON (printed and written) and a PNG report.",
                         EVAL_EPILOG)
    ev.add_argument("checkpoint", help="a .safetensors checkpoint written by riffd train")
    ev.add_argument("--out", metavar="FOLDER",
                    help="folder for <name>.eval.json and <name>.eval.png (default: beside the "
                         "checkpoint; the current folder for a model inside the riffd package)")
    _add_flag(ev, "--store", "also store the report in the checkpoint's metadata (rewrites "
                             "the checkpoint; refused for the models inside the riffd package)")
    _add_quiet(ev)


def _render_parser(sub) -> None:
    rd = _command_parser(sub, "render", "generate MIDI or audio offline from a checkpoint",
                         "Generate offline from a checkpoint of any family: MIDI (and on "
                         "request WAV and a piano roll) for symbolic models, WAV and a "
                         "spectrogram for the spectral model.", RENDER_EPILOG)
    rd.add_argument("checkpoint", help="a .safetensors checkpoint (e.g. "
                                       "engine/models/melody_erk.safetensors)")
    rd.add_argument("output", nargs="?", help="output file, as -o")
    rd.add_argument("-o", "--output", dest="output_option", metavar="OUT",
                    help="output file: .mid for symbolic models, .wav for the spectral model")
    rd.add_argument("--seed", metavar="FILE",
                    help="what to continue: a MIDI file for symbolic models; an audio clip "
                         "(WAV, FLAC, OGG) or a MIDI file (rendered with FluidSynth) for the "
                         "spectral model (default: a fresh start; spectral: a held-out clip)")
    length = rd.add_mutually_exclusive_group()
    length.add_argument("--bars", type=int, metavar="N",
                        help="length of a symbolic render in 4/4 bars (default 8)")
    length.add_argument("--seconds", type=float, metavar="S",
                        help="length of a spectral render in seconds (default 30)")
    rd.add_argument("--tempo", type=float, metavar="BPM",
                    help="tempo of the MIDI and WAV, 20..300 (default: the seed's, else 120)")
    _add_flag(rd, "--wav", "symbolic: also write OUT.wav, rendered with FluidSynth")
    _add_flag(rd, "--png", "symbolic: also write OUT.png, a piano roll (spectral models always "
                           "write a spectrogram)")
    rd.add_argument("--temperature", type=float, metavar="T",
                    help="sampling temperature 0.05..5: low is safe, high adventurous "
                         "(default 1; a spectral model: its own, noisier above it)")
    rd.add_argument("--top-k", type=int, metavar="K",
                    help="sample among the K most likely tokens only, 0..512 (default 0 = off)")
    rd.add_argument("--top-p", type=float, metavar="P",
                    help="sample among the most likely tokens whose probabilities add up to "
                         "P, 0.01..1 (default 1 = off)")
    _add_flag(rd, "--greedy", "always pick the most likely token (ignores the temperature)")
    rd.add_argument("--density", type=int, metavar="N",
                    help="most notes started per bar, 0..64 (default 0 = no limit)")
    rd.add_argument("--low", type=int, metavar="PITCH",
                    help="lowest MIDI pitch played (default 0)")
    rd.add_argument("--high", type=int, metavar="PITCH",
                    help="highest MIDI pitch played (default 127)")
    rd.add_argument("--velocity", type=int, metavar="V",
                    help="MIDI velocity of the generated notes, 1..127 (default 90)")
    _add_flag(rd, "--no-follow", "symbolic, with --seed: let the model play on its own terms "
                                 "(by default it keeps to the seed's scale and register, and "
                                 "without --density to at most 2 x its notes per bar)",
              dest="no_follow")
    rd.add_argument("--rng-seed", "--seed-value", dest="rng_seed", type=int, metavar="N",
                    help="seed of the random draws: the same N gives the same output "
                         "(default: a fresh one, printed)")
    _add_quiet(rd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riffd", description="riffd's offline commands.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    _render_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    if args.command == "train":
        return train_command(args)
    if args.command == "eval":
        return _offline_command(args, "riffd.training.evaluate:eval_command", "eval")
    return _offline_command(args, "riffd.training.render:render_command", "render")
