"""Shared parts of the long-running benchmarks (stress_timing.py, soak.py); not a benchmark.

- :func:`start_jack`: a private dummy-driver JACK server, realtime (``jackd -R``) or not.
- :class:`NoteReceiver`: a separate JACK client (a :class:`~riffd.daemon.midi_peer.MidiPeer`) that
  keeps note messages with their frame times and only counts the rest (MIDI clock).
- :class:`XrunWatch`: a JACK client that counts the server's xruns (xrun callback).
- :class:`EventLog`: riffd's own record of what it sent, from its PUB socket (note_on/note_off
  with ``at`` in monotonic seconds), read on a thread.
- :class:`Burner`: CPU burner processes (Python busy loops, or stress-ng when installed).
- :class:`BareClient`: the baseline, a bare JACK client that sends a note every 16th at exact
  frames to the same receiver.
- :class:`ClientProcess`: runs the receiver or the bare client in a process of its own.
- :func:`match_notes`, :func:`pct`, :func:`cpu_times`, :func:`rt_threads`, :func:`rss_kib`.

Times are ``time.monotonic()`` seconds unless a name says otherwise (``_ms``, ``frame``).
"""
from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from riffd.daemon.jack_server import JackServer  # noqa: E402
from riffd.daemon.midi_peer import MidiPeer  # noqa: E402

BASELINE_CHANNEL = 16     # MIDI channel (1-16) of the bare client's notes; riffd plays on 1
NOTE_ON, NOTE_OFF = 0x90, 0x80


# ------------------------------------------------------------------------------ JACK server

def start_jack(name: str, rate: int, period: int, realtime: bool, log_path: str) -> JackServer:
    """Start a dummy-driver JACK server named ``name``: ``jackd -R`` when ``realtime``, else
    ``--no-realtime``."""
    return JackServer(name, rate=rate, period=period, log_path=log_path,
                      realtime=realtime).start()


def server_mode(log_path: str) -> str:
    """"realtime", "non-realtime" or "unknown", from jackd's start-up line in its log."""
    try:
        with open(log_path, errors="replace") as log:
            text = log.read()
    except OSError:
        return "unknown"
    if "non-realtime mode" in text:
        return "non-realtime"
    if "realtime mode" in text:
        return "realtime"
    return "unknown"


def log_xruns(log_path: str) -> int:
    """Lines in jackd's log that report an xrun."""
    try:
        with open(log_path, errors="replace") as log:
            return sum("XRun" in line for line in log)
    except OSError:
        return 0


def serve_option(option: str) -> bool:
    """True when ``riffd serve`` accepts ``option`` (e.g. ``--realtime``)."""
    from riffd.daemon import cli
    parser = argparse.ArgumentParser()
    cli._serve_parser(parser.add_subparsers())
    serve = parser._subparsers._group_actions[0].choices["serve"]
    return option in serve._option_string_actions


# ------------------------------------------------------------------------- JACK clients

class NoteReceiver(MidiPeer):
    """A MidiPeer that keeps note-ons/offs (with frame times) and counts other messages.

    ``keep=False``: count notes per channel only (for an hour-long soak), keep nothing.
    """

    def __init__(self, client_name: str, keep: bool = True) -> None:
        self.keep = keep
        self.other = 0                                        # clock pulses, CCs, ...
        self.ons: collections.Counter = collections.Counter()   # channel (1-16) -> note-ons
        self.offs: collections.Counter = collections.Counter()  # channel -> note-offs
        super().__init__(client_name)

    def _record(self, message: list, frame: int, time_s: float) -> None:
        kind = message[0] & 0xF0
        if len(message) != 3 or kind not in (NOTE_ON, NOTE_OFF):
            self.other += 1
            return
        channel = (message[0] & 0x0F) + 1
        if kind == NOTE_ON and message[2] > 0:
            self.ons[channel] += 1
        else:
            self.offs[channel] += 1
        if self.keep:
            super()._record(message, frame, time_s)

    def counts(self) -> tuple[dict, dict, int]:
        """(note-ons per channel, note-offs per channel, other messages) so far."""
        return dict(self.ons), dict(self.offs), self.other


