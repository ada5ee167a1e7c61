"""``riffd train`` / ``riffd eval`` / ``riffd render``: the offline commands.

``python -m training COMMAND …`` is the same; the daemon's ``riffd`` hands these commands
over to it in a fresh interpreter.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

TRAIN_EPILOG = """examples:
  riffd train configs/melody_erk.toml
  riffd train configs/melody_erk.toml --set train.epochs=5 --set model.hidden_size=128
  riffd train configs/melody_erk.toml --resume

Overrides use section.key=value with TOML values (train.learning_rate=3e-4,
data.corpus=["songs/*.mid"]). An unknown key is an error that lists the known ones.
Checkpoints go to train.output_dir: last.safetensors, best.safetensors and loss.png.
Serve one with: riffd serve --model runs/melody_erk/best.safetensors
"""


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model from a TOML recipe",
                       description="Train a model from a TOML recipe (configs/*.toml).",
                       epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="path of a TOML recipe, e.g. configs/melody_erk.toml")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override a recipe value (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue from last.safetensors in the output folder")
    p.add_argument("--output", help="output folder (same as --set train.output_dir=...)")
    p.add_argument("--quiet", action="store_true", help="log warnings only")


def _family_command(args, attribute: str, verb: str) -> int:
    from engine.checkpoint import CheckpointError, read_metadata
    from training.families import resolve, training_family
    try:
        family = read_metadata(args.checkpoint).get("family")
        target = getattr(training_family(family), attribute)
        if target is None:
            raise ValueError(f"the {family} family has no `riffd {verb}`")
        result = resolve(target)(args.checkpoint, args)
    except (CheckpointError, ValueError) as exc:
        print(f"riffd {verb}: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        print(result)
    return 0


def train_command(args) -> int:
    from training.families import resolve, training_family
    from training.recipe import RecipeError, load_recipe
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riffd", description="riffd's offline commands.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _train_parser(sub)
    ev = sub.add_parser("eval", help="evaluate a checkpoint on held-out data",
                        description="Evaluate a checkpoint: metrics as JSON and a PNG report.")
    ev.add_argument("checkpoint")
    ev.add_argument("--out", help="report folder (default: beside the checkpoint)")
    ev.add_argument("--quiet", action="store_true")
    rd = sub.add_parser("render", help="generate audio or MIDI offline from a checkpoint",
                        description="Generate offline from a checkpoint.")
    rd.add_argument("checkpoint")
    rd.add_argument("output", help="output file (.wav for audio models, .mid for symbolic)")
    rd.add_argument("--seconds", type=float, default=30.0, help="length to generate, seconds")
    rd.add_argument("--seed", help="seed clip or MIDI file")
    rd.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    if args.command == "train":
        return train_command(args)
    if args.command == "eval":
        return _family_command(args, "evaluator", "eval")
    return _family_command(args, "renderer", "render")
