import pytest

from riffd.training.recipe import RecipeError, apply_override, load_recipe
from tests.config_files import assert_file_refused

RECIPE = "configs/melody_erk.toml"


def test_the_shipped_recipe_loads_with_the_documents_values():
    recipe = load_recipe(RECIPE)
    assert recipe.family == "melody_lstm"
    assert recipe.data.corpus == ["essen:erk"]
    assert recipe.model["hidden_size"] == 256 and recipe.model["num_layers"] == 1
    assert recipe.train.learning_rate == pytest.approx(1e-3)
    assert recipe.train.sequence_length == 64


def test_overrides_are_typed():
    recipe = load_recipe(RECIPE, ["train.epochs=3", "model.hidden_size=32",
                                  "train.learning_rate=3e-4", 'data.corpus=["a.mid"]'])
    assert recipe.train.epochs == 3 and recipe.model["hidden_size"] == 32
    assert recipe.train.learning_rate == pytest.approx(3e-4)
    assert recipe.data.corpus == ["a.mid"]


def test_an_unknown_key_lists_the_known_ones():
    recipe = load_recipe(RECIPE)
    for override, words in (("train.epoch=3", "no key 'epoch'.*epochs"),
                            ("model.hidden=3", "no key 'hidden'.*hidden_size")):
        with pytest.raises(RecipeError, match=words):
            apply_override(recipe, override)


def test_wrong_types_are_refused():
    recipe = load_recipe(RECIPE)
    for override, words in (("train.epochs=2.5", "train.epochs must be a whole number"),
                            ("data.transpose=1", "data.transpose must be true or false"),
                            ("epochs=3", "section.key=value")):
        with pytest.raises(RecipeError, match=words):
            apply_override(recipe, override)


def test_a_broken_recipe_file_is_named(tmp_path):
    bad = tmp_path / "bad.toml"
    for text, words in (("[train\nepochs = 3", "not valid TOML"),
                        ("[optimizer]\nlr = 1", "unknown top-level entry 'optimizer'")):
        assert_file_refused(bad, text, load_recipe, RecipeError, words)