class XrunWatch:
    """A JACK client whose only job is the xrun callback: counts the server's xruns.

    The callback runs on JACK's notification thread; ``count`` is read by the caller.
    """

    def __init__(self, client_name: str) -> None:
        import jack
        self.count = 0
        self._client = jack.Client(client_name, use_exact_name=True, no_start_server=True)
        self._client.set_xrun_callback(self._on_xrun)
        self._client.activate()

    def _on_xrun(self, delay_us: float) -> None:
        self.count += 1

    def close(self) -> None:
        if self._client is not None:
            self._client.deactivate()
            self._client.close()
            self._client = None

    def __enter__(self) -> "XrunWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BareClient:
    """The baseline: a bare JACK client (a MidiPeer) sending a note-on every 16th note at
    exact frames, a note-off half a 16th later, on BASELINE_CHANNEL, to ``receiver_port``.

    A feeder thread hands events over ``ahead_s`` seconds before they are due, so lateness
    comes from JACK's process cycle alone, not from Python waking up late. ``intended`` holds
    ``(at, pitch)`` of every note-on handed over.
    """

    def __init__(self, client_name: str, receiver_port: str, bpm: float,
                 ahead_s: float = 1.0) -> None:
        self.step_s = 60.0 / bpm / 4
        self.ahead_s = ahead_s
        self.intended: list[tuple[float, int]] = []
        self.offs_sent = 0
        self._peer = MidiPeer(client_name)
        self._peer._ports._client.connect(self._peer.out_port_name, receiver_port)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "BareClient":
        self._thread = threading.Thread(target=self._feed, name="bare-client-feed", daemon=True)
        self._thread.start()
        return self

    def _feed(self) -> None:
        t0 = time.monotonic() + 0.2
        k = 0
        status = BASELINE_CHANNEL - 1
        while not self._stop.is_set():
            horizon = time.monotonic() + self.ahead_s
            while t0 + k * self.step_s <= horizon:
                at = t0 + k * self.step_s
                pitch = 48 + (k * 7) % 36
                self._peer.send([NOTE_ON | status, pitch, 100], at)
                self._peer.send([NOTE_OFF | status, pitch, 0], at + self.step_s / 2)
                self.intended.append((at, pitch))
                self.offs_sent += 1
                k += 1
            self._stop.wait(self.ahead_s / 4)

    def stop(self) -> None:
        """Stop handing over notes (those already handed over still play)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def results(self) -> tuple[list, int]:
        """(``intended``: (at, pitch) of each note-on handed over, note-offs handed over)."""
        return list(self.intended), self.offs_sent

    def close(self) -> None:
        self.stop()
        self._peer.close()

    def __enter__(self) -> "BareClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


SWITCH_INTERVAL_S = 0.0005   # GIL hand-over in client processes (Python's default is 5 ms)


def _client_main(conn, cls, args) -> None:
    """Child process: build ``cls(*args)``, then run the methods the parent names over
    ``conn`` and send back ``(ok, result)``, until ``close``."""
    # The JACK process callback is Python: it needs the GIL within one period. A short switch
    # interval keeps the feeder/dispatcher threads from holding it for a whole 5 ms slice.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        obj = cls(*args)
    except Exception as exc:
        conn.send((False, f"{cls.__name__}: {exc!r}"))
        return
    try:
        conn.send((True, getattr(obj, "in_port_name", None)))
        while True:
            name, call_args = conn.recv()
            if name == "close":
                break
            try:
                result = getattr(obj, name)(*call_args)
                conn.send((True, None if result is obj else result))
            except Exception as exc:
                conn.send((False, f"{cls.__name__}.{name}: {exc!r}"))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        obj.close()
        try:
            conn.send((True, None))
        except OSError:
            pass


class ClientProcess:
    """A JACK client (:class:`NoteReceiver`, :class:`BareClient`) in a process of its own.

    Its process callback, written in Python, then competes for a GIL only with its own
    dispatcher or feeder thread, not with the benchmark's threads: the receiver and the
    baseline do not miss cycles for reasons of the benchmark's making. Methods run in the
    child with :meth:`call`; the child inherits ``os.environ`` (JACK_DEFAULT_SERVER) at start.
    """

    def __init__(self, cls, *args, timeout_s: float = 30.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_client_main, args=(child, cls, args), daemon=True,
                                 name=f"bench-{cls.__name__}")
        self._proc.start()
        child.close()
        self.in_port_name = self._reply(timeout_s)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def call(self, name: str, *args, timeout_s: float = 30.0):
        """Run ``obj.name(*args)`` in the child; return its result."""
        self._conn.send((name, args))
        return self._reply(timeout_s)

    def _reply(self, timeout_s: float):
        if not self._conn.poll(timeout_s):
            raise RuntimeError(f"{self._proc.name} did not answer within {timeout_s} s")
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        """Close the child's JACK client and end the process. Safe to call twice."""
        if self._proc.is_alive():
            try:
                self._conn.send(("close", ()))
                self._reply(10.0)
            except (OSError, EOFError, RuntimeError):
                pass
            self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        self._conn.close()

    def __enter__(self) -> "ClientProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------- riffd events

