"""A small OSC client for scripts, tests and benchmarks that drive ``riffd serve --osc``.

    from riffd.daemon.osc_client import OscClient

    with OscClient("udp://127.0.0.1:9000") as osc:
        osc.call("set", "tempo", 100)                  # -> {"changed": ["tempo"]}
        osc.call("seed", "notes", 60, 0, 1, 62, 1, 1)  # pitch, start, duration (beats)

Max, Pd or SuperCollider send the same messages (docs/osc.md). One thread at a time.
"""
from __future__ import annotations

import json
import socket
import time
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from riffd.daemon.osc import parse_udp
from riffd.daemon.osc_map import ERROR, EVENT_PREFIX, PREFIX, REPLY


class OscError(Exception):
    """riffd answered ``/riffd/error``; ``code`` is a protocol error code."""

    def __init__(self, cmd: str, code: str, message: str):
        super().__init__(f"{message} ({code})")
        self.cmd, self.code, self.message = cmd, code, message


def build(address: str, *args: Any) -> bytes:
    """One OSC message; Python ints are sent as int32 (int64 when larger), floats as float32,
    True/False as T/F, str as strings."""
    builder = OscMessageBuilder(address)
    for a in args:
        builder.add_arg(a)
    return builder.build().dgram


class OscClient:
    """A UDP socket on 127.0.0.1 (or ``bind``) talking to riffd's OSC endpoint ``url``."""

    def __init__(self, url: str, timeout_s: float = 5.0, bind: str = "127.0.0.1"):
        host, port = parse_udp(url)
        self.target = (host, port)
        self.timeout_s = timeout_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.events: list[tuple[str, list]] = []    # events that arrived while waiting for a reply

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> OscClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(build(address, *args), self.target)

    def send_raw(self, dgram: bytes) -> None:
        self.sock.sendto(dgram, self.target)

    def receive(self, timeout_s: float | None = None) -> tuple[str, list] | None:
        """The next message riffd sent (address, arguments), or None after ``timeout_s``."""
        self.sock.settimeout(self.timeout_s if timeout_s is None else timeout_s)
        try:
            dgram, _ = self.sock.recvfrom(65536)
        except (socket.timeout, TimeoutError):
            return None
        message = OscMessage(dgram)
        return message.address, message.params

    def reply(self, timeout_s: float | None = None) -> tuple[str, list]:
        """The next reply or error (events that come first are kept in :attr:`events`)."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            got = self.receive(max(0.0, deadline - time.monotonic()))
            if got is None:
                raise TimeoutError(f"no OSC reply from riffd at {self.target} in time")
            if got[0].startswith(EVENT_PREFIX):
                self.events.append(got)
                continue
            return got

    def call(self, cmd: str, *args: Any, voice: str | None = None) -> dict[str, Any]:
        """Send ``/riffd/CMD args…`` (``/riffd/voice/VOICE/CMD`` with ``voice``) and return the
        result; raises :class:`OscError` for an error reply."""
        address = f"{PREFIX}/voice/{voice}/{cmd}" if voice else f"{PREFIX}/{cmd}"
        self.send(address, *args)
        address, params = self.reply()
        if address == ERROR:
            raise OscError(params[0], params[2], params[3])
        if address != REPLY:
            raise ValueError(f"unexpected OSC message {address} {params}")
        return json.loads(params[2])
