"""OSC ⇄ the riffd protocol: read an OSC packet, turn each message into the protocol's request
(validated by :func:`riffd.daemon.protocol.decode_request`, exactly as a ZeroMQ request is), and write
replies and events as OSC messages. No socket here: :mod:`riffd.daemon.osc` owns the socket and thread.

Address space (docs/osc.md is the contract, kept in step by tests/daemon/test_osc_doc.py):

- ``/riffd/COMMAND name value name value ...``: every command of :data:`riffd.daemon.protocol.COMMANDS`
  (``/riffd/set tempo 100 temperature 0.8``). A ``notes`` argument takes the numbers that follow
  it as pitch/start/duration triples (``/riffd/seed notes 60 0 1 62 1 1 play 1``), a
  ``samples`` argument the numbers that follow it. ``id X`` among the pairs is the request id.
- ``/riffd/COMMAND '{"tempo": 100}'``: one string argument holding the JSON ``args`` object.
- ``/riffd/voice/NAME/COMMAND ...``: the same, with ``voice`` = NAME (commands with a ``voice``
  argument only).
- ``/riffd/subscribe`` and ``/riffd/unsubscribe``: OSC only; the sender gets (or stops getting)
  events.

Replies: ``/riffd/reply CMD ID RESULT_JSON`` or ``/riffd/error CMD ID CODE MESSAGE`` (ID is the
request's id, or ``""``). Events: ``/riffd/event/note_on PITCH VELOCITY CHANNEL VOICE``,
``/riffd/event/note_off PITCH CHANNEL VOICE``, any other ``/riffd/event/NAME EVENT_JSON``.
"""
from __future__ import annotations

import json
import math
import struct
import time
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from riffd.daemon.protocol import (
    COMMANDS, MAX_NESTING_DEPTH, PROTOCOL_VERSION, ProtocolError, Request, decode_request,
)

PREFIX = "/riffd"
SUBSCRIBE, UNSUBSCRIBE = f"{PREFIX}/subscribe", f"{PREFIX}/unsubscribe"
REPLY, ERROR, EVENT_PREFIX = f"{PREFIX}/reply", f"{PREFIX}/error", f"{PREFIX}/event/"
MAX_BUNDLE_MESSAGES = 64        # messages read from one packet (bundles included)
MAX_BUNDLE_DEPTH = 8            # bundles inside bundles
MAX_DATAGRAM_BYTES = 65507      # largest UDP payload over IPv4, bytes
TYPE_TAGS = set("ihfdsbTFN[]")  # OSC 1.0 types plus the common 1.1 ones riffd reads
NOTE_EVENTS = {"note_on": ("pitch", "velocity", "channel"), "note_off": ("pitch", "channel")}
_BUNDLE_HEAD = b"#bundle\x00"


class NotOsc(Exception):
    """The packet is not OSC riffd can read; the message says what is wrong with it."""


@dataclass(frozen=True)
class OscRequest:
    """One OSC message read as a protocol command: ``cmd`` is the command or OSC-only verb
    (``subscribe``), ``request`` the validated :class:`Request` (None for OSC-only verbs)."""

    cmd: str
    request: Request | None


# --- reading ------------------------------------------------------------------------------------

def read_packet(dgram: bytes) -> list[OscMessage]:
    """The messages of one datagram (a message or a bundle, bundles nested at most
    MAX_BUNDLE_DEPTH deep; time tags are ignored: everything runs at once). Raises
    :class:`NotOsc` naming the problem."""
    if not dgram:
        raise NotOsc("empty packet")
    out: list[OscMessage] = []
    _read(dgram, out, 0)
    return out


def _read(dgram: bytes, out: list[OscMessage], depth: int) -> None:
    if dgram.startswith(_BUNDLE_HEAD):
        if depth >= MAX_BUNDLE_DEPTH:
            raise NotOsc(f"bundles nested more than {MAX_BUNDLE_DEPTH} deep")
        index = len(_BUNDLE_HEAD) + 8                      # head, then a 64-bit time tag
        if len(dgram) < index:
            raise NotOsc("bundle cut short before its time tag")
        while index < len(dgram):
            if index + 4 > len(dgram):
                raise NotOsc("bundle element cut short before its size")
            (size,) = struct.unpack(">i", dgram[index:index + 4])
            index += 4
            if size <= 0 or size % 4 or index + size > len(dgram):
                raise NotOsc(f"bundle element of {size} bytes does not fit the packet")
            _read(dgram[index:index + size], out, depth + 1)
            index += size
        return
    if not dgram.startswith(b"/"):
        raise NotOsc("not an OSC message (it must start with '/') or bundle ('#bundle')")
    if len(out) >= MAX_BUNDLE_MESSAGES:
        raise NotOsc(f"more than {MAX_BUNDLE_MESSAGES} messages in one packet")
    try:
        _, index = osc_types.get_string(dgram, 0)
        if index < len(dgram):
            tags, _ = osc_types.get_string(dgram, index)
            if not tags.startswith(","):
                raise NotOsc("the type tag string must start with ','")
            odd = sorted(set(tags[1:]) - TYPE_TAGS)
            if odd:
                raise NotOsc(f"type tag {odd[0]!r} is not one riffd reads "
                             f"(it reads {''.join(sorted(TYPE_TAGS))})")
        out.append(OscMessage(dgram))
    except NotOsc:
        raise
    except Exception as exc:        # python-osc's ParseError, or a struct error it let through
        raise NotOsc(f"cannot read the message: {_cause(exc)}") from None


