import pytest

from riffd.daemon.serve_config import ServeConfig, ServeConfigError, load_serve_config


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


def test_voices_and_cc_map_are_read_and_checked(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text('[serve]\nclock_source = "midi"\n[[voice]]\nname = "lead"\nmode = "follow"\n'
                    '[[voice]]\nname = "pad"\nchannel = 2\n[cc]\ntemperature = 21\n'
                    '"pad.density" = 22\n')
    cfg = load_serve_config(path)
    assert cfg.clock_source == "midi" and [v["name"] for v in cfg.voices] == ["lead", "pad"]
    assert cfg.cc == {"temperature": 21, "pad.density": 22}
    path.write_text('[serve]\nclock_source = "daw"\n')
    with pytest.raises(ServeConfigError, match="clock_source must be one of internal, midi"):
        load_serve_config(path)
    path.write_text('[[voice]]\nmode = "follow"\n')
    with pytest.raises(ServeConfigError, match="needs a name"):
        load_serve_config(path)
    path.write_text('[cc]\ntemperature = 200\n')
    with pytest.raises(ServeConfigError, match="CC number 0..119"):
        load_serve_config(path)
    path.write_text('[voices]\n')
    with pytest.raises(ServeConfigError, match="unknown table"):
        load_serve_config(path)
