"""`riffd eval` on tiny trained models of four families: JSON, PNG; the checkpoint is only
written with --store, and never inside the riffd package."""
import hashlib
import json
import shutil

import pytest

from riffd.engine.checkpoint import load_checkpoint, read_metadata
from riffd.engine.generator import Step
from riffd.engine.melody_representation import Note
from tests.training.test_train_gan import train_tiny_gan
from riffd.training.cli import main as cli_main
from riffd.engine.loading import BUNDLED_MODEL
from riffd.training.evaluate import report_folder, steps_to_notes
from riffd.training.families import resolve, training_family
from riffd.training.recipe import load_recipe
from riffd.training.train_melody import train as train_melody

MELODY = ["data.corpus=[\"essen:erk5\"]", "model.hidden_size=32", "model.embed_dim=8",
          "train.epochs=1", "train.batch_size=16", "train.stride=16"]
NOTEWISE = ['data.corpus=["essen:erk5"]', "model.hidden_size=32", "model.pitch_embed_dim=16",
            "model.dense_size=32", "train.epochs=1", "train.batch_size=16", "train.stride=8"]
MULTILABEL = ["data.max_songs=6", "model.hidden_size=32", "model.dense_size=32",
              "model.attention_window=16", "train.epochs=1", "train.batch_size=16",
              "train.stride=8"]
HELD_OUT = {"melody_lstm": ("next_token_accuracy", "bits_per_token"),
            "notewise_lstm": ("pitch_accuracy", "duration_accuracy", "bits_per_event"),
            "multilabel_lstm": ("top3_accuracy", "frame_accuracy", "bits_per_frame")}


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_tiny(root, config, overrides):
    recipe = load_recipe(config, overrides + [f'data.cache_dir="{root / "cache"}"',
                                              f'train.output_dir="{root / recipe_stem(config)}"'])
    return resolve(training_family(recipe.family).trainer)(recipe)


def recipe_stem(config):
    return config.rsplit("/", 1)[-1].removesuffix(".toml")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    recipe = load_recipe("configs/melody_erk.toml", MELODY + [
        f'data.cache_dir="{root / "cache"}"', f'train.output_dir="{root / "melody"}"'])
    return root, {"melody_lstm": train_melody(recipe), "gan_cnn": train_tiny_gan(root),
                  "notewise_lstm": train_tiny(root, "configs/notewise_n1_folk.toml", NOTEWISE),
                  "multilabel_lstm": train_tiny(root, "configs/multilabel_m5_chorales.toml",
                                                MULTILABEL)}


def test_steps_to_notes():
    steps = [Step(starts=(60, 64)), Step(holds=(60, 64)), Step(starts=(60,), holds=(64,)),
             Step(), Step(starts=(67,))]
    assert steps_to_notes(steps) == [Note(60, 0.0, 0.5), Note(64, 0.0, 0.75),
                                     Note(60, 0.5, 0.25), Note(67, 1.0, 0.25)]


@pytest.mark.parametrize("family", ["melody_lstm", "gan_cnn", "notewise_lstm", "multilabel_lstm"])
def test_eval_writes_report_and_leaves_the_checkpoint_alone(checkpoints, family, tmp_path,
                                                           capsys):
    _, paths = checkpoints
    path = paths[family]
    digest = sha256(path)
    assert cli_main(["eval", str(path), "--out", str(tmp_path / "report"), "--quiet"]) == 0
    report = json.loads((tmp_path / "report" / f"{path.stem}.eval.json").read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert (tmp_path / "report" / f"{path.stem}.eval.png").read_bytes()[:4] == b"\x89PNG"
    assert report["family"] == family
    side = report["independent_bars"] if family == "gan_cnn" else report["side_by_side"]
    for key in ("empty_bars_pct", "used_pitch_classes", "qualified_notes_pct",
                "pitch_entropy_bits"):
        assert set(side[key]) == {"generated", "real"}
    assert 0 <= side["pitch_class_histogram_distance"] <= 1
    assert side["used_pitch_classes"]["real"] > 0
    if family in HELD_OUT:
        accuracy, *_, bits = HELD_OUT[family]
        assert set(report["held_out"]) == set(HELD_OUT[family])
        assert 0 <= report["held_out"][accuracy] <= 1 and report["held_out"][bits] > 0
    else:
        assert report["independent_bars"]["count"] == 2000
        assert report["latent_walk"]["pieces"] > 0
    assert sha256(path) == digest                          # byte for byte: not rewritten
    assert "evaluation" not in read_metadata(path).get("metrics", {})


def test_eval_store_writes_the_report_into_the_checkpoint(checkpoints, tmp_path, capsys):
    _, paths = checkpoints
    path = tmp_path / "gan.safetensors"
    shutil.copy(paths["gan_cnn"], path)
    tensors_before, _ = load_checkpoint(path)
    assert cli_main(["eval", str(path), "--store", "--quiet"]) == 0
    report = json.loads((tmp_path / "gan.eval.json").read_text())      # beside the checkpoint
    stored = read_metadata(path)["metrics"]["evaluation"]
    assert stored == report and stored["family"] == "gan_cnn"
    tensors_after, _ = load_checkpoint(path)
    assert tensors_after.keys() == tensors_before.keys()
    assert all((tensors_after[k] == tensors_before[k]).all() for k in tensors_before)


def test_eval_never_writes_inside_the_package(tmp_path, capsys, monkeypatch):
    models = BUNDLED_MODEL.parent
    listing, digest = sorted(p.name for p in models.iterdir()), sha256(BUNDLED_MODEL)
    assert cli_main(["eval", str(BUNDLED_MODEL), "--store", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "inside the riffd package" in err and "copy it first" in err
    assert cli_main(["eval", str(BUNDLED_MODEL), "--out", str(models)]) == 2
    assert "give a folder of your own" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)                 # no --out: the report goes to the current folder
    assert report_folder(BUNDLED_MODEL, None) == tmp_path
    monkeypatch.chdir(models)
    with pytest.raises(ValueError, match="--out"):
        report_folder(BUNDLED_MODEL, None)
    assert sorted(p.name for p in models.iterdir()) == listing
    assert sha256(BUNDLED_MODEL) == digest


def test_eval_of_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert cli_main(["eval", str(tmp_path / "nothing.safetensors")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