def _cause(exc: Exception) -> str:
    while exc.args and isinstance(exc.args[-1], Exception):     # ParseError wraps ParseError
        exc = exc.args[-1]
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def to_request(address: str, params: list[Any]) -> OscRequest:
    """The protocol request that an OSC message stands for, validated by
    :func:`riffd.daemon.protocol.decode_request`; raises :class:`ProtocolError` with its codes."""
    if address in (SUBSCRIBE, UNSUBSCRIBE):
        return OscRequest(address.rpartition("/")[2], None)
    cmd, voice = _split_address(address)
    spec = COMMANDS[cmd]
    if len(params) == 1 and isinstance(params[0], str) and params[0].lstrip().startswith("{"):
        # the JSON form: the one string is the args object, checked as ZeroMQ's args are
        head = json.dumps({"v": PROTOCOL_VERSION, "cmd": cmd})[:-1]
        payload = f'{head}, "args": {params[0]}}}'
        request = decode_request(payload.encode("utf-8"))
        if voice is not None:
            if "voice" in request.args:
                raise ProtocolError("bad_args", f"{cmd}: the voice is named twice: in the "
                                                f"address and in the arguments", request.id)
            # checked args (defaults filled in) stay valid: check them again with the voice
            request = decode_request(_payload(cmd, {**request.args, "voice": voice}, request.id))
        return OscRequest(cmd, request)
    try:
        args, req_id = _pairs(cmd, spec, params)
    except RecursionError:          # OSC arrays ('[' type tags) inside each other, thousands deep
        raise ProtocolError("bad_args", f"{cmd}: arrays nested too deeply; at most "
                                        f"{MAX_NESTING_DEPTH} levels") from None
    if voice is not None:
        if "voice" in args:
            raise ProtocolError("bad_args", f"{cmd}: the voice is named twice: in the address "
                                            f"and in the arguments", req_id)
        args["voice"] = voice
    return OscRequest(cmd, decode_request(_payload(cmd, args, req_id)))


def _payload(cmd: str, args: dict, req_id: Any) -> bytes:
    msg: dict[str, Any] = {"v": PROTOCOL_VERSION, "cmd": cmd, "args": args}
    if req_id is not None:
        msg["id"] = req_id
    try:
        return json.dumps(msg, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):   # a list nested past Python's own limit
        raise ProtocolError("bad_args", f"{cmd}: arguments nested too deeply", req_id) from None


def _split_address(address: str) -> tuple[str, str | None]:
    """``/riffd/CMD`` → (CMD, None); ``/riffd/voice/NAME/CMD`` → (CMD, NAME)."""
    parts = address.split("/")
    if len(parts) == 3 and parts[:2] == ["", "riffd"] and parts[2] in COMMANDS:
        return parts[2], None
    if len(parts) == 5 and parts[:3] == ["", "riffd", "voice"] and parts[3]:
        cmd = parts[4]
        if cmd in COMMANDS and COMMANDS[cmd].arg("voice") is not None:
            return cmd, parts[3]
        voiced = ", ".join(c for c, s in COMMANDS.items() if s.arg("voice") is not None)
        raise ProtocolError("unknown_command", f"OSC address {_show(address)}: "
                                               f"/riffd/voice/NAME/COMMAND takes a command that "
                                               f"has a voice: {voiced}")
    raise ProtocolError("unknown_command", f"unknown OSC address {_show(address)}; riffd "
                                           f"answers /riffd/COMMAND and /riffd/voice/NAME/COMMAND "
                                           f"with COMMAND one of {', '.join(COMMANDS)} "
                                           f"(see docs/osc.md)")


