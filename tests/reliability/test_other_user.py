"""Another local user (uid 65534, `nobody`) gets nothing from a riffd it does not own.

Two real daemons run as the test's user (root): one on the default endpoints (ipc sockets in
$XDG_RUNTIME_DIR/riffd; the runtime folder above it is left world-readable, so the only barrier
is the 0700 folder riffd makes), one on loopback tcp with CURVE. While both play, a second
process runs as uid 65534 (setpriv) on Debian's /usr/bin/python3 with python3-zmq (the project's
.venv lives in root's 0700 home) and tries: connect(2) to the ipc sockets, list their folder,
`shutdown` and `record path=...` over ipc and over tcp without keys and with a key of its own,
and subscribing to both event sockets. Every attempt must get nothing; the daemons must still
run, play and obey their owner. The attempts and outcomes are printed (run with -s to see them).
"""
import errno
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import zmq

from riffd.daemon import auth
from riffd.daemon.process import DaemonProcess, free_tcp_port
from riffd.daemon.protocol import encode_request

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
NOBODY_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
PROBE = Path(__file__).with_name("other_user_probe.py")
FAST = ["--midi-api", "jack", "--tempo", "240", "--length", "2", "--log-level", "WARNING"]
WAIT_S = 2.0      # how long each request waits for a reply, seconds
LISTEN_S = 3.0    # how long each subscription listens while notes play, seconds


def as_nobody(*argv, timeout=60):
    return subprocess.run([*AS_NOBODY, *argv], env=NOBODY_ENV, cwd="/", capture_output=True,
                          text=True, timeout=timeout)


def require_second_user_python():
    """Fail (never skip) with the fix when the second user's python or its zmq is missing."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv is missing (util-linux): it runs the second user's process")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.fail(f"{SYSTEM_PYTHON} is missing: the second user (uid {NOBODY}) cannot run the "
                    f"project's .venv; install Debian's python3 (make system-deps)")
    done = as_nobody(SYSTEM_PYTHON, "-c", "import zmq; assert zmq.has('curve')")
    if done.returncode != 0:
        pytest.fail(f"{SYSTEM_PYTHON} cannot import zmq with CURVE as uid {NOBODY}: "
                    f"{done.stderr.strip()[-300:]}; install it: apt-get install python3-zmq "
                    f"(make system-deps does)")


def world_readable_dir(prefix: str, mode: int = 0o755) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, mode)
    return path


class NoteCounter:
    """Counts the owner's note_on events on ``endpoint`` on a thread, until ``stop``."""

    def __init__(self, endpoint: str, keys: auth.ClientKeys | None = None):
        self.count = 0
        self._stop = threading.Event()
        self._sock = zmq.Context.instance().socket(zmq.SUB)
        self._sock.linger = 0
        auth.secure_client_socket(self._sock, endpoint, keys)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"note_on")
        self._sock.connect(endpoint)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            if self._sock.poll(100):
                self._sock.recv_multipart()
                self.count += 1

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
        return self.count


@pytest.fixture(scope="module")
def setting(jack_server, tmp_path_factory):
    require_second_user_python()
    root = tmp_path_factory.mktemp("other-user")
    config = root / "config"
    runtime = world_readable_dir("riffd-xdg-")      # like a runtime folder others can look into
    probe_dir = world_readable_dir("riffd-probe-")  # the probe and its plan, readable by nobody
    loot = world_readable_dir("riffd-loot-", 0o777)  # where nobody asks riffd to record
    keys = auth.client_keys(config / "riffd")       # the owner's keys (made on first use)
    tcp_port, events_port = free_tcp_port(), free_tcp_port()
    env = {"XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(config)}
    local = DaemonProcess(FAST + ["--client-name", "riffd-own-ipc", "--record-dir",
                                  str(root / "rec-ipc")],
                          env=env, log_path=root / "ipc.log", control="", events="")
    tcp = DaemonProcess(FAST + ["--client-name", "riffd-own-tcp", "--record-dir",
                                str(root / "rec-tcp")],
                        env=env, log_path=root / "tcp.log", keys=keys,
                        control=f"tcp://127.0.0.1:{tcp_port}",
                        events=f"tcp://127.0.0.1:{events_port}")
    previous = os.umask(0)   # the daemons make world-writable sockets: only riffd's folder
    try:                     # (and CURVE) may keep the other user out
        local.start()
        tcp.start()
        os.umask(previous)
        yield {"root": root, "runtime": runtime, "probe_dir": probe_dir, "loot": loot,
               "keys": keys, "local": local, "tcp": tcp}
    finally:
        os.umask(previous)
        codes = []
        for daemon in (local, tcp):
            if daemon.proc is not None:
                codes.append(daemon.shutdown())
                daemon.kill()
        for path in (runtime, probe_dir, loot):
            shutil.rmtree(path, ignore_errors=True)
    assert codes == [0, 0], ((root / "ipc.log").read_text(), (root / "tcp.log").read_text())


def test_the_default_socket_folder_is_private(setting):
    folder = setting["runtime"] / "riffd"
    assert setting["local"].control == f"ipc://{folder / 'control'}"
    st = os.stat(folder)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(setting["runtime"]).st_mode) == 0o755   # others see in, no further
    # the sockets themselves are open to all (umask 0): the folder alone keeps others out
    assert stat.S_IMODE(os.stat(folder / "control").st_mode) == 0o777


