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

from riffd.daemon.midi_ports import JackMidiPorts, MidiPortError


@dataclass(frozen=True)
class ReceivedMessage:
    """One message seen by the peer.

    Attributes:
        message: the MIDI bytes as ints.
        frame: absolute JACK frame time (frames since the server started).
        seconds: ``frame / samplerate`` in seconds on the server's frame clock.
        monotonic: approximate ``time.monotonic()`` time the message stands for (see
            :class:`~riffd.daemon.midi_ports.JackMidiPorts` for the mapping).
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
    def missed_cycles(self) -> int:
        """JACK cycles the peer's client was not run for (its input in them is lost)."""
        return self._ports.missed_cycles

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


class PeerProcess:
    """A peer in a process of its own (``python -m riffd.daemon.midi_peer``): its JACK callback never
    waits for this interpreter's GIL, as a synth or a DAW would not. It keeps its input
    connected to ``listen`` (re-connecting whenever that port appears again, e.g. after riffd
    restarted) and reports every message it receives.

    Args:
        client_name: JACK client name of the peer.
        listen: output port to follow, e.g. ``riffd:out``.
        env: extra environment (``JACK_DEFAULT_SERVER``).
    """

    def __init__(self, client_name: str, listen: str, env: dict[str, str] | None = None,
                 timeout_s: float = 10.0) -> None:
        import json
        import os
        import subprocess
        import sys
        self._json = json
        self._received: list[ReceivedMessage] = []
        self.connections = 0
        self._cond = threading.Condition()
        self.proc = subprocess.Popen([sys.executable, "-m", "riffd.daemon.midi_peer", "--name",
                                      client_name, "--listen", listen],
                                     stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout_s)
            raise MidiPortError(f"peer {client_name!r} did not start (exit status "
                                f"{self.proc.returncode}); is the JACK server running?")
        self.samplerate = json.loads(line)["rate"]
        self._reader = threading.Thread(target=self._read, name=f"{client_name}-reader",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            item = self._json.loads(line)
            with self._cond:
                if "connected" in item:
                    self.connections += 1
                else:
                    frame = item["frame"]
                    self._received.append(ReceivedMessage(item["message"], frame,
                                                          frame / self.samplerate, item["time"]))
                self._cond.notify_all()

    def received(self) -> list[ReceivedMessage]:
        """A copy of everything received so far, in arrival order."""
        with self._cond:
            return list(self._received)

    def wait_for(self, predicate: Callable[[list[ReceivedMessage]], bool],
                 timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until ``predicate(received)`` is true; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._received):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
            return True

    def close(self) -> None:
        """Stop the peer process (its JACK client closes). Safe to call twice."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)

    def __enter__(self) -> "PeerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m riffd.daemon.midi_peer --name NAME --listen riffd:out``: a peer in its own process
    that keeps its input connected to the ``--listen`` port (connecting again whenever it
    re-appears) and prints JSON lines: first ``{"ready": port, "rate": Hz}``, then
    ``{"connected": port}`` at each connection and ``{"message": [...], "frame": F,
    "time": monotonic seconds}`` for every message received. SIGTERM ends it."""
    import argparse
    import json
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m riffd.daemon.midi_peer", description=main.__doc__)
    parser.add_argument("--name", default="riffd-peer", help="JACK client name of the peer")
    parser.add_argument("--listen", default=None,
                        help="output port to keep connected to the peer's input, e.g. riffd:out")
    args = parser.parse_args(argv)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    lock = threading.Lock()

    def emit(item: dict) -> None:
        with lock:
            sys.stdout.write(json.dumps(item) + "\n")
            sys.stdout.flush()

    ports = _PeerPorts(lambda message, frame, time_s: emit(
        {"message": message, "frame": frame, "time": time_s}))
    ports.open(args.name, out_name="out", in_name="in")
    try:
        emit({"ready": ports.in_port_name, "rate": ports.samplerate})
        connected = False
        while not done.wait(0.05):
            if not args.listen or not ports.alive:
                continue
            client = ports._client
            try:
                now = args.listen in [p.name for p in
                                      client.get_all_connections(ports.in_port_name)]
                if not now:
                    client.connect(args.listen, ports.in_port_name)
                    now = True
            except Exception:           # the port is not there (yet)
                now = False
            if now and not connected:
                emit({"connected": args.listen})
            connected = now
    finally:
        ports.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