def _pairs(cmd: str, spec, params: list[Any]) -> tuple[dict[str, Any], Any]:
    """``name value name value …`` → (args, id). Values keep their OSC types, adapted where OSC
    cannot say what JSON says (Pd sends every number as a 32-bit float, many hosts have no T/F);
    the protocol's validation then judges them."""
    args: dict[str, Any] = {}
    req_id = None
    i = 0
    while i < len(params):
        name = params[i]
        if not isinstance(name, str):
            raise ProtocolError("bad_args", f"{cmd}: argument {i + 1} should be a name, got "
                                            f"{_show(name)}; send name/value pairs, e.g. "
                                            f"/riffd/set tempo 100")
        i += 1
        arg = spec.arg(name)
        if arg is not None and arg.type in ("notes", "samples"):
            values = []
            while i < len(params) and not isinstance(params[i], str):
                value = params[i]
                values.extend(value if isinstance(value, list) else [value])
                i += 1
            value = _notes(cmd, values) if arg.type == "notes" else [_number(v) for v in values]
        else:
            if i >= len(params):
                raise ProtocolError("bad_args", f"{cmd}: {name!r} has no value after it; send "
                                                f"name/value pairs, e.g. /riffd/set tempo 100")
            value = _adapt(arg.type if arg is not None else "", params[i])
            i += 1
        if name == "id" and arg is None:
            req_id = value
            continue
        if name in args:
            raise ProtocolError("bad_args", f"{cmd}: {name!r} is given twice; give each "
                                            f"argument once")
        args[name] = _plain(cmd, name, value)
    return args, req_id


def _notes(cmd: str, values: list[Any]) -> list[Any]:
    """Flat pitch/start/duration numbers → note objects (validated later, as JSON ones are)."""
    if len(values) % 3:
        raise ProtocolError("bad_args", f"{cmd}: 'notes' takes pitch, start, duration for each "
                                        f"note (3 numbers a note), got {len(values)} numbers")
    values = [_number(v) for v in values]
    return [{"pitch": _adapt("int", values[k]), "start": values[k + 1],
             "duration": values[k + 2]} for k in range(0, len(values), 3)]


def _adapt(kind: str, value: Any) -> Any:
    """An OSC value as the protocol type ``kind`` would have it in JSON, where that is what the
    sender meant: 32-bit floats to their shortest decimal (0.8, not 0.800000011920929), whole
    floats for ``int`` arguments to ints, 0/1 for ``bool`` arguments to false/true."""
    value = _number(value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "bool" and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return value


def _number(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        single = struct.unpack(">f", struct.pack(">f", value))[0] if abs(value) < 3.4e38 else None
        if single == value:
            return float(f"{value:.7g}")
    return value


def _plain(cmd: str, name: str, value: Any) -> Any:
    """Refuse OSC values JSON has no word for (blobs, MIDI, colours, time tags)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_plain(cmd, name, v) for v in value]
    if isinstance(value, dict):                 # a note object made by _notes
        return {k: _plain(cmd, name, v) for k, v in value.items()}
    raise ProtocolError("bad_args", f"{cmd}: {name!r} is an OSC {type(value).__name__} value; "
                                    f"riffd takes numbers, strings, T/F and arrays")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- writing ------------------------------------------------------------------------------------

def _message(address: str, args: list[Any]) -> bytes:
    builder = OscMessageBuilder(address)
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool) and a.bit_length() > 63:
            a = str(a)
        builder.add_arg(a)
    return builder.build().dgram


def reply_ok(cmd: str, req_id: Any, result: dict[str, Any]) -> bytes:
    """``/riffd/reply CMD ID RESULT_JSON``. Raises ValueError when the result is not JSON."""
    text = json.dumps(result, separators=(",", ":"), allow_nan=False)
    return _message(REPLY, [cmd, _id(req_id), text])


def reply_error(cmd: str, req_id: Any, code: str, message: str) -> bytes:
    """``/riffd/error CMD ID CODE MESSAGE``."""
    return _message(ERROR, [cmd, _id(req_id), code, _text(message)])


def event(name: str, data: dict[str, Any]) -> bytes:
    """An event as OSC: notes with plain arguments, every other event as its JSON object (the
    same fields a ZeroMQ subscriber gets, ``v``, ``event`` and ``t`` included)."""
    if name in NOTE_EVENTS:
        args = [int(data[f]) for f in NOTE_EVENTS[name]] + [str(data.get("voice") or "")]
        return _message(EVENT_PREFIX + name, args)
    body = {"v": PROTOCOL_VERSION, "event": name, "t": time.monotonic(), **data}
    return _message(EVENT_PREFIX + name, [json.dumps(body, separators=(",", ":"),
                                                     default=str)])


def _id(req_id: Any) -> Any:
    return "" if req_id is None else req_id


def _text(s: str) -> str:
    return s.encode("utf-8", "replace").decode("utf-8")
