"""Start and stop a private JACK server (dummy driver) for tests, demos and benchmarks.

The dummy driver needs no sound hardware: it runs the JACK graph on a timer, so MIDI and audio
between JACK clients are paced in real time (one process cycle every ``period / rate`` seconds).
A server started with ``-n NAME`` is reached only by clients whose environment has
``JACK_DEFAULT_SERVER=NAME``; :attr:`JackServer.env` carries that setting.

Realtime: when the process may use realtime scheduling (root, or ``RLIMIT_RTPRIO`` > 0) jackd
runs with ``-R -P 70`` (its process thread and its clients' process threads SCHED_FIFO 70, as
on a musician's tuned Linux box), else with ``--no-realtime``.

Stale servers: a server killed without a clean exit leaves its slot in JACK's shared-memory
registry (8 slots; the 9th server is refused with "Too many servers already active"), its
sockets and semaphores in ``/dev/shm``, and, when the test process that made it died, a running
``jackd``. :func:`clean_stale_servers` removes what belongs to servers of riffd's naming scheme
(``riffd-<tag>-<owner pid>...``); :meth:`JackServer.start` runs it before starting and once
more when jackd reports the registry full.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "install JACK: `apt-get install jackd2` on Debian/Ubuntu, `brew install jack` on macOS"


REALTIME_PRIORITY = 70           # jackd -P: SCHED_FIFO priority of JACK's process threads
SHM_DIR = Path("/dev/shm")
REGISTRY = SHM_DIR / "jack-shm-registry"
TOO_MANY_SERVERS = "Too many servers already active"
# riffd's private servers: riffd-<tag>-<pid of the process that owns it>[-<anything>]
OUR_NAME = re.compile(r"^riffd-[A-Za-z]+-(\d+)(?:-[A-Za-z0-9.-]*)?$")
# /dev/shm files of a server: jack_<server>_<n>_<n> sockets, jack_sem.<uid>_<server>_<client>
_SERVER_FILE = re.compile(r"^jack_(?:sem\.\d+_)?(riffd-[A-Za-z0-9.-]+)_")

# Layout of JACK2's registry segment (common/shm.h, 1.9.x): a header with MAX_SERVERS server
# slots {pid_t pid; char name[257]} (264 bytes with padding) after 24 bytes of magic, protocol,
# type, size, hdr_len, entry_len; then segment entries {int16 index (4 with padding); pid_t
# allocator; int32 size; char id[256]} of entry_len bytes from hdr_len on.
_MAGIC = b"KCAJ"
_SERVERS_AT, _SERVER_LEN, _MAX_SERVERS = 24, 264, 8


class JackUnavailable(RuntimeError):
    """jackd is not installed or the server did not come up."""


def realtime_permitted() -> bool:
    """True when this process may ask for SCHED_FIFO: root, or an RLIMIT_RTPRIO above 0."""
    if os.name != "posix":
        return False
    if os.geteuid() == 0:
        return True
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_RTPRIO)
    except (AttributeError, ValueError, OSError):
        return False
    return soft == resource.RLIM_INFINITY or soft > 0


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True               # someone else's live process
    try:                          # a killed process its parent has not reaped yet is dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _jackd_processes() -> list[tuple[int, str]]:
    """(pid, server name) of every running ``jackd -n NAME`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0] or os.path.basename(argv[0]) not in (b"jackd", b"jackdmp"):
            continue
        args = [a.decode(errors="replace") for a in argv]
        for flag, value in zip(args, args[1:]):
            if flag in ("-n", "--name"):
                found.append((int(entry.name), value))
    return found


def _owner_gone(name: str) -> bool:
    match = OUR_NAME.match(name)
    return match is not None and not _pid_alive(int(match.group(1)))


def registered_servers(registry: Path = REGISTRY) -> list[tuple[int, str]]:
    """(jackd pid, server name) of every slot in use in JACK's registry, dead or alive."""
    try:
        data = registry.read_bytes()
    except OSError:
        return []
    if data[:4] != _MAGIC:
        return []
    found = []
    for slot in range(_MAX_SERVERS):
        at = _SERVERS_AT + slot * _SERVER_LEN
        pid = int.from_bytes(data[at:at + 4], "little", signed=True)
        if pid:
            raw = data[at + 4:at + _SERVER_LEN].split(b"\0")[0].decode(errors="replace")
            found.append((pid, re.sub(r"^jack-\d+:", "", raw).rstrip(":")))
    return found


def clean_stale_servers(registry: Path = REGISTRY, shm_dir: Path = SHM_DIR) -> list[str]:
    """Remove what dead riffd JACK servers left behind; return what was done, one line each.

    - ``jackd -n riffd-<tag>-<pid>`` processes whose owning process ``<pid>`` is gone: killed
      (SIGKILL to that jackd's pid only);
    - registry slots of riffd-named servers whose jackd is gone: cleared, with the shared
      memory segments that jackd allocated and its ``/dev/shm/jack_<name>_*`` sockets and
      ``jack_sem.*_<name>_*`` semaphores.

    Servers of other names, and live servers, are never touched.
    """
    done = []
    killed = []
    gone_names = set()
    for pid, name in _jackd_processes():
        if _owner_gone(name):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                gone_names.add(name)
                done.append(f"killed jackd {pid} ({name}): its owner process is gone")
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 2.0
    while any(map(_pid_alive, killed)) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        with open(registry, "r+b") as f:
            data = bytearray(f.read())
            if data[:4] == _MAGIC and len(data) >= _SERVERS_AT + _MAX_SERVERS * _SERVER_LEN:
                hdr_len, entry_len = (int.from_bytes(data[16:20], "little"),
                                      int.from_bytes(data[20:24], "little"))
                dead_pids = set()
                for slot in range(_MAX_SERVERS):
                    at = _SERVERS_AT + slot * _SERVER_LEN
                    pid = int.from_bytes(data[at:at + 4], "little", signed=True)
                    raw = bytes(data[at + 4:at + _SERVER_LEN]).split(b"\0")[0].decode(errors="replace")
                    name = re.sub(r"^jack-\d+:", "", raw).rstrip(":")
                    if pid == 0 or not OUR_NAME.match(name) or _pid_alive(pid):
                        continue
                    data[at:at + _SERVER_LEN] = bytes(_SERVER_LEN)
                    dead_pids.add(pid)
                    gone_names.add(name)
                    done.append(f"cleared registry slot {slot} of dead server {name} (pid {pid})")
                if entry_len >= 12:
                    for at in range(hdr_len, len(data) - entry_len + 1, entry_len):
                        allocator = int.from_bytes(data[at + 4:at + 8], "little", signed=True)
                        if allocator not in dead_pids:
                            continue
                        seg = bytes(data[at + 12:at + entry_len]).split(b"\0")[0].decode(errors="replace")
                        if seg.startswith("/") and "/" not in seg[1:]:
                            try:
                                (shm_dir / seg[1:]).unlink()
                            except OSError:
                                pass
                        index = data[at:at + 2]
                        data[at:at + entry_len] = bytes(entry_len)
                        data[at:at + 2] = index       # JACK keeps each entry's own index
                if dead_pids:
                    f.seek(0)
                    f.write(data)
    except FileNotFoundError:
        pass
    except OSError as exc:
        done.append(f"could not read JACK's registry {registry}: {exc}")
    # sockets and semaphores of riffd-named servers that no longer run (a server that exits
    # while clients are still connected leaves their semaphores behind, even when it exits
    # cleanly)
    live = {name for pid, name in registered_servers(registry) if _pid_alive(pid)}
    live |= {name for _pid, name in _jackd_processes()}
    for path in sorted(shm_dir.glob("jack_*")):
        match = _SERVER_FILE.match(path.name)
        if match is None or not OUR_NAME.match(match.group(1)) or match.group(1) in live:
            continue
        try:
            path.unlink()
            done.append(f"removed {path}")
        except OSError:
            pass
    # the logs JackServer made for them in the temporary folder (jackd-<name>-*.log)
    for name in sorted(gone_names - live):
        for path in sorted(Path(tempfile.gettempdir()).glob(f"jackd-{name}-*.log")):
            try:
                path.unlink()
                done.append(f"removed {path}")
            except OSError:
                pass
    return done


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
        realtime: ``None`` = realtime (``-R -P 70``) when permitted (:func:`realtime_permitted`),
            True = always ask for it, False = ``--no-realtime``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, name: str, rate: int = 48000, period: int = 256,
                 log_path: str | None = None, realtime: bool | None = None) -> None:
        self.name = name
        self.realtime = realtime_permitted() if realtime is None else realtime
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

    @property
    def command(self) -> list[str]:
        """The jackd command line (without the path of jackd)."""
        mode = ["-R", "-P", str(REALTIME_PRIORITY)] if self.realtime else ["--no-realtime"]
        return ["jackd", "-n", self.name, *mode, "-d", "dummy",
                "-r", str(self.rate), "-p", str(self.period)]

    def start(self, timeout: float = 5.0) -> "JackServer":
        """Start jackd and wait (up to ``timeout`` seconds) until ``jack_lsp`` answers.

        Stale riffd servers are cleaned up first (:func:`clean_stale_servers`); when jackd
        still says its registry is full, they are cleaned once more and jackd retried once.
        """
        clean_stale_servers()
        try:
            return self._start(timeout)
        except JackUnavailable as exc:
            if TOO_MANY_SERVERS not in str(exc):
                raise
            clean_stale_servers()
            return self._start(timeout)

    def _start(self, timeout: float) -> "JackServer":
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
        cmd = [jackd, *self.command[1:]]
        # Own session/process group: stop() can signal jackd and anything it forked,
        # and a Ctrl-C in the terminal does not hit it before our clients close.
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._cleanup()
                reason = self._log_text()
                if TOO_MANY_SERVERS in reason:
                    raise JackUnavailable(f"jackd exited at start-up: {TOO_MANY_SERVERS} "
                                          "(8 JACK servers are registered; stop some, or "
                                          f"remove stale ones from {REGISTRY}); see "
                                          f"{self.log_path}")
                raise JackUnavailable(f"jackd exited at start-up; see {self.log_path}")
            if jack_server_running(self.env, timeout=max(0.1, deadline - time.monotonic())):
                return self
            time.sleep(0.02)
        self._own_log = False  # keep the log for the error message
        self.stop()
        raise JackUnavailable(f"jackd did not answer within {timeout} s; see {self.log_path}")

    def stop(self, timeout: float = 3.0) -> None:
        """Terminate jackd's process group; kill it after ``timeout`` seconds; remove the log
        this object made (a log path given by the caller stays). Safe to repeat."""
        proc = self._proc
        if proc is None:
            self._remove_own_log()
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
        self._remove_own_log()

    def _remove_own_log(self) -> None:
        if self._own_log and self.log_path is not None:
            try:
                os.remove(self.log_path)
            except OSError:
                pass
            self.log_path = None
            self._own_log = False

    def kill(self) -> None:
        """SIGKILL jackd (no clean exit: its registry slot and /dev/shm files stay behind, as
        after a crash); for tests of what riffd does when the server dies."""
        proc = self._proc
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
        self._cleanup()
        clean_stale_servers()

    def _log_text(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

    def _cleanup(self) -> None:
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "JackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
