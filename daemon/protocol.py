"""The riffd control protocol: one module, one version, spec tables that drive validation.

Transport (see docs/protocol.md, which a test keeps in step with this module):

- Requests go to a ZeroMQ ROUTER socket as ONE frame of UTF-8 JSON:
  ``{"v": 1, "cmd": "set", "args": {...}, "id": <optional string or int>}``. The default
  endpoint is ``ipc://$XDG_RUNTIME_DIR/riffd/control``, in a 0700 folder only the user who
  started riffd can enter; tcp endpoints use CURVE (see :mod:`riffd.daemon.auth`).
- Replies: ``{"v": 1, "id": ..., "ok": true, "result": {...}}`` or
  ``{"v": 1, "id": ..., "ok": false, "error": {"code": "...", "message": "..."}}``.
- Events go out on a PUB socket (default ``ipc://$XDG_RUNTIME_DIR/riffd/events``) as two
  frames: the event name (the topic to subscribe to) and JSON
  ``{"v": 1, "event": name, "t": <monotonic seconds>, ...}``.

Every command is one :class:`CommandSpec` in :data:`COMMANDS`; every argument one :class:`ArgSpec`.
:func:`decode_request` checks a request against these tables, so a command handler only ever sees
arguments of the right type and range, with defaults applied.
"""

from __future__ import annotations

import difflib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1
# Largest request payload accepted, bytes. Sized so that the largest seed (MAX_SEED_NOTES notes,
# each ~77 bytes of JSON with long float reprs and default spacing) fits with room to spare.
MAX_MESSAGE_BYTES = 262144

# The closed set of error codes, with what each means to the sender.
ERROR_CODES: dict[str, str] = {
    "not_json": "The request is not UTF-8 JSON text.",
    "not_object": "The request is JSON, but not an object ({...}).",
    "bad_version": "The request's \"v\" is missing or is not this daemon's protocol version.",
    "unknown_command": "\"cmd\" is missing, not a string, or not a command this daemon knows.",
    "bad_args": "An argument (or the envelope's \"args\"/\"id\") is missing, unknown, "
                "of the wrong type or out of range; the message names it.",
    "too_large": f"The request is larger than {MAX_MESSAGE_BYTES} bytes.",
    "bad_frames": "The ZeroMQ message is empty or has more than one frame of payload.",
    "not_osc": "The OSC packet cannot be read (not OSC, cut short, an unknown type tag); "
               "see docs/osc.md.",
    "internal": "The daemon failed while running the command; the message has the cause.",
    "unavailable": "The daemon cannot do this right now (for example no model is loaded).",
}