class EventLog:
    """Subscribes to riffd's PUB socket on a thread; keeps its note_on/note_off events.

    ``ons`` and ``offs`` hold ``(at, channel, pitch)`` with ``at`` in monotonic seconds (the
    time riffd meant the message to sound).
    """

    def __init__(self, endpoint: str, keep: bool = True) -> None:
        import zmq
        self.keep = keep
        self.ons: list[tuple[float, int, int]] = []
        self.offs: list[tuple[float, int, int]] = []
        self.on_count = 0
        self.off_count = 0
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, 0)          # never drop on our side
        for name in ("note_on", "note_off"):
            self._sock.setsockopt_string(zmq.SUBSCRIBE, name)
        self._sock.connect(endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="riffd-events", daemon=True)
        self._thread.start()
        time.sleep(0.3)                               # let the subscription reach the PUB

    def _run(self) -> None:
        import zmq
        while not self._stop.is_set():
            if not self._sock.poll(100, zmq.POLLIN):
                continue
            topic, body = self._sock.recv_multipart()
            event = json.loads(body)
            item = (float(event.get("at") or 0.0), int(event.get("channel", 1)),
                    int(event.get("pitch", -1)))
            if topic == b"note_on":
                self.on_count += 1
                if self.keep:
                    self.ons.append(item)
            else:
                self.off_count += 1
                if self.keep:
                    self.offs.append(item)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close(0)
        self._ctx.term()


def counters(status: dict) -> dict:
    """riffd's status counters that the benchmarks read; None where riffd has no such field."""
    c = status.get("counters", {})

    def first(*names):
        for name in names:
            for where in (c, status):
                if name in where:
                    return where[name]
        return None

    # late_notes: events the scheduler handed to the port too late; notes_late: events the
    # port wrote after their time (> 1 ms); missed_cycles: cycles JACK did not run riffd for
    return {"notes_sent": first("notes_sent"), "late_notes": first("late_notes"),
            "notes_late": first("notes_late"), "events_dropped": first("events_dropped"),
            "xruns": first("xruns"), "missed_cycles": first("missed_cycles"),
            "sounding": first("sounding"), "realtime": status.get("realtime")}


def delta(after, before):
    """after - before for counters that may be missing (None)."""
    if after is None or before is None:
        return None
    return after - before


# ----------------------------------------------------------------------------- CPU burner

def _busy_loop() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF


class Burner:
    """``n`` processes that keep one core each busy: stress-ng when installed (``kind="auto"``
    or ``"stress-ng"``), else plain Python busy loops (multiprocessing, spawn)."""

    def __init__(self, n: int, kind: str = "auto") -> None:
        self.n = n
        if kind == "auto":
            kind = "stress-ng" if shutil.which("stress-ng") else "python"
        self.kind = kind if n > 0 else "none"
        self._procs: list = []
        self._stress: subprocess.Popen | None = None

    def start(self) -> "Burner":
        if self.kind == "stress-ng":
            self._stress = subprocess.Popen(["stress-ng", "--cpu", str(self.n), "--quiet"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True)
        elif self.kind == "python":
            ctx = multiprocessing.get_context("spawn")
            for _ in range(self.n):
                p = ctx.Process(target=_busy_loop, daemon=True)
                p.start()
                self._procs.append(p)
        return self

    def stop(self) -> None:
        if self._stress is not None:
            try:
                os.killpg(self._stress.pid, signal.SIGTERM)
                self._stress.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self._stress.pid, signal.SIGKILL)
            self._stress = None
        for p in self._procs:
            p.terminate()
        for p in self._procs:
            p.join(5)
        self._procs = []

    def __enter__(self) -> "Burner":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ----------------------------------------------------------------------------- measuring

def pct(values, unit: float = 1.0) -> dict:
    """n, p50, p99, max of |values| * unit."""
    a = np.abs(np.asarray(values, dtype=float)) * unit
    if a.size == 0:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 3),
            "p99": round(float(np.percentile(a, 99)), 3), "max": round(float(a.max()), 3)}


def match_notes(intended, received, window_s: float = 0.25) -> list[tuple[float, float]]:
    """Pair intended note-ons with received ones, one to one, per (channel, pitch) in order.

    Args:
        intended: ``(at, channel, pitch)``: when each note-on was meant to sound, seconds.
        received: ``(t, channel, pitch)``: when the receiver saw each note-on, seconds.
        window_s: a received note further than this from every candidate is left unmatched.

    Returns ``(at, t)`` pairs. Within one pitch both lists are in time order and a message can
    only be lost, never reordered, so a received note takes the earliest intended one still
    open unless the next intended one is closer (the earlier one was lost).
    """
    by_key_i = collections.defaultdict(list)
    by_key_r = collections.defaultdict(list)
    for at, ch, p in intended:
        by_key_i[(ch, p)].append(at)
    for t, ch, p in received:
        by_key_r[(ch, p)].append(t)
    pairs = []
    for key, ts in by_key_r.items():
        ats = sorted(by_key_i.get(key, []))
        j = 0
        for t in sorted(ts):
            while j < len(ats) and ats[j] < t - window_s:
                j += 1                                # intended long before: lost
            while j + 1 < len(ats) and abs(ats[j + 1] - t) < abs(ats[j] - t):
                j += 1                                # the next one fits better: j was lost
            if j < len(ats) and abs(ats[j] - t) <= window_s:
                pairs.append((ats[j], t))
                j += 1
    return pairs


def hanging(messages) -> int:
    """Keys left sounding at the end: (channel, pitch) pairs whose last message was a note-on,
    as a synthesizer would hold them (a note-on that JACK delivered twice still ends with one
    note-off).

    ``messages``: MIDI byte lists in arrival order.
    """
    held = {}
    for m in messages:
        held[(m[0] & 0x0F, m[1])] = m[0] & 0xF0 == NOTE_ON and m[2] > 0
    return sum(held.values())


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat; busy excludes idle and iowait."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    total = sum(fields[:8])
    return total - fields[3] - fields[4], total


def busy_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of all CPU time that was busy between two :func:`cpu_times` readings, %."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return round(100.0 * busy / total, 1) if total else 0.0


def rt_threads(pid: int) -> int:
    """Threads of process ``pid`` that run SCHED_FIFO or SCHED_RR (realtime)."""
    count = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            if os.sched_getscheduler(int(tid)) in (os.SCHED_FIFO, os.SCHED_RR):
                count += 1
        except OSError:
            pass
    return count


def rss_kib(pid: int) -> int | None:
    """Resident set size of process ``pid`` in KiB (VmRSS in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def loadavg() -> list[float]:
    """1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def fmt(value, spec: str = "") -> str:
    """``value`` formatted with ``spec``, or "n/a" when it is None."""
    return "n/a" if value is None else format(value, spec)
