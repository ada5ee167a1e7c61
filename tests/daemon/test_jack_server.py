"""JackServer: starts a real jackd (dummy driver), reports it, stops it."""

import os

import pytest

from riffd.daemon.jack_server import JackServer, JackUnavailable, jack_server_running, period_seconds


def test_start_answer_stop():
    server = JackServer(f"riffd-js-{os.getpid()}", period=128)
    assert not jack_server_running(server.env)
    with server:
        assert server.env == {"JACK_DEFAULT_SERVER": server.name}
        assert jack_server_running(server.env)
        assert server.pid is not None
    assert server.pid is None
    assert not jack_server_running(server.env)
    server.stop()  # second stop is harmless


def test_period_seconds():
    assert period_seconds(256, 48000) == pytest.approx(0.0053333, rel=1e-4)
    assert JackServer("x", rate=44100, period=64).period_s == pytest.approx(64 / 44100)


def test_missing_jackd_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JackUnavailable, match="apt-get install jackd2"):
        JackServer("riffd-nowhere").start()


def test_session_fixture_points_clients_at_its_server(jack_server):
    assert os.environ["JACK_DEFAULT_SERVER"] == jack_server.name
    assert jack_server_running()


def test_same_name_twice_is_refused(jack_server):
    with pytest.raises(JackUnavailable, match="already running"):
        JackServer(jack_server.name).start()


def test_realtime_is_asked_for_when_permitted():
    from riffd.daemon.jack_server import realtime_permitted
    server = JackServer("x")
    assert server.realtime == realtime_permitted()
    assert ("-R" in server.command) == server.realtime
    assert "--no-realtime" in JackServer("x", realtime=False).command
    assert JackServer("x", realtime=True).command[3:5] == ["-R", "-P"]


OWNER = """
import os, sys, time
from riffd.daemon.jack_server import JackServer
server = JackServer(f"riffd-orphan-{os.getpid()}", realtime=False)
server.start()
print(server.name, server.pid, flush=True)
time.sleep(60)
"""


def test_stale_servers_are_cleaned_up():
    """A test process that dies leaves its jackd running; a jackd that is SIGKILLed leaves its
    registry slot and /dev/shm files: clean_stale_servers removes both, and nothing else."""
    import pathlib
    import signal
    import subprocess
    import sys
    import time

    from riffd.daemon.jack_server import SHM_DIR, clean_stale_servers, registered_servers
    killed = JackServer(f"riffd-killed-{os.getpid()}", realtime=False)
    bystander = JackServer(f"riffd-bystander-{os.getpid()}", realtime=False)
    owner = None
    orphan_pid = None
    try:
        killed.start()
        bystander.start()
        owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE,
                                 text=True, cwd=pathlib.Path(__file__).resolve().parents[2])
        orphan_name, orphan_pid = owner.stdout.readline().split()
        orphan_pid = int(orphan_pid)
        owner.kill()                      # the owning "test process" dies; its jackd lives on
        owner.wait(5)
        assert jack_server_running({"JACK_DEFAULT_SERVER": orphan_name})
        killed_pid = killed.pid
        os.killpg(killed_pid, signal.SIGKILL)     # no clean exit
        killed._proc.wait(5)
        killed._cleanup()
        assert (killed_pid, killed.name) in registered_servers()
        assert list(SHM_DIR.glob(f"jack_{killed.name}_*"))

        leftover = SHM_DIR / f"jack_sem.0_riffd-gone-{os.getpid()}_client"   # no such server
        leftover.touch()

        import tempfile
        orphan_logs = list(pathlib.Path(tempfile.gettempdir()).glob(f"jackd-{orphan_name}-*.log"))
        assert orphan_logs                # the log its JackServer made

        done = clean_stale_servers()

        assert any(f"killed jackd {orphan_pid}" in line for line in done), done
        deadline = time.monotonic() + 3
        while os.path.exists(f"/proc/{orphan_pid}") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not os.path.exists(f"/proc/{orphan_pid}")
        names = [name for _pid, name in registered_servers()]
        assert killed.name not in names and orphan_name not in names
        assert not list(SHM_DIR.glob(f"jack_{killed.name}_*"))
        assert not list(SHM_DIR.glob(f"jack_sem.*_{killed.name}_*"))
        assert bystander.name in names and jack_server_running(bystander.env)
        assert list(SHM_DIR.glob(f"jack_sem.*_{bystander.name}_*"))
        assert not leftover.exists()
        assert not any(log.exists() for log in orphan_logs)
        # the same name starts again at once
        with JackServer(killed.name, realtime=False):
            assert jack_server_running(killed.env)
    finally:
        if owner is not None:
            owner.kill()
            owner.wait(5)
        if orphan_pid is not None:
            try:
                os.kill(orphan_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        bystander.stop()
        killed.stop()
        clean_stale_servers()


def test_a_full_registry_is_cleaned_and_start_retried(tmp_path, monkeypatch):
    """jackd that says "Too many servers already active" gets one retry after a clean-up."""
    import shutil
    real = shutil.which("jackd")
    assert real, "jackd is missing"
    marker = tmp_path / "refused-once"
    fake = tmp_path / "jackd"
    fake.write_text(f"#!/bin/sh\nif [ ! -e {marker} ]; then touch {marker}; "
                    "echo 'Too many servers already active' >&2; exit 255; fi\n"
                    f"exec {real} \"$@\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with JackServer(f"riffd-retry-{os.getpid()}", realtime=False) as server:
        assert marker.exists() and jack_server_running(server.env)


def test_a_full_registry_names_the_problem(tmp_path, monkeypatch):
    fake = tmp_path / "jackd"
    fake.write_text("#!/bin/sh\necho 'Too many servers already active' >&2\nexit 255\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(JackUnavailable, match="Too many servers already active.*8 JACK servers"):
        JackServer(f"riffd-full-{os.getpid()}", log_path=str(tmp_path / "jackd.log"),
                   realtime=False).start()