class ProtocolError(Exception):
    """A request that cannot be served; becomes an error reply.

    ``code`` is one of :data:`ERROR_CODES`, ``message`` is meant for the person writing the
    script, ``id`` is the request's id when it could be read (echoed in the reply).
    """

    def __init__(self, code: str, message: str, id: str | int | None = None):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown protocol error code {code!r}; "
                             f"use one of {sorted(ERROR_CODES)}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.id = id


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a command (or one field of a note object).

    ``type`` is ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"notes"`` (a list of note
    objects, see :data:`NOTE_FIELDS`) or ``"samples"`` (a list of finite numbers: audio).
    ``choices`` limits a value to a few. ``min``/``max`` bound the value, inclusive unless
    ``min_exclusive``; for ``"notes"`` and ``"samples"`` they bound the length of the list. ``default`` is filled in when an optional
    argument is absent (``None``: left absent). ``unit`` is named in messages (``"BPM"``).
    """

    name: str
    type: str
    required: bool = False
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[Any, ...] | None = None
    default: Any = None
    unit: str = ""
    doc: str = ""


@dataclass(frozen=True)
class CommandSpec:
    """One command: its arguments, and whether at least one of them must be given."""

    name: str
    doc: str
    args: tuple[ArgSpec, ...] = ()
    at_least_one: bool = False
    result: str = "{}"

    def arg(self, name: str) -> ArgSpec | None:
        """The argument called ``name``, or ``None``."""
        return next((a for a in self.args if a.name == name), None)


MAX_SEED_NOTES = 2048
MAX_NESTING_DEPTH = 32      # arrays/objects inside each other in one request (a seed uses 4)
MAX_ID_INT = 2**63 - 1      # an integer request id fits in 64 bits
MAX_AUDIO_SAMPLES = 32000   # what fits in MAX_MESSAGE_BYTES as JSON (about 2 s at 16 kHz)
MAX_STRING_CHARS = 4096

# Fields of one note object in `seed`'s "notes" (and in `phrase` events). Times are in beats.
NOTE_FIELDS: tuple[ArgSpec, ...] = (
    ArgSpec("pitch", "int", required=True, min=0, max=127, doc="MIDI note number (60 = middle C)"),
    ArgSpec("start", "float", required=True, min=0, unit="beats",
            doc="onset, in beats from the start of the phrase"),
    ArgSpec("duration", "float", required=True, min=0, max=64, min_exclusive=True, unit="beats",
            doc="length of the note, in beats"),
    ArgSpec("velocity", "int", min=1, max=127,
            doc="how hard the note was played (optional); answers follow the seed's dynamics"),
)

VOICE_ARG = ArgSpec("voice", "str", doc="the voice's name (default: every voice, or the first "
                                          "voice for commands about one)")
MODE_CHOICES = ("answer", "continuous", "follow")
SCALE_CHOICES = ("", "major", "minor", "dorian", "mixolydian", "pentatonic", "minor_pentatonic",
                 "blues", "chromatic")
KEY_CHOICES = ("", "C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A",
               "A#", "Bb", "B")

# The per-voice controls of `set` and `add_voice` (and the targets of the CC map).
VOICE_CONTROLS: tuple[ArgSpec, ...] = (
    ArgSpec("temperature", "float", min=0.05, max=5.0,
            doc="sampling temperature: low is safe and repetitive, high is adventurous"),
    ArgSpec("top_k", "int", min=0, max=512,
            doc="sample only among the k most likely tokens (0 = off)"),
    ArgSpec("top_p", "float", min=0.01, max=1.0,
            doc="sample only among the most likely tokens whose probabilities add up to p"),
    ArgSpec("velocity", "int", min=1, max=127, doc="MIDI velocity of generated notes"),
    ArgSpec("channel", "int", min=1, max=16, doc="MIDI channel of generated notes"),
    ArgSpec("length", "int", min=0, max=64, unit="bars",
            doc="length of an answer, in bars (0 = as long as the call)"),
    ArgSpec("greedy", "bool", doc="always pick the most likely token (ignores temperature)"),
    ArgSpec("mode", "str", choices=MODE_CHOICES,
            doc="what the voice does with played notes: answer, continuous or follow"),
    ArgSpec("answer_on", "str", choices=("beat", "bar"),
            doc="an answer starts on the next beat or on the next bar"),
    ArgSpec("program", "int", min=-1, max=127, doc="MIDI program sent when the voice starts "
                                                   "(-1 = none)"),
    ArgSpec("velocity_spread", "int", min=0, max=63,
            doc="random velocity offset, up to ± this much (velocity range)"),
    ArgSpec("humanize_ms", "float", min=0, max=50, unit="ms",
            doc="timing humanisation: each note-on is late by up to about this much"),
    ArgSpec("transpose", "int", min=-48, max=48, unit="semitones", doc="transposition"),
    ArgSpec("low", "int", min=0, max=127, doc="lowest pitch played (MIDI number)"),
    ArgSpec("high", "int", min=0, max=127, doc="highest pitch played (MIDI number)"),
    ArgSpec("key", "str", choices=KEY_CHOICES,
            doc="tonic of the scale constraint: C, F#, Bb, ...; empty = the seed's key"),
    ArgSpec("scale", "str", choices=SCALE_CHOICES,
            doc="scale constraint: major, minor, dorian, mixolydian, pentatonic, "
                "minor_pentatonic, blues, chromatic; empty = none"),
    ArgSpec("density", "int", min=0, max=64, unit="notes per bar",
            doc="most notes started per bar (0 = no limit)"),
    ArgSpec("output_latency_ms", "float", min=-500, max=500, unit="ms",
            doc="notes leave riffd this much before their beat, so they sound on it at a "
                "synth this slow (negative delays them; `riffd calibrate` measures it)"),
    ArgSpec("follow_key", "bool",
            doc="keep the answer in the seed's scale (its mode: D dorian, G mixolydian...) "
                "when scale is empty (on by default)"),
    ArgSpec("follow_register", "bool",
            doc="answer around the seed's median pitch, within low..high (on by default)"),
    ArgSpec("follow_dynamics", "bool",
            doc="velocities follow the seed's level and contour instead of velocity "
                "(on by default)"),
    ArgSpec("follow_density", "bool",
            doc="at most 2 times the seed's notes per bar when density is 0 "
                "(on by default)"),
    ArgSpec("repeat", "float", min=0.0, max=1.0,
            doc="continuous playing: the chance that the next phrase plays an earlier one "
                "again, so motifs come back (0 = never; 0.25 by default)"),
    ArgSpec("motif_bars", "int", min=1, max=16, unit="bars",
            doc="length of a phrase that repeat brings back (4 by default)"),
    ArgSpec("rng_seed", "int", min=-1, max=2**31 - 1,
            doc="repeatable answers: every seed phrase and continuous start draws from this "
                "seed, so the same phrase gets the same answer (-1 = fresh draws, the default)"),
)

COMMANDS: dict[str, CommandSpec] = {c.name: c for c in (
    CommandSpec("ping", "Check that the daemon answers.",
                result='{"pong": true, "time": <daemon monotonic clock, seconds>}'),
    CommandSpec("status", "Report what the daemon is doing: playing or not, controls, model.",
                result="the daemon's state (fields listed in docs/protocol.md)"),
    CommandSpec("start", "Start continuous generation.", args=(VOICE_ARG,)),
    CommandSpec("stop", "Stop playing; every sounding note gets its note-off.", args=(VOICE_ARG,)),
    CommandSpec("set", "Change generation controls; give at least one.", at_least_one=True, args=(
        ArgSpec("tempo", "float", min=20, max=300, unit="BPM", doc="playback tempo"),
        *VOICE_CONTROLS,
        VOICE_ARG,
    )),
    CommandSpec("seed", "Give the model a phrase to continue.", args=(
        ArgSpec("notes", "notes", required=True, min=1, max=MAX_SEED_NOTES, unit="notes",
                doc="the phrase: note objects {pitch, start, duration}"),
        ArgSpec("play", "bool", default=True, doc="answer the seed at once"),
        VOICE_ARG,
    )),
    CommandSpec("panic", "All notes off, now.", args=(VOICE_ARG,)),
    CommandSpec("shutdown", "Stop the daemon."),
    CommandSpec("clock", "Choose the clock source, clock output and transport.", args=(
        ArgSpec("source", "str", choices=("internal", "midi", "link"),
                doc="internal (riffd keeps time), midi (follow MIDI clock on riffd:in) or "
                    "link (join an Ableton Link session on the local network)"),
        ArgSpec("start_stop", "bool",
                doc="Link start/stop sync: the session's start and stop start and stop riffd"),
        ArgSpec("out", "bool", doc="send MIDI clock (24 per quarter) on riffd:out"),
        ArgSpec("transport", "str", choices=("start", "stop", "continue"),
                doc="send MIDI start, stop or continue with the clock"),
        ArgSpec("beats_per_bar", "int", min=1, max=16, doc="meter: beats per bar"),
    ), result='{"clock": {...}, "clock_out": {...}, "clock_in": {...}}'),
    CommandSpec("add_voice", "Add a voice with its own model, mode, channel and controls.", args=(
        ArgSpec("name", "str", required=True, doc="a new voice name"),
        ArgSpec("model", "str", doc="checkpoint path or bundled model name (e.g. "
                "notewise_n2_folk); default: the bundled melody model"),
        *VOICE_CONTROLS,
    )),
    CommandSpec("remove_voice", "Remove a voice; its notes end.", args=(
        ArgSpec("name", "str", required=True, doc="the voice's name"),
    )),
    CommandSpec("load_model", "Replace a voice's model at the next bar line, without a gap.",
                args=(
        ArgSpec("path", "str", required=True, doc="checkpoint (.safetensors) to load, or a "
                "bundled model's name (e.g. multilabel_m5_chorales)"),
        VOICE_ARG,
    ), result='{"voice": name, "model": path, "family": ..., "takes_effect": "next bar"}'),
    CommandSpec("list_models", "List the checkpoints in the model directories.",
                result='{"models": [{"path", "name", "family", "metrics"}, ...]}'),
    CommandSpec("map_cc", "Map a MIDI CC number on riffd:in to a voice control.", args=(
        ArgSpec("cc", "int", required=True, min=0, max=119, doc="controller number"),
        ArgSpec("control", "str", required=True, doc="a control of `set` (temperature, ...)"),
        VOICE_ARG,
        ArgSpec("channel", "int", min=0, max=16, default=0,
                doc="MIDI channel the CC comes on (0 = any)"),
    )),
    CommandSpec("learn", "Map the next CC that moves on riffd:in to a control.", args=(
        ArgSpec("control", "str", required=True, doc="a control of `set` (temperature, ...)"),
        VOICE_ARG,
    )),
    CommandSpec("record", "Start or stop recording to a MIDI file.", args=(
        ArgSpec("action", "str", required=True, choices=("start", "stop"),
                doc="start or stop"),
        ArgSpec("path", "str", doc="file to write, inside the recordings folder (start; "
                                   "default: a new file there)"),
    ), result='{"recording": bool, "path": ..., "notes": N}'),
    CommandSpec("audio_start", "Start the audio voice (spectral model → audio device).",
                result="the audio status (see audio_status)"),
    CommandSpec("audio_stop", "Stop the audio voice with a 5 ms fade-out.",
                result="the audio status"),
    CommandSpec("audio_seed", "Prime the audio voice from a clip: a file or samples.", args=(
        ArgSpec("path", "str", doc="audio file the daemon can read (WAV, FLAC, OGG)"),
        ArgSpec("samples", "samples", min=1, max=MAX_AUDIO_SAMPLES, unit="samples",
                doc="mono samples, nominally -1 to 1 (instead of path)"),
        ArgSpec("sample_rate", "int", min=4000, max=192000, unit="Hz",
                doc="rate of samples (required with samples)"),
    ), result='the audio status and "seed_seconds"'),
    CommandSpec("audio_gain", "Set the audio voice's output gain; give gain or db.", args=(
        ArgSpec("gain", "float", min=0, max=2, doc="linear gain (1 = unchanged)"),
        ArgSpec("db", "float", min=-60, max=6, unit="dB", doc="gain in decibels"),
    ), at_least_one=True, result="the audio status"),
    CommandSpec("audio_status", "Report the audio voice: underflows, buffer fill, speed.",
                result="enabled, playing, underflows, buffer_seconds, real_time_factor, ..."),
)}

@dataclass(frozen=True)
class EventSpec:
    """One event published on the PUB socket, with the fields its data always carries."""

    name: str
    fields: tuple[str, ...]
    doc: str


EVENTS: dict[str, EventSpec] = {e.name: e for e in (
    EventSpec("note_on", ("pitch", "velocity", "channel"), "A generated note starts sounding."),
    EventSpec("note_off", ("pitch", "channel"), "A generated note stops sounding."),
    EventSpec("phrase", ("notes",), "A seed phrase was captured (from MIDI in or `seed`); "
                                    "notes are note objects."),
    EventSpec("state", ("state",), "The daemon changed state: \"playing\", \"stopped\", ..."),
    EventSpec("error", ("message",), "Something went wrong outside a request "
                                     "(a model step, a port)."),
    EventSpec("model", ("voice", "model"), "A voice switched to another model (at a bar line)."),
    EventSpec("learned", ("cc", "control"), "`learn` bound a moving CC to a control."),
    EventSpec("transport", ("transport",), "MIDI start, stop or continue arrived on riffd:in."),
    EventSpec("xrun", ("xruns",), "JACK reported an xrun to riffd's client (a cycle that did not "
                                  "finish in time); at most 10 a second."),
    EventSpec("ports", ("output", "alive", "reason"),
              "The MIDI ports (output \"midi\") or the audio output (\"audio\") went away "
              "(the JACK server stopped) or came back (re-registered under the same names)."),
    EventSpec("plan", ("voice", "beat", "until", "notes"),
              "What a voice has generated and placed ahead of the playhead and will play next; "
              "only on change, at most 4 a second per voice."),
)}


@dataclass
class Request:
    """A decoded, validated request: ``args`` has every default applied."""

    cmd: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str | int | None = None


# --- decoding and validation ----------------------------------------------------------------

def decode_request(payload: bytes) -> Request:
    """Decode and validate one request frame; raise :class:`ProtocolError` when it is unusable."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"request is {len(payload)} bytes; "
                                         f"the limit is {MAX_MESSAGE_BYTES} bytes")
    if not payload:
        raise ProtocolError("bad_frames", "empty request; send one frame of JSON")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError("not_json", f"request is not UTF-8 text ({e.reason} at byte {e.start})"
                            ) from None
    try:
        msg = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except ValueError as e:
        if "integer string conversion" in str(e):   # Python's guard against huge ints
            raise ProtocolError("bad_args", "request has a number with thousands of digits; "
                                            "numbers must fit in 64 bits") from None
        raise ProtocolError("not_json", f"request is not valid JSON: {e}") from None
    except RecursionError:
        raise ProtocolError("not_json", f"request is nested too deeply to read; at most "
                                        f"{MAX_NESTING_DEPTH} levels") from None
    if _too_deep(msg, MAX_NESTING_DEPTH):
        raise ProtocolError("bad_args", f"request is nested more than {MAX_NESTING_DEPTH} "
                                        f"levels deep (lists and objects inside each other)")
    if not isinstance(msg, dict):
        raise ProtocolError("not_object", f"request must be a JSON object like "
                                          f'{{"v": {PROTOCOL_VERSION}, "cmd": "ping"}}, '
                                          f"got {_json_kind(msg)}")

    req_id = msg.get("id")
    if req_id is not None and (isinstance(req_id, bool) or not isinstance(req_id, (str, int))
                               or (isinstance(req_id, int) and abs(req_id) > MAX_ID_INT)):
        raise ProtocolError("bad_args", f"request 'id' must be a string or an integer of at "
                                        f"most 64 bits, got {_show(req_id)}")

    if "v" not in msg:
        raise ProtocolError("bad_version", f'request has no "v"; send "v": {PROTOCOL_VERSION}',
                            req_id)
    version = msg["v"]
    if isinstance(version, bool) or not isinstance(version, int) or version != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"this daemon speaks protocol version "
                                           f"{PROTOCOL_VERSION}, the request has version "
                                           f"{_show(version)}", req_id)

    unknown = sorted(set(msg) - {"v", "cmd", "args", "id"})
    if unknown:
        raise ProtocolError("bad_args", f"request has unknown field {unknown[0]!r}; "
                                        f"a request has v, cmd, args, id", req_id)

    cmd = msg.get("cmd")
    if not isinstance(cmd, str):
        what = "no \"cmd\"" if cmd is None else f'"cmd" {_show(cmd)}, which is not a string'
        raise ProtocolError("unknown_command", f"request has {what}; commands: {_command_list()}",
                            req_id)
    spec = COMMANDS.get(cmd)
    if spec is None:
        raise ProtocolError("unknown_command", f"unknown command {_show(cmd)}"
                                               f"{_did_you_mean(cmd, COMMANDS)}; "
                                               f"commands: {_command_list()}", req_id)

    args = msg.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtocolError("bad_args", f'{cmd}: "args" must be an object, '
                                        f"got {_json_kind(args)}", req_id)
    try:
        return Request(cmd, validate_args(spec, args), req_id)
    except ProtocolError as e:
        e.id = req_id
        raise


