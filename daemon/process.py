"""Running ``riffd serve`` as a child process (the demo, tests and benchmarks use it)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from daemon.client import RiffdClient, RiffdUnavailable


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaemonProcess:
    """``python -m daemon serve ARGS`` on private loopback control/event ports.

    ``start()`` returns once the daemon answers ``ping`` (model loaded, ports open).
    """

    def __init__(self, serve_args: list[str] | None = None, env: dict[str, str] | None = None,
                 log_path: str | Path | None = None):
        self.control = f"tcp://127.0.0.1:{free_tcp_port()}"
        self.events = f"tcp://127.0.0.1:{free_tcp_port()}"
        self.serve_args = list(serve_args or [])
        self.env = {**os.environ, **(env or {})}
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout_s: float = 60.0) -> "DaemonProcess":
        command = [sys.executable, "-m", "daemon", "serve", "--control", self.control,
                   "--events", self.events, *self.serve_args]
        self._log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(command, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT if self.log_path else None)
        deadline = time.monotonic() + timeout_s
        with self.client(timeout_s=0.5) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"riffd serve exited with status {self.proc.returncode} "
                                       f"before it was ready{self._log_hint()}")
                try:
                    client.ping()
                    return self
                except RiffdUnavailable:
                    if time.monotonic() > deadline:
                        self.kill()
                        raise RuntimeError(f"riffd serve did not answer within {timeout_s} s"
                                           f"{self._log_hint()}") from None

    def client(self, timeout_s: float = 5.0) -> RiffdClient:
        return RiffdClient(self.control, timeout_s=timeout_s)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float = 15.0) -> int:
        """Wait for the process to end; returns its exit status."""
        try:
            return self.proc.wait(timeout_s)
        finally:
            if self._log not in (None, subprocess.DEVNULL):
                self._log.close()

    def shutdown(self, timeout_s: float = 15.0) -> int:
        """Ask the daemon to stop over the control socket; returns its exit status."""
        if self.proc.poll() is None:
            try:
                with self.client() as client:
                    client.shutdown()
            except RiffdUnavailable:
                self.signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def _log_hint(self) -> str:
        return f"; see {self.log_path}" if self.log_path else ""

    def __enter__(self) -> "DaemonProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.shutdown()
        finally:
            self.kill()
