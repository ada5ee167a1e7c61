"""Realtime scheduling as JACK clients use it: riffd's scheduler and MIDI-in threads run
SCHED_FIFO below JACK's process thread and riffd's memory is locked, where the system allows it;
where it does not, ``status`` and the start-up log say why, and ``--realtime on`` refuses to
start. The policies are read from outside, from /proc, not taken from riffd's word."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from riffd.daemon.jack_server import realtime_permitted
from riffd.daemon.process import DaemonProcess

ARGS = ["--midi-api", "jack", "--client-name", "riffd-rt", "--log-level", "INFO"]
ROOT = Path(__file__).resolve().parents[2]
# drop the capabilities that let root use SCHED_FIFO and lock memory: an ordinary user's rights
WITHOUT_RIGHTS = ["setpriv", "--bounding-set", "-sys_nice,-ipc_lock"]


def fifo_threads(pid: int) -> dict[int, int]:
    """{thread id: SCHED_FIFO priority} of the process's realtime threads."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if os.sched_getscheduler(int(task.name)) == os.SCHED_FIFO:
                found[int(task.name)] = os.sched_getparam(int(task.name)).sched_priority
        except OSError:
            pass
    return found


def locked_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmLck:"):
            return int(line.split()[1])
    return 0


def test_scheduler_and_input_threads_run_fifo_below_jack(jack_server, tmp_path):
    with DaemonProcess(ARGS + ["--realtime", "off"], log_path=tmp_path / "off.log") as off:
        with off.client() as c:
            rt_off = c.status()["realtime"]
        fifo_off = fifo_threads(off.proc.pid)
        locked_off = locked_kib(off.proc.pid)
    with DaemonProcess(ARGS, log_path=tmp_path / "auto.log") as auto:
        with auto.client() as c:
            rt_auto = c.status()["realtime"]
        fifo_auto = fifo_threads(auto.proc.pid)
        locked_auto = locked_kib(auto.proc.pid)
    log = (tmp_path / "auto.log").read_text()
    assert rt_off == {"mode": "off", "scheduler": False, "input": False,
                      "memory_locked": False, "reason": "off (--realtime off)"}
    if realtime_permitted():
        assert rt_auto == {"mode": "auto", "scheduler": True, "input": True,
                           "memory_locked": True, "reason": ""}
        assert "SCHED_FIFO, memory locked" in log
        # riffd's two threads on top of what JACK gave its process thread, below JACK's 70
        assert len(fifo_auto) == len(fifo_off) + 2, (fifo_off, fifo_auto)
        assert sorted(set(fifo_auto.values()) - set(fifo_off.values())) == [55, 60]
        assert max(fifo_auto.values()) <= 70
        # libjack locks its shared memory on a realtime server; mlockall locks all of riffd
        assert locked_auto > locked_off + 100_000, (locked_off, locked_auto)
    else:
        assert rt_auto["scheduler"] is False and "rtprio" in rt_auto["reason"]
        assert "rtprio" in log


STATE = """
import json, threading
from riffd.daemon.realtime import RealtimeState, thread_is_realtime
state = RealtimeState("auto")
state.lock_memory()
seen = []
t = threading.Thread(target=lambda: seen.append((state.promote("scheduler", 60),
                                                 thread_is_realtime())))
t.start(); t.join()
print(json.dumps({"status": state.status(), "thread": seen[0]}))
"""


@pytest.fixture
def setpriv():
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.fail("this test drops root's realtime rights with setpriv (util-linux), as root")


def test_without_rights_auto_says_why(setpriv):
    done = subprocess.run([*WITHOUT_RIGHTS, sys.executable, "-c", STATE], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    status = result["status"]
    assert result["thread"] == [False, False]
    assert status["scheduler"] is False and status["memory_locked"] is False
    assert "SCHED_FIFO 60 refused" in status["reason"] and "mlockall refused" in status["reason"]
    assert "rtprio" in status["reason"] and "memlock" in status["reason"]


def test_without_rights_realtime_on_refuses_to_start(setpriv, jack_server, tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    done = subprocess.run([*WITHOUT_RIGHTS, sys.executable, "-m", "riffd.daemon", "serve", *ARGS,
                           "--realtime", "on", "--control", f"ipc://{runtime}/control",
                           "--events", f"ipc://{runtime}/events"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "--realtime on" in done.stderr and "refused" in done.stderr, done.stderr
    assert "rtprio" in done.stderr