def validate_args(spec: CommandSpec, args: dict[str, Any]) -> dict[str, Any]:
    """Check ``args`` against ``spec``; return them normalized (floats as float) with defaults."""
    for name in args:
        if spec.arg(name) is None:
            names = ", ".join(a.name for a in spec.args)
            takes = f"{spec.name} takes {names}" if names else f"{spec.name} takes no arguments"
            raise ProtocolError("bad_args", f"{spec.name}: unknown argument {name!r}"
                                            f"{_did_you_mean(name, [a.name for a in spec.args])}; "
                                            f"{takes}")
    out: dict[str, Any] = {}
    for a in spec.args:
        if a.name in args:
            out[a.name] = _check_value(spec.name, f"{spec.name}: {a.name!r}", a, args[a.name])
        elif a.required:
            raise ProtocolError("bad_args", f"{spec.name}: missing required argument {a.name!r} "
                                            f"({expectation(a)})")
        elif a.default is not None:
            out[a.name] = a.default
    if spec.at_least_one and not args:
        raise ProtocolError("bad_args", f"{spec.name}: give at least one of "
                                        f"{', '.join(a.name for a in spec.args)}")
    return out


def _check_value(cmd: str, where: str, spec: ArgSpec, value: Any) -> Any:
    """Return ``value`` normalized for ``spec``, or raise ``bad_args`` naming ``where``."""
    original = value  # `value` is normalized below; messages show what was sent

    def bad(got: str | None = None) -> ProtocolError:
        return ProtocolError("bad_args", f"{where} must be {expectation(spec)}, "
                                         f"got {got or _show(original)}")

    if spec.type == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if spec.type == "str":
        if not isinstance(value, str) or len(value) > MAX_STRING_CHARS:
            raise bad()
        if not _is_text(value):
            raise bad("a string with a lone surrogate (\\ud800-\\udfff), which is not text")
        if spec.choices is not None and value not in spec.choices:
            raise bad()
        return value
    if spec.type == "samples":
        if not isinstance(value, list):
            raise bad()
        if not _in_range(spec, len(value)):
            raise bad(f"{len(value)} samples")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and _finite(x)
                   for x in value):
            raise bad("a list with something other than finite numbers")
        return [float(x) for x in value]
    if spec.type == "notes":
        if not isinstance(value, list):
            raise bad()
        if not _in_range(spec, len(value)):
            raise bad(f"{len(value)} notes")
        return [_check_note(cmd, f"{cmd}: notes[{i}]", n) for i, n in enumerate(value)]
    # Numbers: JSON true/false are not numbers here, and an int field wants a whole number.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad()
    if spec.type == "int":
        if not isinstance(value, int):
            raise bad()
    elif spec.type == "float":
        if not _finite(value):     # NaN, inf, or an int too large for a float (10**400)
            raise bad()
        value = float(value)
    if spec.choices is not None and value not in spec.choices:
        raise bad()
    if not _in_range(spec, value):
        raise bad()
    return value


