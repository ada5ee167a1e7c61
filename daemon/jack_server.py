"""Start and stop a private JACK server (dummy driver) for tests, demos and benchmarks.

The dummy driver needs no sound hardware: it runs the JACK graph on a timer, so MIDI and audio
between JACK clients are paced in real time (one process cycle every ``period / rate`` seconds).
A server started with ``-n NAME`` is reached only by clients whose environment has
``JACK_DEFAULT_SERVER=NAME``; :attr:`JackServer.env` carries that setting.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

INSTALL_HINT = "install JACK: `apt-get install jackd2` on Debian/Ubuntu, `brew install jack` on macOS"


class JackUnavailable(RuntimeError):
    """jackd is not installed or the server did not come up."""


def period_seconds(period: int, rate: int) -> float:
    """Length of one JACK process cycle in seconds (``period`` frames at ``rate`` Hz)."""
    return period / rate


def jack_server_running(env: dict[str, str] | None = None, timeout: float = 1.0) -> bool:
    """True when a JACK server answers ``jack_lsp`` within ``timeout`` seconds.

    ``env`` is merged over ``os.environ`` (pass ``{"JACK_DEFAULT_SERVER": name}`` to probe a
    named server).
    """
    if shutil.which("jack_lsp") is None:
        return False
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        done = subprocess.run(
            ["jack_lsp"], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


class JackServer:
    """A ``jackd`` process with the dummy driver, named ``name``.

    Args:
        name: server name (``jackd -n NAME``); clients reach it with ``JACK_DEFAULT_SERVER=NAME``.
        rate: sample rate in Hz.
        period: frames per process cycle (cycle length = period / rate seconds).
        log_path: where jackd's stdout/stderr go; when None, a temporary file that a clean
            :meth:`stop` deletes (a failed start keeps it and names it in the error).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, name: str, rate: int = 48000, period: int = 256,
                 log_path: str | None = None) -> None:
        self.name = name
        self.rate = rate
        self.period = period
        self.log_path = log_path
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._own_log = False

    @property
    def env(self) -> dict[str, str]:
        """Environment entries that point JACK clients at this server."""
        return {"JACK_DEFAULT_SERVER": self.name}

    @property
    def period_s(self) -> float:
        """One process cycle in seconds."""
        return period_seconds(self.period, self.rate)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self, timeout: float = 5.0) -> "JackServer":
        """Start jackd and wait (up to ``timeout`` seconds) until ``jack_lsp`` answers."""
        if self._proc is not None:
            return self
        jackd = shutil.which("jackd")
        if jackd is None:
            raise JackUnavailable(f"jackd not found on PATH; {INSTALL_HINT}")
        if shutil.which("jack_lsp") is None:
            raise JackUnavailable(f"jack_lsp not found on PATH; {INSTALL_HINT}")
        if jack_server_running(self.env):
            raise JackUnavailable(f"a JACK server named {self.name!r} is already running")
        if self.log_path is None:
            fd, self.log_path = tempfile.mkstemp(prefix=f"jackd-{self.name}-", suffix=".log")
            os.close(fd)
            self._own_log = True
        self._log = open(self.log_path, "ab")
        cmd = [jackd, "-n", self.name, "--no-realtime", "-d", "dummy",
               "-r", str(self.rate), "-p", str(self.period)]
        # Own session/process group: stop() can signal jackd and anything it forked,
        # and a Ctrl-C in the terminal does not hit it before our clients close.
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._cleanup()
                raise JackUnavailable(f"jackd exited at start-up; see {self.log_path}")
            if jack_server_running(self.env, timeout=max(0.1, deadline - time.monotonic())):
                return self
            time.sleep(0.02)
        self._own_log = False  # keep the log for the error message
        self.stop()
        raise JackUnavailable(f"jackd did not answer within {timeout} s; see {self.log_path}")

    def stop(self, timeout: float = 3.0) -> None:
        """Terminate jackd's process group; kill it after ``timeout`` seconds. Safe to repeat."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(timeout)
        finally:
            self._cleanup()
        if self._own_log and self.log_path is not None:
            try:
                os.remove(self.log_path)
            except OSError:
                pass
            self.log_path = None
            self._own_log = False

    def _cleanup(self) -> None:
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "JackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
