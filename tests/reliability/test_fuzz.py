"""Thousands of malformed and edge-case requests against a real daemon over a real ZeroMQ socket.

Every request must get exactly one reply, a JSON object whose error code (if any) is one the
protocol defines and fits what was sent; none may be ``internal``. Afterwards ``ping`` answers,
the daemon's own ``internal_errors`` counter is 0, and a voice still plays notes (counted by
riffd's scheduler). Replies are counted by code; the counts are printed (``pytest -s``) and
written to ``fuzz_counts.json`` in the test's temporary folder.

The messages come from a seeded generator (the same ones on every run): lone surrogates in ids,
commands, argument names and values; integers of hundreds or thousands of digits; floats out of
range and NaN/Infinity tokens; duplicate keys; deep nesting; wrong types for every argument of
every command; random bytes; truncated JSON; huge strings; several frames; and valid requests.
"""
from __future__ import annotations

import collections
import json
import random
import shutil
import time

import pytest
import zmq

from riffd.daemon import auth
from riffd.daemon.process import DaemonProcess
from riffd.daemon.protocol import COMMANDS, ERROR_CODES, MAX_MESSAGE_BYTES, MAX_STRING_CHARS
from riffd.engine.loading import BUNDLED_MODEL

ARGS = ["--midi-api", "jack", "--client-name", "riffd-fuzz", "--tempo", "240", "--length", "1",
        "--log-level", "WARNING"]
SEED = 20261201
REPLY_TIMEOUT_S = 20.0
# commands the generator may send with valid arguments (never shutdown; record writes files)
SAFE = ("ping", "status", "start", "stop", "set", "seed", "panic", "clock", "list_models",
        "map_cc", "learn", "audio_status", "audio_gain", "audio_start", "audio_stop")
SURROGATES = ("\ud800", "\udfff", "\udc00", "a\ud83d", "\ud83dz")
NUMERIC = ("int", "float")
# float tokens and the replies they may get: NaN/Infinity are not JSON; 1e400 is infinite (out
# of every range); 1e-400 and -0.0 are zero, which some arguments accept
FLOAT_TOKENS = {"NaN": {"not_json"}, "Infinity": {"not_json"}, "-Infinity": {"not_json"},
                "1e400": {"bad_args"}, "-1e400": {"bad_args"}, "1E309": {"bad_args"},
                "1e-400": {"ok", "bad_args", "unavailable"},
                "-0.0": {"ok", "bad_args", "unavailable"}}


class Raw(str):
    """A JSON token written as is (``1e400``, ``NaN``, a 400-digit integer)."""


def dumps(value) -> str:
    """JSON text of ``value``; Raw strings become their bare token. ASCII, so lone surrogates
    come out as \\ud800 escapes."""
    raws: list[str] = []

    def mark(v):
        if isinstance(v, Raw):
            raws.append(str(v))
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    text = json.dumps(mark(value))
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@RAW{i}@@"', raw)
    return text


def obj(pairs: list[tuple[str, object]]) -> Raw:
    """A JSON object from pairs, keeping duplicate keys (json.dumps cannot)."""
    return Raw("{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in pairs) + "}")


def valid_value(arg, rng: random.Random):
    """A value ``arg`` accepts (for the valid and the mutated requests)."""
    if arg.choices is not None:
        return rng.choice(arg.choices)
    if arg.type == "bool":
        return rng.random() < 0.5
    if arg.type == "str":
        return rng.choice(["main", "x", "temperature", "velocity"])
    if arg.type == "notes":
        return [{"pitch": rng.randint(48, 84), "start": i * 0.5, "duration": 0.5}
                for i in range(rng.randint(1, 8))]
    if arg.type == "samples":
        return [rng.uniform(-1, 1) for _ in range(rng.randint(1, 64))]
    low = arg.min if arg.min is not None else 0
    high = arg.max if arg.max is not None else low + 100
    if arg.type == "int":
        return rng.randint(int(low), int(high))
    value = rng.uniform(low, high)
    return value if value > low or not arg.min_exclusive else high


def wrong_value(arg, rng: random.Random):
    """A value of a type ``arg`` never accepts."""
    wrong = {"int": ["12", [], {}, True, 1.5, None], "float": ["1.5", [], {}, False, None],
             "bool": [0, 1, "true", None, []], "str": [1, 2.5, [], {}, True, None],
             "notes": ["C4", 60, {}, [60], [{"pitch": "C"}], None],
             "samples": ["x", [True], [[0.1]], {}, None, ["0.1"]]}
    return rng.choice(wrong[arg.type])


