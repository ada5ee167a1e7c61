"""`riffd ctl COMMAND --help` shows examples of that command only, and every example is a
command line that riffd ctl parses and the protocol accepts."""
import argparse
import json
import shlex

import pytest

from riffd.daemon import ctl
from riffd.daemon.protocol import COMMANDS, CommandSpec, validate_args


def ctl_args(*argv):
    parser = argparse.ArgumentParser(prog="riffd")
    ctl.add_arguments(parser.add_subparsers(dest="command").add_parser("ctl"))
    return parser.parse_args(["ctl", *argv])


def example_lines(help_text: str) -> list[str]:
    lines = help_text.split("examples:\n", 1)[1].splitlines()
    return [ln.strip() for ln in lines if ln.strip().startswith("riffd ctl")]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_examples_fit_the_command(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "phrase.json").write_text(json.dumps([{"pitch": 60, "start": 0,
                                                       "duration": 1}]))
    with pytest.raises(SystemExit):
        ctl_args(name, "--help")
    examples = example_lines(capsys.readouterr().out)
    assert examples, f"ctl {name} --help shows no example"
    for line in examples:
        words = shlex.split(line, comments=True)[2:]         # after "riffd ctl"
        args = ctl_args(*words)
        assert args.ctl_command == name, f"ctl {name} --help shows an example of another " \
                                         f"command: {line}"
        validate_args(COMMANDS[name], ctl._request_args(name, args))   # raises if it does not fit


def test_a_command_without_written_examples_gets_one_from_its_spec():
    spec = CommandSpec("tap_tempo", "Tap the tempo.",
                       args=(*COMMANDS["remove_voice"].args,))
    assert ctl.command_examples(spec) == ["riffd ctl tap_tempo name=NAME"]
