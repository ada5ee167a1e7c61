"""A small client for scripts that drive a running ``riffd serve``.

    from riffd.daemon.client import RiffdClient

    with RiffdClient() as riffd:
        riffd.set(tempo=96, temperature=0.8)
        riffd.seed([(60, 0, 1), (62, 1, 1), (64, 2, 2)])  # (pitch, start beats, duration beats)
        for event in riffd.subscribe(events=["note_on"], timeout_s=5):
            print(event["pitch"])

Without an endpoint the client finds the daemon where ``riffd serve`` puts it by default: the
ipc sockets in the user's private runtime folder. A ``tcp://`` endpoint is reached with CURVE,
using the keys in the user's riffd config folder (see :mod:`riffd.daemon.auth`).

A client is for one thread at a time (ZeroMQ sockets are not thread-safe).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import zmq

from riffd.daemon import auth
from riffd.daemon.protocol import EVENTS, MAX_MESSAGE_BYTES, encode_request

DEFAULT_CONTROL = "ipc://$XDG_RUNTIME_DIR/riffd/control"   # how help texts name the defaults
DEFAULT_EVENTS = "ipc://$XDG_RUNTIME_DIR/riffd/events"
_SLICE_S = 0.1  # waits are cut into slices this long (seconds) so Ctrl-C is seen promptly


class RiffdError(Exception):
    """The daemon answered with an error. ``code`` is a protocol error code (docs/protocol.md)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


class RiffdUnavailable(ConnectionError):
    """No answer from the daemon within the timeout: it is not running or not reachable."""