def _check_note(cmd: str, prefix: str, note: Any) -> dict[str, Any]:
    """One note object of a ``notes`` argument; ``prefix`` names it (``"seed: notes[3]"``)."""
    if not isinstance(note, dict):
        raise ProtocolError("bad_args", f"{prefix} must be an object like "
                                        f'{{"pitch": 60, "start": 0, "duration": 1}}, '
                                        f"got {_show(note)}")
    unknown = sorted(set(note) - {f.name for f in NOTE_FIELDS})
    if unknown:
        raise ProtocolError("bad_args", f"{prefix} has unknown field {unknown[0]!r}; "
                                        f"a note has pitch, start, duration (and velocity)")
    out = {}
    for f in NOTE_FIELDS:
        if f.name not in note and not f.required:
            continue
        if f.name not in note:
            raise ProtocolError("bad_args", f"{prefix} is missing {f.name!r} ({expectation(f)})")
        out[f.name] = _check_value(cmd, f"{prefix}.{f.name}", f, note[f.name])
    return out


def _in_range(spec: ArgSpec, x: float) -> bool:
    if spec.min is not None and (x <= spec.min if spec.min_exclusive else x < spec.min):
        return False
    return spec.max is None or x <= spec.max


def expectation(spec: ArgSpec) -> str:
    """What a valid value looks like, in words: ``"a number between 20 and 300 BPM"``."""
    if spec.type == "bool":
        return "true or false"
    if spec.type == "str":
        if spec.choices is not None:
            return "one of " + ", ".join(_show(c) for c in spec.choices)
        return f"a string of at most {MAX_STRING_CHARS} characters"
    unit = f" {spec.unit}" if spec.unit else ""
    if spec.type in ("notes", "samples"):
        return f"a list of {_num(spec.min)} to {_num(spec.max)}{unit}"
    noun = "a whole number" if spec.type == "int" else "a number"
    if spec.choices is not None:
        return f"one of {', '.join(_show(c) for c in spec.choices)}"
    if spec.min is not None and spec.max is not None and not spec.min_exclusive:
        return f"{noun} between {_num(spec.min)} and {_num(spec.max)}{unit}"
    bounds = []
    if spec.min is not None:
        bounds.append(f"greater than {_num(spec.min)}" if spec.min_exclusive
                      else f"of at least {_num(spec.min)}")
    if spec.max is not None:
        bounds.append(f"at most {_num(spec.max)}")
    return f"{noun} {' and '.join(bounds)}{unit}" if bounds else noun


