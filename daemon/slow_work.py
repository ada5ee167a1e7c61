"""Slow command work off the control thread: a :class:`Deferred` result and the one worker
thread that runs it.

A command handler that must do something slow (load a checkpoint: read, check and build a model,
warm it up) returns ``Deferred(work)`` instead of its result. The control server keeps the
request's envelope, hands ``work`` to its :class:`SlowWorker` and goes on serving other requests
(``ping`` answers at once). When ``work()`` returns its dict (or raises), the reply goes back to
the same client from the control thread. Jobs run one after another, in the order they came.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Deferred:
    """A handler's result that is not ready yet: ``work()`` returns it (a dict) or raises, on the
    worker thread. ``what`` names the work in logs ("load_model")."""

    __slots__ = ("work", "what")

    def __init__(self, work: Callable[[], "dict[str, Any] | None"], what: str = ""):
        self.work = work
        self.what = what


class SlowWorker:
    """One thread, started on the first job, that runs jobs (callables) in order.

    ``stop()`` lets the job in progress finish on its own (its thread is a daemon thread, so a
    long load never holds up the daemon's exit) and drops the jobs still waiting.
    """

    def __init__(self, name: str = "riffd-slow-work"):
        self._name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.pending = 0           # jobs submitted and not finished

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; it runs on the worker thread. Never blocks."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        with self._lock:
            self.pending += 1
        self._jobs.put(job)

    def stop(self) -> None:
        """Stop after the job in progress; waiting jobs are dropped. Does not wait."""
        self._stop.set()
        self._jobs.put(None)

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self._jobs.get()
            if job is None or self._stop.is_set():
                return
            try:
                job()
            except Exception:       # a job reports its own failures; this is a last resort
                log.exception("slow control work failed")
            finally:
                with self._lock:
                    self.pending -= 1
