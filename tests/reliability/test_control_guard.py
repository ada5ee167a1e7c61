"""The control server's request path on its own, over real ZeroMQ sockets: slow (deferred) work
does not hold up other requests, and handlers that fail or return what JSON cannot hold get one
`internal` reply each, counted, while the server goes on serving."""
from __future__ import annotations

import json
import threading
import time

import pytest
import zmq

from riffd.daemon import auth
from riffd.daemon.client import RiffdClient, RiffdError
from riffd.daemon.control import ControlServer
from riffd.daemon.protocol import encode_request
from riffd.daemon.slow_work import Deferred

ANY_PORT = "tcp://127.0.0.1:*"
SLOW_S = 1.0


class Handler:
    """``start``: deferred work that waits until released; ``stop``: a result that is not JSON;
    ``set``: raises; ``status``: a result with a lone surrogate."""

    def __init__(self):
        self.release = threading.Event()

    def __call__(self, cmd, args):
        if cmd == "start":
            def slow():
                self.release.wait(10)
                return {"loaded": True}
            return Deferred(slow, "start")
        if cmd == "stop":
            return {"value": object()}
        if cmd == "set":
            raise RuntimeError("boom")
        return {"name": "voice \ud800"}


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    handler = Handler()
    with ControlServer(handler, ANY_PORT, ANY_PORT) as s:
        s.test_handler = handler
        yield s
    handler.release.set()


def test_deferred_work_is_answered_later_and_ping_meanwhile(server):
    ctx = zmq.Context.instance()
    slow = ctx.socket(zmq.DEALER)
    slow.setsockopt(zmq.LINGER, 0)
    auth.secure_client_socket(slow, server.router_address)
    slow.connect(server.router_address)
    try:
        slow.send(encode_request("start", id="slow"))
        time.sleep(0.1)
        with RiffdClient(server.router_address, timeout_s=2) as client:
            pings = []
            for _ in range(20):
                asked = time.perf_counter()
                client.ping()
                pings.append(time.perf_counter() - asked)
        assert max(pings) < 0.1, pings
        assert not slow.poll(0)                    # the slow request is still running
        server.test_handler.release.set()
        assert slow.poll(5000)
        reply = json.loads(slow.recv_multipart()[-1])
        assert reply == {"v": 1, "id": "slow", "ok": True, "result": {"loaded": True}}
        assert not slow.poll(300)                  # one reply, not two
    finally:
        slow.close(linger=0)


def test_failures_are_answered_internal_counted_and_serving_goes_on(server):
    with RiffdClient(server.router_address, timeout_s=2) as client:
        with pytest.raises(RiffdError) as info:
            client.request("stop")
        assert info.value.code == "internal" and "TypeError" in info.value.message
        with pytest.raises(RiffdError) as info:
            client.request("set", tempo=100)
        assert info.value.code == "internal" and "boom" in info.value.message
        assert client.request("status") == {"name": "voice \ud800"}   # escaped, read back
        assert client.ping()["pong"] is True
    assert server.internal_errors == 2 and server.errors == 2
