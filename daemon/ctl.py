"""``riffd ctl COMMAND [ARGS]``: send one command to a running daemon, or watch its events.

Exit status: 0 when the daemon answered ok, 1 when it answered with an error (or the command line
could not be turned into a request), 2 when the daemon could not be reached.
Help text for commands and their arguments is generated from the spec tables in
:mod:`riffd.daemon.protocol`, so it always matches what the daemon accepts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from riffd.daemon.auth import SecurityError
from riffd.daemon.client import DEFAULT_CONTROL, DEFAULT_EVENTS, RiffdClient, RiffdError, RiffdUnavailable
from riffd.daemon.protocol import COMMANDS, EVENTS, NOTE_FIELDS, ArgSpec, describe_range

EXAMPLES = """\
examples:
  riffd ctl ping
  riffd ctl set tempo=100 temperature=0.8 greedy=false
  riffd ctl seed 60:0:1 62:1:1 64:2:2          # pitch:start:duration, times in beats
  riffd ctl seed --file phrase.json play=false
  riffd ctl start
  riffd ctl events note_on note_off --count 8
  riffd ctl --endpoint tcp://studio.local:5555 status   # CURVE keys: see `riffd keys`
"""


# Examples per command for `riffd ctl COMMAND --help` (a command missing here gets examples
# made from its spec table, so every command's help shows lines that fit it).
COMMAND_EXAMPLES: dict[str, tuple[str, ...]] = {
    "ping": ("riffd ctl ping",
             "riffd ctl --endpoint tcp://studio.local:5555 ping   # CURVE keys: see `riffd keys`"),
    "status": ("riffd ctl status", "riffd ctl status --timeout 5"),
    "start": ("riffd ctl start", "riffd ctl start voice=bass"),
    "stop": ("riffd ctl stop", "riffd ctl stop voice=bass"),
    "set": ("riffd ctl set tempo=100 temperature=0.8 greedy=false",
            "riffd ctl set scale=dorian key=D density=6 voice=lead"),
    "seed": ("riffd ctl seed 60:0:1 62:1:1 64:2:2          # pitch:start:duration, in beats",
             "riffd ctl seed --file phrase.json play=false"),
    "panic": ("riffd ctl panic",),
    "shutdown": ("riffd ctl shutdown",),
    "clock": ("riffd ctl clock source=midi", "riffd ctl clock out=true transport=start"),
    "add_voice": ("riffd ctl add_voice name=bass low=36 high=55 channel=2",
                  "riffd ctl add_voice name=chords model=runs/m5/best.safetensors mode=continuous"),
    "remove_voice": ("riffd ctl remove_voice name=bass",),
    "load_model": ("riffd ctl load_model path=runs/melody_erk/best.safetensors",
                   "riffd ctl load_model path=runs/n2/best.safetensors voice=bass"),
    "list_models": ("riffd ctl list_models",),
    "map_cc": ("riffd ctl map_cc cc=74 control=temperature",
               "riffd ctl map_cc cc=1 control=density voice=bass channel=2"),
    "learn": ("riffd ctl learn control=temperature      # then turn a knob",),
    "record": ("riffd ctl record action=start", "riffd ctl record action=stop"),
    "audio_start": ("riffd ctl audio_start",),
    "audio_stop": ("riffd ctl audio_stop",),
    "audio_seed": ("riffd ctl audio_seed path=clip.wav",
                   "riffd ctl audio_seed samples=[0.0,0.1,0.2] sample_rate=16000"),
    "audio_gain": ("riffd ctl audio_gain db=-6", "riffd ctl audio_gain gain=0.5"),
    "audio_status": ("riffd ctl audio_status",),
}
_EXAMPLE_VALUES = {"int": "1", "float": "1.0", "bool": "true", "str": "NAME"}


def command_examples(spec) -> list[str]:
    """Example command lines for one protocol command (hand-written, else from its spec)."""
    if spec.name in COMMAND_EXAMPLES:
        return list(COMMAND_EXAMPLES[spec.name])
    def value(a: ArgSpec) -> str:
        if a.choices:
            return str(a.choices[-1])
        if a.type in ("int", "float") and a.min is not None:
            return str(a.min)
        return _EXAMPLE_VALUES.get(a.type, "VALUE")
    words = [f"{a.name}={value(a)}" for a in spec.args if a.required]
    return [" ".join(["riffd ctl", spec.name, *words])]


def _examples_text(lines: list[str]) -> str:
    return "examples:\n" + "".join(f"  {line}\n" for line in lines)


class _UsageError(Exception):
    """A command line that cannot become a request (exit status 1)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``ctl`` options and one sub-command per protocol command to ``parser``."""
    parser.description = "Send a command to a running `riffd serve` and print its reply as JSON."
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, with_defaults=False)  # accepted after the command too, without clobbering
    _add_common(parser, with_defaults=True)
    sub = parser.add_subparsers(dest="ctl_command", metavar="COMMAND", required=True)
    for spec in COMMANDS.values():
        p = sub.add_parser(spec.name, parents=[common], help=spec.doc, description=spec.doc,
                           epilog=_command_epilog(spec),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if spec.args:
            p.add_argument("params", nargs="*", metavar="NAME=VALUE" if spec.name != "seed"
                           else "NOTE|NAME=VALUE",
                           help="arguments; values are read as JSON when they parse "
                                "(greedy=true, tempo=100)")
        if spec.name == "seed":
            p.add_argument("--file", type=Path, help="JSON file: a list of note objects, "
                                                     "or an object with \"notes\" (and \"play\")")
    ev = sub.add_parser("events", parents=[common], help="print events as JSON lines until Ctrl-C",
                        description="Print the daemon's events, one JSON object per line.",
                        epilog="events: " + ", ".join(EVENTS),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("names", nargs="*", metavar="EVENT", help="only these events (default: all)")
    ev.add_argument("--count", type=int, help="stop after this many events")
    ev.add_argument("--events-endpoint", dest="ctl_events_endpoint", default=None,
                    help=f"the daemon's event (PUB) endpoint (default: the one beside "
                         f"--endpoint: {DEFAULT_EVENTS}, or the next port of a tcp one)")


# How long `riffd ctl` waits for an answer, seconds: commands that load a model answer when it is
# loaded (a large checkpoint on a busy machine takes many seconds); the others at once.
QUICK_TIMEOUT_S = 2.0
SLOW_TIMEOUT_S = 60.0
SLOW_COMMANDS = ("load_model", "add_voice", "list_models")


def _add_common(p: argparse.ArgumentParser, with_defaults: bool) -> None:
    def default(value: Any) -> Any:
        return value if with_defaults else argparse.SUPPRESS
    p.add_argument("--endpoint", dest="ctl_endpoint", default=default(None),
                   metavar="URL",
                   help=f"the daemon's control endpoint (default {DEFAULT_CONTROL}, or "
                        f"/tmp/riffd-$UID/control without XDG_RUNTIME_DIR)")
    p.add_argument("--timeout", dest="ctl_timeout", type=float, default=default(None),
                   metavar="SECONDS",
                   help=f"seconds to wait for an answer (default {QUICK_TIMEOUT_S:g}; "
                        f"{SLOW_TIMEOUT_S:g} for {', '.join(SLOW_COMMANDS)}, which read model files)")


def _command_epilog(spec) -> str:
    """The argument table of one command, from the spec: name, type, range, default, meaning."""
    examples = _examples_text(command_examples(spec))
    if not spec.args:
        return "takes no arguments\n\n" + examples
    rows = [_row(a) for a in spec.args]
    if spec.at_least_one:
        rows.insert(0, "  give at least one of:")
    if spec.name == "seed":
        rows.append("\na note, on the command line: PITCH:START:DURATION, e.g. 60:0:1")
        rows += [_row(f) for f in NOTE_FIELDS]
    return "arguments:\n" + "\n".join(rows) + "\n\n" + examples


def _row(a: ArgSpec) -> str:
    default = "required" if a.required else ("default " + json.dumps(a.default)
                                             if a.default is not None else "optional")
    rng = describe_range(a) + (f" {a.unit}" if a.unit else "")
    return f"  {a.name:<12} {a.type:<6} {rng:<18} {default:<13} {a.doc}"


def run(args: argparse.Namespace) -> int:
    """Run the ``ctl`` sub-command parsed into ``args``; return the exit status."""
    cmd = args.ctl_command
    timeout_s = args.ctl_timeout
    if timeout_s is None:
        timeout_s = SLOW_TIMEOUT_S if cmd in SLOW_COMMANDS else QUICK_TIMEOUT_S
    try:
        with RiffdClient(args.ctl_endpoint, timeout_s=timeout_s) as client:
            if cmd == "events":
                return _events(client, args)
            result = client.request(cmd, **_request_args(cmd, args))
    except (RiffdUnavailable, SecurityError) as e:
        print(f"riffd ctl: {e}", file=sys.stderr)
        return 2
    except (RiffdError, _UsageError) as e:
        print(f"riffd ctl: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _request_args(cmd: str, args: argparse.Namespace) -> dict[str, Any]:
    """The request's arguments from NAME=VALUE words, seed notes and --file."""
    out: dict[str, Any] = {}
    notes: list[dict[str, Any]] = []
    if getattr(args, "file", None) is not None:
        out.update(_read_phrase(args.file))
    for word in getattr(args, "params", None) or []:
        if "=" in word:
            name, _, text = word.partition("=")
            out[name] = _value(text)
        elif cmd == "seed":
            notes.append(_parse_note(word))
        else:
            raise _UsageError(f"{cmd}: expected NAME=VALUE, got {word!r} (e.g. tempo=100)")
    if notes:
        out["notes"] = out.get("notes", []) + notes
    return out