def huge_int(rng: random.Random, beyond_float: bool = True) -> Raw:
    """An integer past 64 bits; with ``beyond_float``, past what a float can hold (1.8e308)."""
    digits = rng.choice([310, 400, 1000, 4300, 5000] + ([] if beyond_float else [20, 40]))
    return Raw(rng.choice(["", "-"]) + "1" + "0" * (digits - 1))


def request(cmd, args=None, id=None) -> dict:
    msg = {"v": 1, "cmd": cmd}
    if args is not None:
        msg["args"] = args
    if id is not None:
        msg["id"] = id
    return msg


def generate(rng: random.Random, models: str):
    """Yield (category, frames, id sent or None, codes a reply may carry; "ok" = success)."""
    n = 0

    def next_id():
        nonlocal n
        n += 1
        return n

    commands = list(COMMANDS.values())
    with_args = [c for c in commands if c.args]
    # lone surrogates: in the id, the command, an argument's name and an argument's value
    for i in range(300):
        s = rng.choice(SURROGATES) * rng.randint(1, 3)
        where = i % 5
        if where == 0:
            yield "surrogate", [dumps(request("ping", id=s)).encode()], s, {"ok"}
        elif where == 1:
            yield "surrogate", [dumps(request(s, id=next_id())).encode()], n, {"unknown_command"}
        elif where == 2:
            c = rng.choice(with_args)
            yield ("surrogate", [dumps(request(c.name, {s: 1}, next_id())).encode()], n,
                   {"bad_args"})
        elif where == 3:
            c = rng.choice([c for c in with_args if any(a.type == "str" for a in c.args)])
            arg = rng.choice([a for a in c.args if a.type == "str"])
            yield ("surrogate", [dumps(request(c.name, {arg.name: s}, next_id())).encode()], n,
                   {"bad_args"})
        else:
            note = {"pitch": 60, "start": 0, "duration": 1, s: 2}
            yield ("surrogate", [dumps(request("seed", {"notes": [note]}, next_id())).encode()],
                   n, {"bad_args"})
    # integers too large for a float (and for Python's int parser)
    numeric = [(c, a) for c in with_args for a in c.args if a.type in NUMERIC]
    for i in range(300):
        big = huge_int(rng)
        kind = i % 6
        if kind == 0:
            yield "huge_int", [dumps({"v": 1, "cmd": "ping",
                                      "id": huge_int(rng, False)}).encode()], None, {"bad_args"}
        elif kind == 1:
            yield "huge_int", [dumps({"v": huge_int(rng, False), "cmd": "ping"}).encode()], \
                None, {"bad_version", "bad_args"}
        elif kind == 2:
            note = {"pitch": 60, "start": big, "duration": 1}
            yield ("huge_int", [dumps(request("seed", {"notes": [note]}, next_id())).encode()],
                   n, {"bad_args"})
        elif kind == 3:
            yield ("huge_int", [dumps(request("audio_seed", {"samples": [0.1, big],
                                                             "sample_rate": 16000},
                                              next_id())).encode()], n, {"bad_args"})
        else:
            c, a = rng.choice(numeric)
            yield ("huge_int", [dumps(request(c.name, {a.name: big}, next_id())).encode()], n,
                   {"bad_args"})
    # floats: out of range, tiny, NaN / Infinity tokens
    for i in range(200):
        c, a = rng.choice(numeric)
        token = rng.choice(sorted(FLOAT_TOKENS))
        codes = FLOAT_TOKENS[token]
        yield "float", [dumps(request(c.name, {a.name: Raw(token)}, next_id())).encode()], n, \
            codes
    # duplicate keys: in the envelope, in args, in a note
    for i in range(200):
        kind = i % 4
        if kind == 0:
            frame = obj([("v", 1), ("cmd", "ping"), ("cmd", "status")])
        elif kind == 1:
            frame = obj([("v", 1), ("v", 1), ("cmd", "ping")])
        elif kind == 2:
            frame = obj([("v", 1), ("cmd", "set"),
                         ("args", obj([("tempo", 100), ("tempo", rng.randint(20, 300))]))])
        else:
            note = obj([("pitch", 60), ("start", 0), ("duration", 1), ("pitch", 62)])
            frame = obj([("v", 1), ("cmd", "seed"), ("args", {"notes": [note]})])
        yield "duplicate_key", [str(frame).encode()], None, {"bad_args"}
    # deep nesting: whole messages and inside args
    for depth in [33, 64, 100, 500, 1000, 5000, 20000, 100000] * 10:
        kind = rng.randrange(3)
        if kind == 0:
            text = "[" * depth + "]" * depth
            codes = {"not_json", "not_object", "bad_args"}
        elif kind == 1:
            text = '{"a":' * depth + "1" + "}" * depth
            codes = {"not_json", "bad_args", "too_large"}
        else:
            text = ('{"v":1,"cmd":"set","args":{"tempo":' + "[" * depth + "]" * depth + "}}")
            codes = {"not_json", "bad_args"}
        if len(text) > MAX_MESSAGE_BYTES:
            codes = {"too_large"}
        yield "deep_nesting", [text.encode()], None, codes
    # wrong types for every argument of every command
    for i in range(520):
        c = rng.choice(with_args)
        a = rng.choice(c.args)
        args = {a.name: wrong_value(a, rng)}
        yield "wrong_type", [dumps(request(c.name, args, next_id())).encode()], n, {"bad_args"}
    # random bytes
    for i in range(300):
        size = rng.choice([0, 1, 2, 7, 64, 1000, 5000])
        payload = bytes(rng.randrange(256) for _ in range(size))
        codes = {"bad_frames"} if not payload else {"not_json", "not_object"}
        yield "random_bytes", [payload], None, codes
    # truncated JSON: a prefix of a valid request never closes its object
    for i in range(300):
        c = rng.choice(commands)
        args = {a.name: valid_value(a, rng) for a in c.args if rng.random() < 0.5}
        text = dumps(request(c.name, args, next_id()))
        cut = rng.randrange(1, len(text))
        yield "truncated", [text[:cut].encode()], None, {"not_json"}
    # huge strings
    for i in range(100):
        size = rng.choice([MAX_STRING_CHARS + 1, 100_000, 200_000, 300_000])
        s = "x" * size
        kind = i % 3
        if kind == 0:
            frame = dumps(request("set", {"voice": s, "tempo": 100}, next_id()))
            codes = {"bad_args"}
        elif kind == 1:
            frame = dumps(request(s, id=next_id()))
            codes = {"unknown_command"}
        else:
            frame = dumps(request("ping", id=s))
            codes = {"ok"}
        if len(frame) > MAX_MESSAGE_BYTES:
            codes = {"too_large"}
        yield "huge_string", [frame.encode()], (None if kind == 2 else n), codes
    # envelopes that are not right
    bad_envelopes = [
        ("[]", {"not_object"}), ('"ping"', {"not_object"}), ("1", {"not_object"}),
        ("null", {"not_object"}), ('{"cmd":"ping"}', {"bad_version"}),
        ('{"v":2,"cmd":"ping"}', {"bad_version"}), ('{"v":"1","cmd":"ping"}', {"bad_version"}),
        ('{"v":true,"cmd":"ping"}', {"bad_version"}), ('{"v":1.0,"cmd":"ping"}', {"bad_version"}),
        ('{"v":1}', {"unknown_command"}), ('{"v":1,"cmd":7}', {"unknown_command"}),
        ('{"v":1,"cmd":"ping","x":1}', {"bad_args"}), ('{"v":1,"cmd":"set","args":[]}',
                                                       {"bad_args"}),
        ('{"v":1,"cmd":"ping","id":[1]}', {"bad_args"}),
        ('{"v":1,"cmd":"ping","id":true}', {"bad_args"}), ('{"v":1,"cmd":"set"}', {"bad_args"}),
        ('{"v":1,"cmd":"pong"}', {"unknown_command"}), ("\ufeff{}", {"not_json"}),
    ]
    for i in range(108):
        text, codes = bad_envelopes[i % len(bad_envelopes)]
        yield "envelope", [text.encode()], None, codes
    # several frames, an empty frame
    for i in range(60):
        kind = i % 3
        ping = dumps(request("ping", id=next_id())).encode()
        frames = [ping, ping] if kind == 0 else [b""] if kind == 1 else [ping, b"", ping]
        yield "frames", frames, None, {"bad_frames"}
    # REQ-style envelope (an empty delimiter first): a normal request, answered the same way
    for i in range(50):
        yield "req_envelope", [b"", dumps(request("ping", id=next_id())).encode()], n, {"ok"}
    # valid requests to the commands a script drives while playing
    for i in range(240):
        name = rng.choice(SAFE)
        c = COMMANDS[name]
        args = {a.name: valid_value(a, rng) for a in c.args
                if a.required or rng.random() < 0.3}
        if name == "clock":
            args["source"] = "internal"
        if name in ("start", "stop", "seed", "set", "map_cc", "learn"):
            args["voice"] = "main"
        codes = {"ok", "bad_args", "unavailable"}
        yield "valid", [dumps(request(name, args, next_id())).encode()], n, codes
    for i in range(20):       # load models from the model folder, good and bad
        path = rng.choice([f"{models}/good.safetensors", f"{models}/missing.safetensors",
                           "/etc/passwd", f"{models}/../secret"])
        codes = {"ok"} if path.endswith("good.safetensors") else {"bad_args"}
        yield "valid", [dumps(request("load_model", {"path": path}, next_id())).encode()], n, \
            codes


