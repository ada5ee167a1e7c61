import pytest

from daemon.serve_config import ServeConfig, ServeConfigError, load_serve_config


def test_the_shipped_serve_config_matches_the_defaults():
    assert load_serve_config("configs/serve.toml") == ServeConfig()


def test_unknown_keys_and_wrong_types_are_named(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text("[serve]\ntempi = 100\n")
    with pytest.raises(ServeConfigError, match="no key 'tempi'.*tempo"):
        load_serve_config(path)
    path.write_text("[serve]\nchannel = \"one\"\n")
    with pytest.raises(ServeConfigError, match="channel must be int"):
        load_serve_config(path)
    path.write_text("[serve]\ntempo = 96\n")
    assert load_serve_config(path).tempo == 96.0
