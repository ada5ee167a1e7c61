"""Protocol logic: requests that decode, and each bad input's error code and message."""

import json

import pytest

from riffd.daemon.protocol import (
    COMMANDS, ERROR_CODES, EVENTS, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, ProtocolError,
    decode_request, encode_event, encode_reply_error, encode_reply_ok, encode_request,
)


def req(cmd, args=None, **envelope):
    msg = {"v": PROTOCOL_VERSION, "cmd": cmd, **envelope}
    if args is not None:
        msg["args"] = args
    return json.dumps(msg).encode()


def error_of(payload: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_request(payload)
    return info.value


NOTE = {"pitch": 60, "start": 0, "duration": 1}


# --- requests that decode ----------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["ping", "status", "start", "stop", "panic", "shutdown"])
def test_commands_without_arguments_decode(cmd):
    r = decode_request(req(cmd))
    assert (r.cmd, r.args, r.id) == (cmd, {}, None)


def test_set_decodes_every_control_and_normalizes_numbers():
    args = {"tempo": 120, "temperature": 0.8, "top_k": 40, "top_p": 0.9, "velocity": 100,
            "channel": 16, "length": 8, "greedy": False}
    r = decode_request(req("set", args, id="a1"))
    assert r.id == "a1"
    assert r.args == args
    assert isinstance(r.args["tempo"], float)  # an int is fine for a float argument
    assert isinstance(r.args["top_k"], int)


@pytest.mark.parametrize("name,value", [("tempo", 20), ("tempo", 300), ("temperature", 0.05),
                                        ("temperature", 5.0), ("top_k", 0), ("top_k", 512),
                                        ("top_p", 1.0), ("channel", 1), ("length", 64)])
def test_range_ends_are_inclusive(name, value):
    assert decode_request(req("set", {name: value})).args == {name: value}


def test_seed_applies_play_default_and_keeps_notes():
    r = decode_request(req("seed", {"notes": [NOTE, {"pitch": 64, "start": 1.5, "duration": 0.25}]},
                           id=7))
    assert r.id == 7
    assert r.args["play"] is True
    assert r.args["notes"] == [{"pitch": 60, "start": 0.0, "duration": 1.0},
                               {"pitch": 64, "start": 1.5, "duration": 0.25}]
    assert decode_request(req("seed", {"notes": [NOTE], "play": False})).args["play"] is False


def test_the_largest_seed_fits_in_one_request():
    # 2048 notes with long float reprs and json.dumps' default spacing: the two limits agree.
    notes = [{"pitch": 127, "start": 1000 + i / 3, "duration": 1 / 3} for i in range(2048)]
    payload = req("seed", {"notes": notes})
    assert len(payload) <= MAX_MESSAGE_BYTES
    assert len(decode_request(payload).args["notes"]) == 2048


def test_args_may_be_null_for_commands_without_arguments():
    assert decode_request(b'{"v": 1, "cmd": "ping", "args": null}').args == {}


# --- bad input: code and message ---------------------------------------------------------------

def test_not_json():
    e = error_of(b"{v: 1, cmd: ping}")
    assert e.code == "not_json" and "not valid JSON" in e.message


def test_deeply_nested_json():
    e = error_of(b"[" * 100_000 + b"]" * 100_000)
    assert e.code == "not_json" and "nested" in e.message


def test_not_utf8():
    e = error_of(b'{"v": 1, "cmd": "\xff\xfe"}')
    assert e.code == "not_json" and "UTF-8" in e.message


def test_nan_is_not_json():
    e = error_of(b'{"v": 1, "cmd": "set", "args": {"tempo": NaN}}')
    assert e.code == "not_json" and "NaN" in e.message


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"ping"', b"42", b"null"])
def test_not_object(payload):
    e = error_of(payload)
    assert e.code == "not_object" and "JSON object" in e.message


def test_missing_cmd():
    e = error_of(b'{"v": 1}')
    assert e.code == "unknown_command" and '"cmd"' in e.message and "ping" in e.message


def test_cmd_not_a_string():
    assert error_of(b'{"v": 1, "cmd": 5}').code == "unknown_command"


def test_unknown_command_suggests_a_close_one():
    e = error_of(req("sed", id=3))
    assert e.code == "unknown_command"
    assert '"sed"' in e.message and "'seed'" in e.message
    assert e.id == 3  # the id is echoed even in an error


@pytest.mark.parametrize("payload,shown", [(b'{"cmd": "ping"}', 'no "v"'),
                                           (b'{"v": 2, "cmd": "ping"}', "version 2"),
                                           (b'{"v": "1", "cmd": "ping"}', 'version "1"'),
                                           (b'{"v": true, "cmd": "ping"}', "version true"),
                                           (b'{"v": 1.5, "cmd": "ping"}', "version 1.5")])
def test_other_protocol_version(payload, shown):
    e = error_of(payload)
    assert e.code == "bad_version" and shown in e.message


def test_tempo_out_of_range_message_is_musician_readable():
    e = error_of(req("set", {"tempo": 900}))
    assert e.code == "bad_args"
    assert e.message == "set: 'tempo' must be a number between 20 and 300 BPM, got 900"


@pytest.mark.parametrize("name,value,expected", [
    ("tempo", 19.99, "between 20 and 300 BPM"),
    ("temperature", 0, "between 0.05 and 5"),
    ("top_k", 513, "whole number between 0 and 512"),
    ("top_p", 0.0, "between 0.01 and 1"),
    ("velocity", 0, "between 1 and 127"),
    ("channel", 17, "between 1 and 16"),
    ("length", 65, "between 0 and 64 bars"),
])
def test_out_of_range(name, value, expected):
    e = error_of(req("set", {name: value}))
    assert e.code == "bad_args"
    assert f"'{name}'" in e.message and expected in e.message and f"got {value}" in e.message


@pytest.mark.parametrize("name,value,got", [
    ("top_k", True, "got true"),        # a boolean is not an int
    ("velocity", 100.0, "got 100.0"),   # nor is a float
    ("channel", "1", 'got "1"'),
    ("tempo", "fast", 'got "fast"'),
    ("tempo", False, "got false"),      # nor a number for a float argument
    ("tempo", None, "got null"),
    ("greedy", 1, "got 1"),             # and 1 is not a boolean
    ("greedy", "true", 'got "true"'),
])
def test_wrong_types(name, value, got):
    e = error_of(req("set", {name: value}))
    assert e.code == "bad_args" and f"'{name}'" in e.message and got in e.message


def test_unknown_argument_is_named_and_a_close_one_suggested():
    e = error_of(req("set", {"tempp": 100}))
    assert e.code == "bad_args"
    assert "'tempp'" in e.message and "did you mean 'tempo'" in e.message


def test_argument_to_a_command_without_arguments():
    e = error_of(req("ping", {"loud": True}))
    assert e.code == "bad_args" and "'loud'" in e.message and "no arguments" in e.message


def test_set_needs_at_least_one_control():
    e = error_of(req("set", {}))
    assert e.code == "bad_args" and "at least one" in e.message and "tempo" in e.message


def test_seed_missing_notes():
    e = error_of(req("seed", {"play": True}))
    assert e.code == "bad_args" and "missing required argument 'notes'" in e.message


@pytest.mark.parametrize("notes,expected", [
    ([], "got 0 notes"),
    ([NOTE] * 2049, "got 2049 notes"),
    ("C D E", "list of 1 to 2048 notes"),
    ([NOTE, [60, 0, 1]], "notes[1] must be an object"),
    ([{"pitch": 128, "start": 0, "duration": 1}],
     "notes[0].pitch must be a whole number between 0 and 127, got 128"),
    ([{"pitch": 60.0, "start": 0, "duration": 1}], "notes[0].pitch must be a whole number"),
    ([{"pitch": 60, "start": -1, "duration": 1}],
     "notes[0].start must be a number of at least 0 beats, got -1"),
    ([{"pitch": 60, "start": 0, "duration": 0}],
     "notes[0].duration must be a number greater than 0"),
    ([{"pitch": 60, "start": 0, "duration": 65}], "at most 64 beats, got 65"),
    ([{"pitch": 60, "start": 0}], "notes[0] is missing 'duration'"),
    ([{"pitch": 60, "start": 0, "duration": 1, "vel": 3}], "notes[0] has unknown field 'vel'"),
])
def test_bad_seed_notes(notes, expected):
    e = error_of(req("seed", {"notes": notes}))
    assert e.code == "bad_args" and e.message.startswith("seed: ") and expected in e.message


def test_args_must_be_an_object():
    e = error_of(req("set", [1, 2]))
    assert e.code == "bad_args" and '"args" must be an object' in e.message


@pytest.mark.parametrize("bad_id", [True, 1.5, [1], {"a": 1}])
def test_bad_id(bad_id):
    e = error_of(req("ping", id=bad_id))
    assert e.code == "bad_args" and "'id'" in e.message and e.id is None


def test_unknown_envelope_field():
    e = error_of(req("ping", arg={"tempo": 100}))
    assert e.code == "bad_args" and "'arg'" in e.message


def test_oversized_request():
    payload = req("seed", {"notes": [NOTE], "padding": "x" * MAX_MESSAGE_BYTES})
    assert len(payload) > MAX_MESSAGE_BYTES
    e = error_of(payload)
    assert e.code == "too_large" and str(MAX_MESSAGE_BYTES) in e.message


def test_empty_request():
    assert error_of(b"").code == "bad_frames"


def test_error_codes_are_a_closed_set():
    with pytest.raises(ValueError):
        ProtocolError("oops", "not a documented code")


# --- encoding ----------------------------------------------------------------------------------

def test_encode_request_round_trips_through_decode():
    r = decode_request(encode_request("set", {"tempo": 90}, id="x"))
    assert (r.cmd, r.args, r.id) == ("set", {"tempo": 90.0}, "x")
    assert json.loads(encode_request("ping")) == {"v": PROTOCOL_VERSION, "cmd": "ping"}


def test_replies_carry_version_and_id():
    ok = json.loads(encode_reply_ok(5, {"tempo": 90.0}))
    assert ok == {"v": PROTOCOL_VERSION, "id": 5, "ok": True, "result": {"tempo": 90.0}}
    err = json.loads(encode_reply_error(ProtocolError("unavailable", "no model loaded", id="q")))
    assert err == {"v": PROTOCOL_VERSION, "id": "q", "ok": False,
                   "error": {"code": "unavailable", "message": "no model loaded"}}


def test_encode_event_frames():
    topic, body = encode_event("note_on", {"pitch": 60, "velocity": 90, "channel": 1})
    assert topic == b"note_on"
    event = json.loads(body)
    assert event["v"] == PROTOCOL_VERSION and event["event"] == "note_on"
    assert isinstance(event["t"], float) and event["pitch"] == 60


@pytest.mark.parametrize("name,data", [("note_onn", {}), ("note_on", {"pitch": 60}),
                                       ("state", {"state": "playing", "v": 2})])
def test_encode_event_refuses_undocumented_events(name, data):
    with pytest.raises(ValueError):
        encode_event(name, data)


def test_tables_are_consistent():
    assert set(COMMANDS) == {"ping", "status", "start", "stop", "set", "seed", "panic", "shutdown",
                             "clock", "add_voice", "remove_voice", "load_model", "list_models",
                             "map_cc", "learn", "record", "audio_start", "audio_stop",
                             "audio_seed", "audio_gain", "audio_status"}
    assert set(EVENTS) == {"note_on", "note_off", "phrase", "state", "error", "model", "learned",
                           "transport", "xrun", "ports", "plan"}
    assert "internal" in ERROR_CODES and "unavailable" in ERROR_CODES
    for spec in COMMANDS.values():
        for a in spec.args:
            assert a.type in {"int", "float", "bool", "str", "notes", "samples"}
            assert not (a.required and a.default is not None)


def test_samples_are_a_bounded_list_of_finite_numbers():
    ok = decode_request(b'{"v": 1, "cmd": "audio_seed", "args": {"samples": [0, 0.5, -1], '
                        b'"sample_rate": 16000}}')
    assert ok.args["samples"] == [0.0, 0.5, -1.0]
    for bad, words in [(b'"samples": "x"', "a list of 1 to 32000 samples"),
                       (b'"samples": []', "0 samples"),
                       (b'"samples": [0, true]', "something other than finite numbers")]:
        with pytest.raises(ProtocolError) as err:
            decode_request(b'{"v": 1, "cmd": "audio_seed", "args": {' + bad + b'}}')
        assert err.value.code == "bad_args" and words in err.value.message