def test_another_user_gets_nothing_and_the_owner_keeps_control(setting):
    local, tcp, loot = setting["local"], setting["tcp"], setting["loot"]
    stolen = {"abs": loot / "stolen.mid", "rel": "stolen.mid"}
    plan = {
        "ipc_dir": str(setting["runtime"] / "riffd"),
        "ipc_control": local.control, "ipc_events": local.events,
        "tcp_control": tcp.control, "tcp_events": tcp.events,
        "tcp_server_key": setting["keys"].server_public.decode(),
        "requests": {
            "shutdown": encode_request("shutdown", id=1).decode(),
            f"record path={stolen['abs']}": encode_request(
                "record", {"action": "start", "path": str(stolen["abs"])}, id=2).decode(),
            "record path=stolen.mid": encode_request(
                "record", {"action": "start", "path": stolen["rel"]}, id=3).decode(),
        },
        "wait_s": WAIT_S, "listen_s": LISTEN_S,
    }
    probe = setting["probe_dir"] / PROBE.name
    shutil.copyfile(PROBE, probe)
    os.chmod(probe, 0o644)
    plan_file = setting["probe_dir"] / "plan.json"
    plan_file.write_text(json.dumps(plan))
    os.chmod(plan_file, 0o644)

    with local.client() as owner_ipc, tcp.client() as owner_tcp:
        owner_ipc.start()
        owner_tcp.start()
        heard = [NoteCounter(local.events), NoteCounter(tcp.events, setting["keys"])]
        try:
            done = as_nobody(SYSTEM_PYTHON, str(probe), str(plan_file))
        finally:
            heard = [counter.stop() for counter in heard]
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        print(f"\nattempts by uid {report['uid']} (its own CURVE key {report['key']}) while the "
              f"owner's daemons played ({heard[0]} and {heard[1]} notes heard by the owner):")
        for a in report["attempts"]:
            print(f"  {a['attempt']:<62} -> {a['outcome']}")

        # the other user was who we think, and got nothing at all
        assert report["uid"] == report["euid"] == NOBODY
        assert len(report["attempts"]) == 3 + 3 * 3 + 3
        breaches = [a for a in report["attempts"] if a["got"]]
        assert breaches == []
        for a in report["attempts"]:
            if a["attempt"].startswith(("connect(2)", "list")):
                assert f"errno {errno.EACCES}" in a["outcome"], a
        # ... while there was something to get: the owner heard notes on both daemons
        assert heard[0] > 0 and heard[1] > 0
        # the daemons still run and obey their owner
        assert local.proc.poll() is None and tcp.proc.poll() is None
        for owner in (owner_ipc, owner_tcp):
            assert owner.ping()["pong"] is True
            status = owner.status()
            assert status["playing"] is True and status["recording"]["on"] is False
            owner.stop()
    assert not stolen["abs"].exists() and os.listdir(loot) == []
    for name in ("rec-ipc", "rec-tcp"):
        assert not (setting["root"] / name / stolen["rel"]).exists()
    # the tcp daemon saw the stranger's key and said so, once
    log = (setting["root"] / "tcp.log").read_text()
    assert log.count(f"refused a client with key {report['key']}") == 1


def test_a_socket_folder_planted_by_another_user_is_refused(setting):
    base = world_readable_dir("riffd-sticky-", 0o1777)    # like /tmp
    try:
        planted = as_nobody("/bin/mkdir", "-m", "0777", str(base / "riffd"))
        assert planted.returncode == 0, planted.stderr
        assert os.stat(base / "riffd").st_uid == NOBODY
        env = {**os.environ, "XDG_RUNTIME_DIR": str(base)}
        for argv in (["serve", "--midi-api", "jack"], ["ctl", "ping", "--timeout", "0.5"]):
            done = subprocess.run([sys.executable, "-m", "riffd.daemon", *argv], env=env,
                                  capture_output=True, text=True, timeout=60)
            print(f"riffd {' '.join(argv)} with {base}/riffd made by uid {NOBODY}: exit "
                  f"{done.returncode}: {done.stderr.strip()}")
            assert done.returncode != 0
            assert f"{base / 'riffd'} belongs to another user (uid {NOBODY})" in done.stderr
        assert os.listdir(base / "riffd") == []          # no socket was made in it
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_an_open_socket_folder_is_refused_with_the_fix(tmp_path, monkeypatch):
    base = tmp_path / "run"
    (base / "riffd").mkdir(parents=True)
    os.chmod(base / "riffd", 0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    with pytest.raises(auth.SecurityError) as err:
        auth.runtime_dir()
    assert f"chmod 700 {base / 'riffd'}" in str(err.value)
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert auth.runtime_dir() == Path(f"/tmp/riffd-{os.geteuid()}")    # the fallback


def test_a_second_daemon_on_the_same_ipc_socket_is_refused(setting):
    local = setting["local"]
    env = {**os.environ, "XDG_RUNTIME_DIR": str(setting["runtime"]),
           "XDG_CONFIG_HOME": str(setting["root"] / "config")}
    done = subprocess.run([sys.executable, "-m", "riffd.daemon", "serve", "--midi-api", "jack",
                           "--client-name", "riffd-second", "--log-level", "WARNING"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "another riffd is answering there" in done.stderr
    with local.client() as owner:                  # the first one kept its socket
        assert owner.ping()["pong"] is True
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(local.control.partition("://")[2])
