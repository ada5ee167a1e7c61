"""The control server, client and `riffd ctl` over real ZeroMQ sockets on loopback."""

import argparse
import json
import socket
import threading
import time

import pytest
import zmq

from riffd.daemon import auth, ctl
from riffd.daemon.client import RiffdClient, RiffdError, RiffdUnavailable
from riffd.daemon.control import ROUTER_MAX_FRAME_BYTES, ControlBindError, ControlServer
from riffd.daemon.protocol import MAX_MESSAGE_BYTES, PROTOCOL_VERSION, ProtocolError, encode_request

ANY_PORT = "tcp://127.0.0.1:*"
WAIT_MS = 2000  # longest a raw socket waits for a reply in these tests


class Handler:
    """Echoes each command; ``status`` fails, ``start`` is unavailable, ``stop`` is slow."""

    def __init__(self):
        self.calls = []
        self.stop_delay_s = 0.0

    def __call__(self, cmd, args):
        self.calls.append((cmd, args))
        if cmd == "status":
            raise RuntimeError("model exploded")
        if cmd == "start":
            raise ProtocolError("unavailable", "start: no model is loaded")
        if cmd == "stop":
            time.sleep(self.stop_delay_s)
        return {"cmd": cmd, "args": args}


@pytest.fixture(autouse=True)
def private_keys(tmp_path, monkeypatch):
    """tcp endpoints use CURVE: each test gets a fresh config folder with its own keys."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))


@pytest.fixture
def handler():
    return Handler()


@pytest.fixture
def server(handler):
    with ControlServer(handler, ANY_PORT, ANY_PORT) as s:
        yield s


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.term()


def raw_socket(ctx, kind, endpoint):
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    auth.secure_client_socket(s, endpoint)  # this user's CURVE keys
    s.connect(endpoint)
    return s


def recv_reply(sock) -> dict:
    assert sock.poll(WAIT_MS), "no reply from the control server"
    return json.loads(sock.recv_multipart()[-1])


def free_port_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


# --- commands ----------------------------------------------------------------------------------

EXAMPLES = {
    "set": {"tempo": 100, "temperature": 0.8, "greedy": True},
    "seed": {"notes": [{"pitch": 60, "start": 0, "duration": 1}], "play": False},
}


@pytest.mark.parametrize("cmd", ["stop", "set", "seed", "panic", "shutdown"])
def test_every_command_reaches_the_handler_validated(server, handler, cmd):
    with RiffdClient(server.router_address) as client:
        result = client.request(cmd, **EXAMPLES.get(cmd, {}))
    expected_args = {"set": {"tempo": 100.0, "temperature": 0.8, "greedy": True},
                     "seed": {"notes": [{"pitch": 60, "start": 0.0, "duration": 1.0}],
                              "play": False}}.get(cmd, {})
    assert result == {"cmd": cmd, "args": expected_args}
    assert handler.calls == [(cmd, expected_args)]


def test_ping_is_answered_by_the_server(server, handler):
    with RiffdClient(server.router_address) as client:
        before = time.monotonic()
        result = client.ping()
    assert result["pong"] is True and before <= result["time"] <= time.monotonic()
    assert handler.calls == []


def test_convenience_methods(server, handler):
    with RiffdClient(server.router_address) as client:
        client.set(tempo=90)
        client.seed([(60, 0, 1), {"pitch": 62, "start": 1, "duration": 0.5}])
        client.stop(), client.panic(), client.shutdown()
    assert [c for c, _ in handler.calls] == ["set", "seed", "stop", "panic", "shutdown"]
    assert handler.calls[1][1] == {"notes": [{"pitch": 60, "start": 0.0, "duration": 1.0},
                                             {"pitch": 62, "start": 1.0, "duration": 0.5}],
                                   "play": True}


def test_req_client(server, ctx):
    req = raw_socket(ctx, zmq.REQ, server.router_address)
    req.send(encode_request("set", {"tempo": 120}, id="req-1"))
    reply = recv_reply(req)
    assert reply == {"v": PROTOCOL_VERSION, "id": "req-1", "ok": True,
                     "result": {"cmd": "set", "args": {"tempo": 120.0}}}
    req.send(encode_request("ping"))  # REQ can go on: it got its reply
    assert recv_reply(req)["result"]["pong"] is True
    req.close()


def test_dealer_client(server, ctx):
    dealer = raw_socket(ctx, zmq.DEALER, server.router_address)
    dealer.send(encode_request("panic", id=42))
    frames = dealer.recv_multipart() if dealer.poll(WAIT_MS) else []
    assert len(frames) == 1  # no delimiter frame for a DEALER
    assert json.loads(frames[0])["id"] == 42
    dealer.close()


def test_validation_errors_come_back(server):
    with RiffdClient(server.router_address) as client:
        with pytest.raises(RiffdError) as info:
            client.set(tempo=900)
    assert info.value.code == "bad_args"
    assert info.value.message == "set: 'tempo' must be a number between 20 and 300 BPM, got 900"


# --- handler failures --------------------------------------------------------------------------

def test_handler_exception_is_internal_and_server_goes_on(server):
    with RiffdClient(server.router_address) as client:
        with pytest.raises(RiffdError) as info:
            client.status()
        assert info.value.code == "internal"
        assert "RuntimeError" in info.value.message and "model exploded" in info.value.message
        assert client.ping()["pong"] is True
    assert server.errors == 1


def test_handler_protocol_error_becomes_the_reply(server, ctx):
    dealer = raw_socket(ctx, zmq.DEALER, server.router_address)
    dealer.send(encode_request("start", id="s"))
    reply = recv_reply(dealer)
    assert reply["id"] == "s" and reply["ok"] is False
    assert reply["error"] == {"code": "unavailable", "message": "start: no model is loaded"}
    dealer.close()


def test_handler_returning_a_non_dict_is_internal(ctx):
    with ControlServer(lambda cmd, args: ["not", "a", "dict"], ANY_PORT, ANY_PORT) as s:
        with RiffdClient(s.router_address) as client:
            with pytest.raises(RiffdError) as info:
                client.panic()
    assert info.value.code == "internal" and "list" in info.value.message


def test_slow_reply_times_out_and_is_never_mistaken_for_the_next(server, handler):
    handler.stop_delay_s = 0.5
    with RiffdClient(server.router_address, timeout_s=0.2) as client:
        with pytest.raises(RiffdUnavailable):
            client.stop()
        handler.stop_delay_s = 0.0
        time.sleep(0.5)  # the late reply to `stop` arrives meanwhile
        assert client.set(tempo=80) == {"cmd": "set", "args": {"tempo": 80.0}}


# --- raw bad messages over real sockets --------------------------------------------------------

def assert_still_serving(server, ctx):
    req = raw_socket(ctx, zmq.REQ, server.router_address)
    req.send(encode_request("ping", id="alive"))
    assert recv_reply(req)["result"]["pong"] is True
    req.close()


@pytest.mark.parametrize("kind,frames,code", [
    (zmq.REQ, [b"not json"], "not_json"),
    (zmq.REQ, [b"\xff\xfe\xfd"], "not_json"),
    (zmq.REQ, [b"[1, 2, 3]"], "not_object"),
    (zmq.REQ, [b'{"v": 9, "cmd": "ping"}'], "bad_version"),
    (zmq.REQ, [b'{"v": 1, "cmd": "dance"}'], "unknown_command"),
    (zmq.REQ, [b""], "bad_frames"),
    (zmq.REQ, [b'{"v": 1, "cmd": "ping"}', b"extra"], "bad_frames"),
    (zmq.DEALER, [b'{"v": 1, "cmd": "ping"}', b"extra"], "bad_frames"),
    (zmq.DEALER, [b"", b'{"v": 1, "cmd": "ping"}', b"extra"], "bad_frames"),
    (zmq.REQ, [b"x" * (MAX_MESSAGE_BYTES + 1)], "too_large"),
    (zmq.DEALER, [b"x" * (MAX_MESSAGE_BYTES * 2)], "too_large"),
])
def test_bad_messages_get_an_error_reply(server, ctx, kind, frames, code):
    sock = raw_socket(ctx, kind, server.router_address)
    sock.send_multipart(frames)
    reply = recv_reply(sock)
    assert reply["v"] == PROTOCOL_VERSION and reply["ok"] is False
    assert reply["error"]["code"] == code and reply["error"]["message"]
    sock.close()
    assert_still_serving(server, ctx)


def test_huge_message_drops_that_connection_only(server, ctx):
    dealer = raw_socket(ctx, zmq.DEALER, server.router_address)
    dealer.send(b"x" * (ROUTER_MAX_FRAME_BYTES + 1))
    assert not dealer.poll(300)  # libzmq closes the connection: no reply
    dealer.close()
    assert_still_serving(server, ctx)


def test_counters(server, ctx):
    with RiffdClient(server.router_address) as client:
        client.ping()
        with pytest.raises(RiffdError):
            client.set(tempo=0)
    assert (server.requests, server.errors) == (2, 1)


# --- events ------------------------------------------------------------------------------------

def test_publish_from_another_thread_reaches_a_subscriber(server, ctx):
    sub = raw_socket(ctx, zmq.SUB, server.pub_address)
    sub.setsockopt(zmq.SUBSCRIBE, b"note_on")
    stop = threading.Event()

    def play():  # publish until the subscriber has joined (ZeroMQ's slow-joiner)
        pitch = 0
        while not stop.is_set():
            server.publish("state", {"state": "playing"})  # filtered out by the subscription
            server.publish("note_on", {"pitch": pitch % 128, "velocity": 90, "channel": 1})
            pitch += 1
            time.sleep(0.005)

    t = threading.Thread(target=play)
    t.start()
    try:
        assert sub.poll(WAIT_MS)
        topic, body = sub.recv_multipart()
        received = time.monotonic()
    finally:
        stop.set()
        t.join()
        sub.close()
    event = json.loads(body)
    assert topic == b"note_on" and event["event"] == "note_on" and event["v"] == PROTOCOL_VERSION
    assert event["velocity"] == 90 and event["channel"] == 1
    assert 0 <= received - event["t"] < 0.05  # published to received: milliseconds
    assert server.events_published >= 2


def test_client_subscribe_filters_and_ends_on_timeout(server):
    stop = threading.Event()

    def play():
        while not stop.is_set():
            server.publish("state", {"state": "stopped"})
            server.publish("note_off", {"pitch": 60, "channel": 2})
            time.sleep(0.005)

    t = threading.Thread(target=play)
    t.start()
    try:
        events = RiffdClient(server.router_address).subscribe(server.pub_address,
                                                             events=["note_off"], timeout_s=2)
        first = next(events)
        events.close()
    finally:
        stop.set()
        t.join()
    assert first["event"] == "note_off" and first["channel"] == 2
    quiet = RiffdClient().subscribe(server.pub_address, timeout_s=0.1)
    started = time.monotonic()
    assert list(quiet) == [] and time.monotonic() - started < 1.0


def test_publish_when_not_running_drops(handler):
    s = ControlServer(handler, ANY_PORT, ANY_PORT)
    assert s.publish("state", {"state": "stopped"}) is False
    with s:
        assert s.publish("state", {"state": "playing"}) is True
    assert s.publish("state", {"state": "stopped"}) is False
    assert s.events_dropped == 2


def test_publish_refuses_undocumented_events(server):
    with pytest.raises(ValueError):
        server.publish("fireworks", {})


# --- lifecycle ---------------------------------------------------------------------------------

def test_port_in_use_names_the_endpoint_and_the_fix(server, handler):
    with pytest.raises(ControlBindError) as info:
        ControlServer(handler, server.router_address, ANY_PORT).start()
    assert server.router_address in str(info.value) and "--control" in str(info.value)
    with pytest.raises(ControlBindError) as info:
        ControlServer(handler, ANY_PORT, server.pub_address).start()
    assert server.pub_address in str(info.value) and "--events" in str(info.value)
    assert_still_serving(server, zmq.Context.instance())


def test_stop_is_prompt_and_frees_the_port(handler):
    s = ControlServer(handler, ANY_PORT, ANY_PORT)
    s.start()
    endpoint = s.router_address
    started = time.monotonic()
    s.stop()
    assert time.monotonic() - started < 0.5
    with ControlServer(handler, endpoint, ANY_PORT) as again:  # the port can be bound again
        with RiffdClient(again.router_address) as client:
            assert client.ping()["pong"] is True


def test_client_without_a_daemon_is_unavailable_within_the_timeout():
    endpoint = free_port_endpoint()
    started = time.monotonic()
    with RiffdClient(endpoint, timeout_s=0.3) as client:
        with pytest.raises(RiffdUnavailable) as info:
            client.ping()
    assert time.monotonic() - started < 0.8
    assert endpoint in str(info.value) and "riffd serve" in str(info.value)


# --- riffd ctl ---------------------------------------------------------------------------------

def ctl_args(*argv):
    parser = argparse.ArgumentParser(prog="riffd")
    ctl.add_arguments(parser.add_subparsers(dest="command").add_parser("ctl"))
    return parser.parse_args(["ctl", *argv])


def test_ctl_ok_prints_the_result(server, handler, capsys):
    code = ctl.run(ctl_args("set", "tempo=100", "greedy=true", "--endpoint", server.router_address))
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"cmd": "set",
                                                   "args": {"tempo": 100.0, "greedy": True}}


def test_ctl_seed_notes_from_words_and_file(server, handler, tmp_path):
    phrase = tmp_path / "phrase.json"
    phrase.write_text(json.dumps([{"pitch": 67, "start": 0, "duration": 2}]))
    assert ctl.run(ctl_args("--endpoint", server.router_address, "seed", "60:0:1", "62:1:0.5")) == 0
    assert ctl.run(ctl_args("--endpoint", server.router_address, "seed", "--file", str(phrase),
                            "play=false")) == 0
    assert handler.calls == [
        ("seed", {"notes": [{"pitch": 60, "start": 0.0, "duration": 1.0},
                            {"pitch": 62, "start": 1.0, "duration": 0.5}], "play": True}),
        ("seed", {"notes": [{"pitch": 67, "start": 0.0, "duration": 2.0}], "play": False}),
    ]


def test_ctl_error_reply_exits_1(server, capsys):
    assert ctl.run(ctl_args("set", "tempo=900", "--endpoint", server.router_address)) == 1
    err = capsys.readouterr().err
    assert "'tempo' must be a number between 20 and 300 BPM, got 900" in err


def test_ctl_bad_words_exit_1(server, capsys):
    assert ctl.run(ctl_args("seed", "60-0-1", "--endpoint", server.router_address)) == 1
    assert "PITCH:START:DURATION" in capsys.readouterr().err
    assert ctl.run(ctl_args("set", "tempo", "--endpoint", server.router_address)) == 1


def test_ctl_unreachable_exits_2(capsys):
    endpoint = free_port_endpoint()
    assert ctl.run(ctl_args("ping", "--endpoint", endpoint, "--timeout", "0.2")) == 2
    err = capsys.readouterr().err
    assert endpoint in err and "riffd serve" in err


def test_ctl_events_prints_json_lines(server, capsys):
    stop = threading.Event()

    def play():
        while not stop.is_set():
            server.publish("note_on", {"pitch": 64, "velocity": 80, "channel": 3})
            time.sleep(0.005)

    t = threading.Thread(target=play)
    t.start()
    try:
        code = ctl.run(ctl_args("--endpoint", server.router_address, "events", "note_on",
                                "--count", "3", "--events-endpoint", server.pub_address))
    finally:
        stop.set()
        t.join()
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(json.loads(ln)["pitch"] == 64 for ln in lines)


def test_ctl_help_is_generated_from_the_spec(capsys):
    with pytest.raises(SystemExit):
        ctl_args("set", "--help")
    set_help = capsys.readouterr().out
    assert "20–300 BPM" in set_help and "0.05–5" in set_help and "greedy" in set_help