def _value(text: str) -> Any:
    """A command-line value: JSON when it parses (100, 0.8, true), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_note(word: str) -> dict[str, Any]:
    """``60:0:1`` → ``{"pitch": 60, "start": 0.0, "duration": 1.0}`` (times in beats)."""
    parts = word.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        return {"pitch": int(parts[0]), "start": float(parts[1]), "duration": float(parts[2])}
    except ValueError:
        raise _UsageError(f"seed: {word!r} is not a note PITCH:START:DURATION "
                          f"(e.g. 60:0:1 is middle C at beat 0 for 1 beat)") from None


def _read_phrase(path: Path) -> dict[str, Any]:
    """A phrase file: a JSON list of notes, or an object with "notes" (and "play")."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _UsageError(f"seed: cannot read {path}: {e}") from None
    if isinstance(data, list):
        return {"notes": data}
    if isinstance(data, dict):
        return data
    raise _UsageError(f"seed: {path} must hold a list of notes or an object with \"notes\"")


def _events(client: RiffdClient, args: argparse.Namespace) -> int:
    """Print events as JSON lines until Ctrl-C or ``--count`` events."""
    client.ping()  # a dead daemon is exit status 2, not a silent wait
    seen = 0
    try:
        for event in client.subscribe(args.ctl_events_endpoint, events=args.names or None):
            print(json.dumps(event), flush=True)
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    except KeyboardInterrupt:
        pass
    except ValueError as e:  # an unknown event name
        raise _UsageError(f"events: {e}") from None
    return 0
