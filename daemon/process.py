"""Running ``riffd serve`` as a child process (the demo, tests and benchmarks use it)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from riffd.daemon.auth import ClientKeys, default_endpoint
from riffd.daemon.client import RiffdClient, RiffdUnavailable


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaemonStuck(RuntimeError):
    """The daemon did not exit in time; the message holds its threads' stacks."""


class DaemonProcess:
    """``python -m riffd.daemon serve ARGS`` on control/event ipc sockets in a private folder of its
    own (mode 0700, removed when the process has ended).

    ``start()`` returns once the daemon answers ``ping`` (model loaded, ports open).
    ``control`` / ``events`` choose other endpoints (e.g. tcp ones, reached with ``keys``);
    ``""`` leaves that option out, so the daemon takes its default (found through ``env``).
    """

    def __init__(self, serve_args: list[str] | None = None, env: dict[str, str] | None = None,
                 log_path: str | Path | None = None, control: str | None = None,
                 events: str | None = None, keys: ClientKeys | None = None):
        self.serve_args = list(serve_args or [])
        self.env = {**os.environ, **(env or {})}
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="riffd-run-"))   # created 0700
        self._endpoint_args: list[str] = []
        for option, kind, given in (("--control", "control", control),
                                    ("--events", "events", events)):
            if given == "":
                endpoint = default_endpoint(kind, self.env)
            else:
                endpoint = given or f"ipc://{self.runtime_dir / kind}"
                self._endpoint_args += [option, endpoint]
            setattr(self, kind, endpoint)
        self.keys = keys
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout_s: float = 60.0) -> "DaemonProcess":
        command = [sys.executable, "-m", "riffd.daemon", "serve", *self._endpoint_args,
                   *self.serve_args]
        self._log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(command, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT if self.log_path else None)
        deadline = time.monotonic() + timeout_s
        with self.client(timeout_s=0.5) as client:
            while True:
                if self.proc.poll() is not None:
                    self._remove_runtime_dir()
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
        return RiffdClient(self.control, timeout_s=timeout_s, keys=self.keys)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float = 15.0) -> int:
        """Wait for the process to end; returns its exit status. A daemon still running after
        ``timeout_s`` seconds is asked for its threads' stacks (SIGUSR1: Python's faulthandler,
        written to its log) before the error is raised."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired as exc:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(1.0)
            stacks = ""
            if self.log_path is not None and self._log not in (None, subprocess.DEVNULL):
                self._log.flush()
                stacks = "\n" + self.log_path.read_text(errors="replace")[-8000:]
            raise DaemonStuck(f"riffd did not exit within {timeout_s:g} s; the end of its log "
                              f"({self.log_path}), its threads' stacks last:{stacks}") from exc
        finally:
            if self._log not in (None, subprocess.DEVNULL):
                self._log.close()
            self._remove_runtime_dir()

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
        self._remove_runtime_dir()

    def _remove_runtime_dir(self) -> None:
        if self.proc is None or self.proc.poll() is not None:   # never under a live daemon
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

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