@pytest.fixture(scope="module")
def riffd(jack_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "models").mkdir()
    shutil.copy(BUNDLED_MODEL, root / "models" / "good.safetensors")
    log = root / "serve.log"
    with DaemonProcess(ARGS + ["--model-dir", str(root / "models"), "--record-dir",
                               str(root)], log_path=log) as daemon:
        daemon.root = root
        yield daemon
    assert daemon.proc.returncode == 0, log.read_text()


def raw_socket(daemon) -> zmq.Socket:
    """A DEALER connected the way RiffdClient connects (same security)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    auth.secure_client_socket(sock, daemon.control, daemon.keys)
    sock.connect(daemon.control)
    return sock


def test_every_malformed_request_gets_exactly_one_sensible_reply(riffd):
    rng = random.Random(SEED)
    models = str(riffd.root / "models")
    counts: collections.Counter = collections.Counter()
    by_category: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    sock = raw_socket(riffd)
    sent = 0
    try:
        for category, frames, sent_id, codes in generate(rng, models):
            sock.send_multipart(frames)
            sent += 1
            assert sock.poll(REPLY_TIMEOUT_S * 1000), f"no reply to {category} #{sent}"
            reply_frames = sock.recv_multipart()
            reply = json.loads(reply_frames[-1])
            if frames[0] == b"" and len(frames) == 2:
                assert reply_frames[0] == b""        # the REQ envelope comes back
            assert isinstance(reply, dict) and reply["v"] == 1, reply
            code = "ok" if reply["ok"] else reply["error"]["code"]
            assert code in ERROR_CODES or code == "ok"
            assert code in codes, (category, frames[0][:200], reply)
            if not reply["ok"]:
                assert reply["error"]["message"], reply
            if sent_id is not None:
                assert reply["id"] in (sent_id, None), (category, reply)
                if code == "ok":
                    assert reply["id"] == sent_id
            counts[code] += 1
            by_category[category][code] += 1
        # nothing more arrives: each request had exactly one reply
        assert not sock.poll(1000), sock.recv_multipart()
    finally:
        sock.close(linger=0)
    report = {"requests": sent, "replies_by_code": dict(counts),
              "by_category": {k: dict(v) for k, v in by_category.items()}}
    (riffd.root / "fuzz_counts.json").write_text(json.dumps(report, indent=2))
    print(f"\nfuzz: {sent} requests, replies by code: {dict(sorted(counts.items()))}")
    for category, c in by_category.items():
        print(f"  {category:14s} {dict(sorted(c.items()))}")
    assert sent >= 2000 and sum(counts.values()) == sent
    assert counts["internal"] == 0

    # the daemon is still whole: ping, no internal errors, and a voice still plays
    with riffd.client(timeout_s=10) as c:
        assert c.ping()["pong"] is True
        c.request("clock", source="internal")
        c.stop()
        # the fuzz left the voices' controls anywhere in range (a slow tempo, a sparse density):
        # a voice added now, with the defaults, at a set tempo, must play
        c.set(tempo=120)
        c.request("add_voice", name="after_fuzz", channel=2, mode="continuous",
                  temperature=1.0)
        status = c.status()
        assert status["counters"]["internal_errors"] == 0
        assert status["counters"]["requests"] >= sent
        before = status["counters"]["notes_sent"]
        c.request("start", voice="after_fuzz")
        deadline = time.monotonic() + 15
        while c.status()["counters"]["notes_sent"] < before + 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        after = c.status()["counters"]["notes_sent"]
        c.stop()
        c.request("remove_voice", name="after_fuzz")
    assert after >= before + 8, (before, after)
