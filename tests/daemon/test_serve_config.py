from riffd.daemon.serve_config import ServeConfig, ServeConfigError, load_serve_config
from tests.config_files import assert_file_refused


def test_the_shipped_serve_config_matches_the_defaults():
    assert load_serve_config("configs/serve.toml") == ServeConfig()


def test_unknown_keys_and_wrong_types_are_named(tmp_path):
    path = tmp_path / "serve.toml"
    for text, words in (("[serve]\ntempi = 100\n", "no key 'tempi'.*tempo"),
                        ("[serve]\nchannel = \"one\"\n", "channel must be int")):
        assert_file_refused(path, text, load_serve_config, ServeConfigError, words)
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
    for text, words in (('[serve]\nclock_source = "daw"\n',
                         "clock_source must be one of internal, midi"),
                        ('[[voice]]\nmode = "follow"\n', "needs a name"),
                        ('[cc]\ntemperature = 200\n', "CC number 0..119"),
                        ('[voices]\n', "unknown table")):
        assert_file_refused(path, text, load_serve_config, ServeConfigError, words)
