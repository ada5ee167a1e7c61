"""A second JACK client that talks to riffd through real ports (tests, demo, benchmarks).

The peer has its own ``jack.Client`` (default name ``riffd-peer``) with ports ``in`` and ``out``.
It records every message it receives with its absolute JACK frame time, the precise measure for
timing: frames count samples at the server's rate, free of Python scheduling jitter.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from daemon.midi_ports import JackMidiPorts, MidiPortError


@dataclass(frozen=True)
class ReceivedMessage:
    """One message seen by the peer.

    Attributes:
        message: the MIDI bytes as ints.
        frame: absolute JACK frame time (frames since the server started).
        seconds: ``frame / samplerate`` in seconds on the server's frame clock.
        monotonic: approximate ``time.monotonic()`` time the message stands for (see
            :class:`~daemon.midi_ports.JackMidiPorts` for the mapping).
    """

    message: list
    frame: int
    seconds: float
    monotonic: float


class _PeerPorts(JackMidiPorts):
    """JackMidiPorts that also hands over the absolute frame of each input event."""

    def __init__(self, sink: Callable[[list, int, float], None]) -> None:
        super().__init__()
        self._sink = sink

    def _deliver_frame(self, message: list, frame: int, time_s: float) -> None:
        self._sink(message, frame, time_s)


class MidiPeer:
    """A JACK client that plays to ``riffd:in`` and listens to ``riffd:out``.

    Args:
        client_name: JACK client name of the peer.
    """

    def __init__(self, client_name: str = "riffd-peer") -> None:
        self.client_name = client_name
        self._ports = _PeerPorts(self._record)
        self._received: list[ReceivedMessage] = []
        self._cond = threading.Condition()
        self._ports.open(client_name, out_name="out", in_name="in")

    @property
    def samplerate(self) -> int:
        """Server sample rate in Hz."""
        return self._ports.samplerate

    @property
    def blocksize(self) -> int:
        """Frames per process cycle."""
        return self._ports.blocksize

    @property
    def in_port_name(self) -> str:
        return self._ports.in_port_name

    @property
    def out_port_name(self) -> str:
        return self._ports.out_port_name

    def connect(self, riffd_out: str | None = "riffd:out", riffd_in: str | None = "riffd:in") -> None:
        """Connect ``riffd_out`` -> peer ``in`` and peer ``out`` -> ``riffd_in`` (None: skip)."""
        client = self._ports._client
        if client is None:
            raise MidiPortError("MidiPeer is closed")
        if riffd_out is not None:
            client.connect(riffd_out, self.in_port_name)
        if riffd_in is not None:
            client.connect(self.out_port_name, riffd_in)

    def play(self, messages: Sequence[tuple[float, Sequence[int]]]) -> float:
        """Send each ``(t, message)`` at ``t`` seconds from now, frame-accurately.

        ``t = 0`` is placed one period (+1 ms) ahead so that every event lands at its exact frame.
        Returns the monotonic time that ``t = 0`` stands for.
        """
        t0 = time.monotonic() + self._ports.latency_s + 0.001
        for t, message in messages:
            self._ports.send(message, at=t0 + t)
        return t0

    def send(self, message: Sequence[int], at: float | None = None) -> None:
        """Send one message at monotonic time ``at`` (None = as soon as possible)."""
        self._ports.send(message, at)

    def received(self) -> list[ReceivedMessage]:
        """A copy of everything received so far, in arrival order."""
        with self._cond:
            return list(self._received)

    def clear(self) -> None:
        """Forget received messages."""
        with self._cond:
            self._received.clear()

    def wait_for(self, predicate: Callable[[list[ReceivedMessage]], bool], timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until ``predicate(received)`` is true; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._received):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def _record(self, message: list, frame: int, time_s: float) -> None:
        item = ReceivedMessage(message, frame, frame / self._ports.samplerate, time_s)
        with self._cond:
            self._received.append(item)
            self._cond.notify_all()

    def close(self) -> None:
        """Close the peer's JACK client. Safe to call twice."""
        self._ports.close()

    def __enter__(self) -> "MidiPeer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m daemon.midi_peer --name NAME --listen riffd:out``: a peer in its own process
    that prints every received message as a JSON line ``{"message": [...], "frame": F,
    "seconds": S}`` (for tests that must not share a Python interpreter with riffd)."""
    import argparse
    import json
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m daemon.midi_peer", description=main.__doc__)
    parser.add_argument("--name", default="riffd-peer", help="JACK client name of the peer")
    parser.add_argument("--listen", default=None,
                        help="output port to connect to the peer's input, e.g. riffd:out")
    args = parser.parse_args(argv)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    lock = threading.Lock()

    def emit(message: list, frame: int, _time_s: float) -> None:
        line = json.dumps({"message": message, "frame": frame})
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    ports = _PeerPorts(emit)
    ports.open(args.name, out_name="out", in_name="in")
    try:
        if args.listen:
            ports._client.connect(args.listen, ports.in_port_name)
        sys.stdout.write(json.dumps({"ready": ports.in_port_name}) + "\n")
        sys.stdout.flush()
        done.wait()
    finally:
        ports.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