class RiffdClient:
    """Send commands to the daemon at ``endpoint``; each waits at most ``timeout_s`` seconds.

    Uses a DEALER socket that only queues messages to a live connection, so a request to a dead
    daemon fails with :class:`RiffdUnavailable` instead of being delivered, late, when a daemon
    starts. After a timeout the socket is replaced, so a late reply cannot be mistaken for the
    answer to a later request.

    ``endpoint`` None: the default local socket. ``keys``: the CURVE keys for tcp endpoints
    (default: this user's, from the config folder).
    """

    def __init__(self, endpoint: str | None = None, timeout_s: float = 2.0,
                 context: zmq.Context | None = None, keys: auth.ClientKeys | None = None):
        self.endpoint = endpoint or auth.default_endpoint("control")
        self.timeout_s = timeout_s
        self.keys = keys
        self._ctx = context if context is not None else zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._ids = itertools.count(1)

    def __enter__(self) -> RiffdClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket (unsent requests are dropped)."""
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    # --- requests --------------------------------------------------------------------------

    def request(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send ``cmd`` with ``args``; return the reply's result or raise :class:`RiffdError`."""
        req_id = next(self._ids)
        payload = encode_request(cmd, args, req_id)
        if len(payload) > MAX_MESSAGE_BYTES:
            raise RiffdError("too_large", f"{cmd}: request is {len(payload)} bytes; "
                                          f"the limit is {MAX_MESSAGE_BYTES} bytes")
        reply = self._round_trip(payload, req_id)
        if reply.get("ok"):
            return reply.get("result", {})
        error = reply.get("error") or {}
        raise RiffdError(error.get("code", "internal"), error.get("message", "(no message)"))

    def _round_trip(self, payload: bytes, req_id: int) -> dict[str, Any]:
        sock = self._socket()
        deadline = time.monotonic() + self.timeout_s
        try:
            sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            # the queue is full: wait for room, up to the deadline
            while not sock.poll(_poll_ms(deadline), zmq.POLLOUT):
                if time.monotonic() >= deadline:
                    self._give_up()
            sock.send(payload, zmq.NOBLOCK)
        while True:
            if not sock.poll(_poll_ms(deadline), zmq.POLLIN):
                if time.monotonic() >= deadline:
                    self._give_up()
                continue
            frames = sock.recv_multipart()
            reply = json.loads(frames[-1])
            if reply.get("id") == req_id:
                return reply
            # Otherwise: an error reply the daemon could not tie to a request; ignore it.

    def _give_up(self) -> None:
        self.close()  # a fresh socket next time: no stale request or reply survives
        hint = ""
        if auth.transport(self.endpoint) == "tcp":
            hint = (f" Over tcp riffd only answers allowed keys: this client's public key must "
                    f"be in the daemon's authorized_keys, and {auth.config_dir()}/server.key "
                    f"must be the daemon's (`riffd keys` on each machine shows them)")
        raise RiffdUnavailable(f"no answer from riffd at {self.endpoint} within "
                               f"{self.timeout_s:g} s; is `riffd serve` running?{hint}")

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            s = self._ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            # not IMMEDIATE: with it, a connection that ends (riffd answering `shutdown`, then
            # closing) takes the replies not yet read with it. Without a connection a request
            # waits in the queue until the deadline, then the socket is closed (_give_up).
            try:
                auth.secure_client_socket(s, self.endpoint, self.keys)
            except BaseException:
                s.close(linger=0)
                raise
            s.connect(self.endpoint)
            self._sock = s
        return self._sock

    # --- commands --------------------------------------------------------------------------

    def ping(self) -> dict[str, Any]:
        """``{"pong": true, "time": <daemon monotonic seconds>}``."""
        return self.request("ping")

    def status(self) -> dict[str, Any]:
        """What the daemon is doing."""
        return self.request("status")

    def start(self) -> dict[str, Any]:
        """Start continuous generation."""
        return self.request("start")

    def stop(self) -> dict[str, Any]:
        """Stop playing; sounding notes get their note-offs."""
        return self.request("stop")

    def set(self, **controls: Any) -> dict[str, Any]:
        """Change controls: tempo (BPM), temperature, top_k, top_p, velocity, channel,
        length (bars), greedy."""
        return self.request("set", **controls)

    def seed(self, notes: Iterable[Any], play: bool = True) -> dict[str, Any]:
        """Give a phrase to continue: note dicts ``{"pitch", "start", "duration"}`` or
        ``(pitch, start, duration)`` tuples; times in beats. ``play``: answer it at once."""
        return self.request("seed", notes=[_note(n) for n in notes], play=play)

    def panic(self) -> dict[str, Any]:
        """All notes off, now."""
        return self.request("panic")

    def shutdown(self) -> dict[str, Any]:
        """Stop the daemon."""
        return self.request("shutdown")

    # --- events ----------------------------------------------------------------------------

    def subscribe(self, endpoint: str | None = None, events: Iterable[str] | None = None,
                  timeout_s: float | None = None,
                  stop: threading.Event | None = None) -> Iterator[dict[str, Any]]:
        """Yield event dicts published at ``endpoint``; ``events`` limits them to those names.

        ``endpoint`` None: the event socket that goes with the control endpoint (the ``events``
        socket beside an ipc ``control``, the next port of a tcp one). The iteration ends when
        no event arrives for ``timeout_s`` seconds (``None``: wait forever), or once ``stop`` is
        set (checked at least every 0.1 s). Events published before the subscription is
        connected are not seen, so a script that must see every event keeps one subscription.
        """
        names = list(events) if events is not None else [""]
        unknown = [n for n in names if n and n not in EVENTS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; events: {', '.join(EVENTS)}")
        endpoint = endpoint or auth.events_endpoint_for(self.endpoint)
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            auth.secure_client_socket(sock, endpoint, self.keys)
            for name in names:
                sock.setsockopt_string(zmq.SUBSCRIBE, name)
            sock.connect(endpoint)
            while True:
                deadline = None if timeout_s is None else time.monotonic() + timeout_s
                while not sock.poll(_poll_ms(deadline), zmq.POLLIN):
                    if deadline is not None and time.monotonic() >= deadline:
                        return
                    if stop is not None and stop.is_set():
                        return
                topic, body = sock.recv_multipart()
                yield json.loads(body)
                if stop is not None and stop.is_set():
                    return
        finally:
            sock.close(linger=0)


def _poll_ms(deadline: float | None) -> int:
    """Milliseconds to poll: up to the deadline, at most one slice."""
    if deadline is None:
        return int(_SLICE_S * 1000)
    return max(0, min(int(_SLICE_S * 1000), int((deadline - time.monotonic()) * 1000) + 1))


def _note(n: Any) -> Any:
    """A (pitch, start, duration) tuple as a note dict; anything else as given."""
    if isinstance(n, (tuple, list)) and len(n) == 3:
        return {"pitch": n[0], "start": n[1], "duration": n[2]}
    return n