def describe_range(spec: ArgSpec) -> str:
    """The range column of help text and docs: ``20–300``, ``≥ 0``, ``> 0, ≤ 64``, ``—``."""
    if spec.choices is not None:
        return "one of " + ", ".join(_show(c) for c in spec.choices)
    if spec.min is None and spec.max is None:
        return "—"
    if spec.max is None:
        return f"{'>' if spec.min_exclusive else '≥'} {_num(spec.min)}"
    if spec.min is None:
        return f"≤ {_num(spec.max)}"
    if spec.min_exclusive:
        return f"> {_num(spec.min)}, ≤ {_num(spec.max)}"
    return f"{_num(spec.min)}–{_num(spec.max)}"


def _num(x: float | None) -> str:
    return f"{x:g}"


def _show(value: Any) -> str:
    """A value as the script wrote it (JSON), cut short so a huge value cannot flood a message."""
    if isinstance(value, float) and not math.isfinite(value):
        return "a number out of range (too large for a float)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**60:
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except Exception:   # not JSON, too deep, too large: never let a message fail
        try:
            text = repr(value)
        except Exception:
            text = f"(a {type(value).__name__})"
    return text if len(text) <= 60 else text[:57] + "..."


def _finite(x: int | float) -> bool:
    """Whether a JSON number is a finite float: false for NaN, inf and ints past 1.8e308."""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def _is_text(s: str) -> bool:
    """Whether ``s`` is valid Unicode text (no lone surrogates, which JSON's \\ud800 allows)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: refuse an object that names a key twice (JSON would keep the last)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ProtocolError("bad_args", f"request has the key {_show(dup)} twice in one object; "
                                        f"give each key once")
    return out


def _too_deep(value: Any, limit: int) -> bool:
    """Whether lists/objects nest more than ``limit`` levels (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children
                         if isinstance(child, (list, dict)))
    return False


