"""Small real training runs for the tests: a shipped recipe with overrides that shrink it,
its data cache and its output folder under one test folder."""
import shutil
from pathlib import Path

from riffd.engine.checkpoint import read_metadata
from riffd.training.cli import main as train_main
from riffd.training.recipe import load_recipe


def train_small(root: Path, recipe_path: str, overrides: list[str], train) -> tuple:
    """Train ``recipe_path`` with ``overrides`` by ``train`` (a family's ``train(recipe)``),
    caching data under ``ROOT/cache`` and writing the run to ``ROOT/run``.

    Returns ``(recipe, best checkpoint path, root)``."""
    recipe = load_recipe(recipe_path, overrides + [f'data.cache_dir="{root / "cache"}"',
                                                   f'train.output_dir="{root / "run"}"'])
    return recipe, train(recipe), root


def resume_copy(root: Path, run: Path, recipe_path: str, overrides: list[str],
                epochs: int) -> tuple[int, list[int]]:
    """Copy the run in ``ROOT/run`` (from ``train_small``) to ``run`` and go on with it to
    ``epochs`` epochs through ``riffd train --resume``, sharing its data cache.

    Returns the command's exit status and the epochs in ``RUN/last.safetensors``'s history."""
    shutil.copytree(root / "run", run)
    code = train_main(["train", recipe_path, *sum([["--set", s] for s in overrides], []),
                       "--set", f'data.cache_dir="{root / "cache"}"',
                       "--set", f"train.epochs={epochs}",
                       "--output", str(run), "--resume", "--quiet"])
    history = read_metadata(run / "last.safetensors")["training"]["history"]
    return code, [h["epoch"] for h in history]
