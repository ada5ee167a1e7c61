import pytest

from riffd.training.recipe import RecipeError, apply_override, load_recipe

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
    with pytest.raises(RecipeError, match="no key 'epoch'.*epochs"):
        apply_override(recipe, "train.epoch=3")
    with pytest.raises(RecipeError, match="no key 'hidden'.*hidden_size"):
        apply_override(recipe, "model.hidden=3")


def test_wrong_types_are_refused():
    recipe = load_recipe(RECIPE)
    with pytest.raises(RecipeError, match="train.epochs must be a whole number"):
        apply_override(recipe, "train.epochs=2.5")
    with pytest.raises(RecipeError, match="data.transpose must be true or false"):
        apply_override(recipe, "data.transpose=1")
    with pytest.raises(RecipeError, match="section.key=value"):
        apply_override(recipe, "epochs=3")


def test_a_broken_recipe_file_is_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 3")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(bad)
    bad.write_text("[optimizer]\nlr = 1")
    with pytest.raises(RecipeError, match="unknown top-level entry 'optimizer'"):
        load_recipe(bad)