def _json_kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", bool: "true/false", int: "a number",
             float: "a number", type(None): "null", dict: "an object"}
    return f"{kinds.get(type(value), type(value).__name__)} ({_show(value)})"


def _did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _command_list() -> str:
    return ", ".join(COMMANDS)


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity by default; they are not JSON and not musical.
    raise ValueError(f"{name} is not allowed")


# --- encoding ----------------------------------------------------------------------------------

def _dumps(obj: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON. A string with a lone surrogate (an id or a name echoed from a request
    that wrote "\\ud800") is not UTF-8: then the whole message is written as ASCII JSON, which
    escapes it (\\ud800) and reads back to the same string."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False).encode("ascii")


def encode_request(cmd: str, args: dict[str, Any] | None = None,
                   id: str | int | None = None) -> bytes:
    """One request frame, for clients. Does not validate: the daemon does."""
    msg: dict[str, Any] = {"v": PROTOCOL_VERSION, "cmd": cmd}
    if args:
        msg["args"] = args
    if id is not None:
        msg["id"] = id
    return _dumps(msg)


def encode_reply_ok(id: str | int | None, result: dict[str, Any]) -> bytes:
    """A success reply carrying ``result`` (must be JSON-serializable; raises otherwise)."""
    return _dumps({"v": PROTOCOL_VERSION, "id": id, "ok": True, "result": result})


def encode_reply_error(err: ProtocolError) -> bytes:
    """An error reply for ``err``, echoing its request id."""
    return _dumps({"v": PROTOCOL_VERSION, "id": err.id, "ok": False,
                   "error": {"code": err.code, "message": err.message}})


def encode_event(name: str, data: dict[str, Any]) -> list[bytes]:
    """Two frames for the PUB socket: topic (the event name) and the JSON event.

    ``t`` is stamped now, in seconds of the daemon's ``time.monotonic()`` clock. Raises
    ``ValueError`` for an undocumented event name or missing documented fields.
    """
    spec = EVENTS.get(name)
    if spec is None:
        raise ValueError(f"unknown event {name!r}; events: {', '.join(EVENTS)}")
    missing = [f for f in spec.fields if f not in data]
    if missing:
        raise ValueError(f"event {name!r} needs fields {', '.join(missing)}")
    reserved = {"v", "event", "t"} & set(data)
    if reserved:
        raise ValueError(f"event data may not set {', '.join(sorted(reserved))}")
    body = {"v": PROTOCOL_VERSION, "event": name, "t": time.monotonic(), **data}
    return [name.encode("ascii"), _dumps(body)]
