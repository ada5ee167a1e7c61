"""Realtime scheduling for riffd's time-critical threads, as JACK clients do it.

The JACK process thread gets SCHED_FIFO from a realtime server (``jackd -R``, priority 70 by
default). riffd gives its scheduler thread (hands timed notes to the port) and its MIDI-in
dispatcher SCHED_FIFO too, at priorities below JACK's, so a busy model thread or a loaded
machine cannot delay them; and it locks its memory (``mlockall``) so that no page fault stalls
them. On Linux ``os.sched_setscheduler(0, ...)`` called from inside a thread applies to that
thread only.

Modes (``riffd serve --realtime``): ``auto`` tries and reports what was refused (status and the
start-up log), ``on`` makes a refusal an error, ``off`` never asks.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

MODES = ("auto", "on", "off")
SCHEDULER_PRIORITY = 60      # SCHED_FIFO priority of the scheduler thread (JACK's is 70)
INPUT_PRIORITY = 55          # SCHED_FIFO priority of the MIDI-in dispatcher thread
MCL_CURRENT, MCL_FUTURE = 1, 2
RIGHTS_HINT = ("give riffd's user realtime rights: add it to the audio group with "
               "`@audio - rtprio 95` and `@audio - memlock unlimited` in "
               "/etc/security/limits.d/audio.conf, log in again, and use a realtime JACK "
               "server (jackd -R)")


class RealtimeError(OSError):
    """``--realtime on`` and the system refused realtime scheduling or memory locking."""


def promote_current_thread(priority: int) -> tuple[bool, str]:
    """Make the calling thread SCHED_FIFO at ``priority`` (1..99). Returns (done, reason)."""
    if not hasattr(os, "sched_setscheduler"):
        return False, "this system has no SCHED_FIFO (Linux only)"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        return False, (f"SCHED_FIFO {priority} refused for thread "
                       f"{threading.current_thread().name} ({exc.strerror}): {RIGHTS_HINT}")
    return True, ""


def thread_is_realtime() -> bool:
    """True when the calling thread runs SCHED_FIFO or SCHED_RR."""
    if not hasattr(os, "sched_getscheduler"):
        return False
    return os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR)


def lock_memory() -> tuple[bool, str]:
    """``mlockall(MCL_CURRENT | MCL_FUTURE)``: keep every page of riffd in RAM.
    Returns (done, reason)."""
    name = ctypes.util.find_library("c")
    if name is None or not hasattr(os, "sched_setscheduler"):
        return False, "mlockall is not available on this system"
    libc = ctypes.CDLL(name, use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        errno = ctypes.get_errno()
        return False, f"mlockall refused ({os.strerror(errno)}): {RIGHTS_HINT}"
    return True, ""


class RealtimeState:
    """What riffd got: filled in by the threads as they start; read by ``status``."""

    def __init__(self, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"realtime must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.memory_locked = False
        self.threads: dict[str, bool] = {}
        self.reasons: list[str] = []
        self._lock = threading.Lock()

    @property
    def wanted(self) -> bool:
        return self.mode != "off"

    def lock_memory(self) -> None:
        """Lock memory when wanted; ``RealtimeError`` in mode ``on`` when refused."""
        if not self.wanted:
            return
        done, reason = lock_memory()
        self._record(None, done, reason)

    def promote(self, role: str, priority: int) -> bool:
        """From inside the thread of ``role``: SCHED_FIFO at ``priority`` when wanted.
        Never raises (a thread cannot stop the daemon); ``check()`` does in mode ``on``."""
        if not self.wanted:
            with self._lock:
                self.threads[role] = False
            return False
        done, reason = promote_current_thread(priority)
        try:
            self._record(role, done, reason)
        except RealtimeError:
            pass
        return done

    def check(self) -> None:
        """Mode ``on``: raise ``RealtimeError`` with every reason when something was refused."""
        with self._lock:
            if self.mode == "on" and self.reasons:
                raise RealtimeError("--realtime on: " + "; ".join(self.reasons))

    def _record(self, role: str | None, done: bool, reason: str) -> None:
        with self._lock:
            if role is None:
                self.memory_locked = done
            else:
                self.threads[role] = done
            if not done and reason not in self.reasons:
                self.reasons.append(reason)
        if not done and self.mode == "on":
            raise RealtimeError(f"--realtime on: {reason}")

    def status(self) -> dict:
        """``{"mode", "scheduler", "input", "memory_locked", "reason"}`` for ``status``."""
        with self._lock:
            reason = "off (--realtime off)" if not self.wanted else "; ".join(self.reasons)
            return {"mode": self.mode, "scheduler": self.threads.get("scheduler", False),
                    "input": self.threads.get("input", False),
                    "memory_locked": self.memory_locked, "reason": reason}
