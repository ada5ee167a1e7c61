"""``riffd train``: train a model from a recipe in configs/."""
from __future__ import annotations

import argparse
import logging
import sys

EPILOG = """examples:
  riffd train configs/melody_erk.toml
  riffd train configs/melody_erk.toml --set train.epochs=5 --set model.hidden_size=128
  riffd train configs/melody_erk.toml --resume

Overrides use section.key=value with TOML values (train.learning_rate=3e-4,
data.corpus=["songs/*.mid"]). An unknown key is an error that lists the known ones.
Checkpoints go to train.output_dir: last.safetensors, best.safetensors and loss.png.
Serve one with: riffd serve --model runs/melody_erk/best.safetensors
"""


def build_parser(prog: str = "riffd train") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Train a model from a TOML recipe (configs/*.toml).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="path of a TOML recipe, e.g. configs/melody_erk.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a recipe value (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from last.safetensors in the output folder")
    parser.add_argument("--output", help="output folder (same as --set train.output_dir=...)")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    return parser


def main(argv: list[str] | None = None, prog: str = "riffd train") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s")
    from training.recipe import RecipeError, load_recipe
    from training.train_melody import train
    overrides = list(args.overrides)
    if args.output:
        overrides.append(f'train.output_dir="{args.output}"')
    try:
        recipe = load_recipe(args.recipe, overrides)
        best = train(recipe, resume=args.resume)
    except (RecipeError, ValueError) as exc:
        print(f"riffd train: {exc}", file=sys.stderr)
        return 2
    print(f"best checkpoint: {best}")
    return 0
