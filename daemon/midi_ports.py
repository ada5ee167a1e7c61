"""MIDI ports: riffd's virtual output and input, one real implementation per backend.

Public verbs validate and delegate to one private hook per backend (``send`` -> ``_send``,
``open`` -> ``_open``, ``close`` -> ``_close``), as in mido.

Times are ``time.monotonic()`` seconds throughout. ``send(msg, at=t)`` asks the backend to emit
``msg`` so that it sounds at ``t``; a backend that buffers output adds a constant latency
(:attr:`MidiPorts.latency_s`), so callers that want frame accuracy hand messages over at least
``latency_s`` before ``t`` (the :class:`~riffd.daemon.scheduler.Scheduler` does).

Backends:

- :class:`JackMidiPorts`: one JACK client with ports ``<client>:out`` and ``<client>:in``. Output
  events are written at the frame offset inside the process cycle that matches their ``at``;
  an event whose cycle was missed (an xrun) goes out at the start of the next cycle that runs,
  counted late, never dropped.
- :class:`RtMidiPorts`: python-rtmidi virtual ports for ALSA (Linux desktops), CoreMIDI (macOS);
  Windows has no virtual ports.

Counters (read from any thread): ``late_events`` (written after their time, by more than
LATE_S), ``dropped`` (events that could not be delivered at all: too large for the port buffer,
or queued when the ports were closed or re-opened after the server went away), ``xruns`` (JACK
xruns this client saw), ``missed_cycles`` (process cycles JACK did not run this client for).
"""

from __future__ import annotations

import bisect
import collections
import heapq
import itertools
import logging
import os
import queue
import sys
import threading
import time
from typing import Callable, Sequence

log = logging.getLogger(__name__)

InputCallback = Callable[[list, float], None]

# Cycles (170 ms at 48 kHz / 256) over which the frame clock origin is the running minimum: long
# enough to skip wake-up jitter, short enough to follow a loaded server whose frame clock loses
# time against the monotonic clock (measured here: 3 ms/s and jumps of 10 ms under load).
FRAME_CLOCK_WINDOW = 32

API_NAMES = ("auto", "alsa", "jack", "coremidi", "windows")
LATE_S = 0.001                # an event written more than this after its time counts late
# A Python JACK client's process callback needs the GIL within a fraction of a period (5.3 ms
# at 48 kHz / 256): with Python's default 5 ms switch interval a busy thread makes it miss
# cycles (measured here on a realtime server: 69 xruns in 1.5 s; 0 at 0.5 ms).
SWITCH_INTERVAL_S = 0.0005
STEADY_CALLS = 2              # after skipped cycles, output waits for this many calls in step
RESYNC_CALLS = 8              # ... but holds it for at most this many calls (43 ms at 256/48k)
CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF = 120, 123


def reset_messages(channels=range(1, 17)) -> list[list[int]]:
    """All Notes Off (CC 123) and All Sound Off (CC 120) on each channel (1..16): what a
    receiver needs to end notes that a crashed or vanished riffd left sounding."""
    messages = []
    for channel in channels:
        messages.append([0xB0 | (channel - 1), CC_ALL_NOTES_OFF, 0])
        messages.append([0xB0 | (channel - 1), CC_ALL_SOUND_OFF, 0])
    return messages


class MidiPortError(RuntimeError):
    """A MIDI port could not be opened or used; the message says how to fix it."""


def _as_bytes(message: bytes | bytearray | Sequence[int]) -> bytes:
    """Validate one MIDI message (status byte first, data bytes < 0x80) and return it as bytes."""
    try:
        data = bytes(message)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"MIDI message must be bytes or a list of ints 0..255: {message!r}") from exc
    if not data:
        raise ValueError("empty MIDI message")
    if data[0] < 0x80:
        raise ValueError(f"MIDI message must start with a status byte (>= 0x80): {list(data)}")
    if data[0] != 0xF0 and any(b >= 0x80 for b in data[1:]):
        raise ValueError(f"MIDI data bytes must be < 0x80: {list(data)}")
    return data


class MidiPorts:
    """A virtual MIDI output and input owned by riffd.

    Subclasses implement ``_open``, ``_send``, ``_close``. Use as a context manager.
    """

    api = "abstract"
    #: Constant output latency in seconds that the backend adds to every timed message.
    latency_s = 0.0

    def __init__(self, realtime=None) -> None:
        self.client_name: str | None = None
        self.out_port_name: str | None = None
        self.in_port_name: str | None = None
        self._names: tuple[str, str, str] | None = None
        self._callback: InputCallback | None = None
        self._is_open = False
        self._lock = threading.Lock()
        #: a :class:`riffd.daemon.realtime.RealtimeState`: the input dispatcher asks it for SCHED_FIFO
        self.realtime = realtime
        #: called with a reason when the backend goes away (on a backend thread: keep it short)
        self.on_shutdown: Callable[[str], None] | None = None
        #: called with the other port's name when something connects to the output
        self.on_connect: Callable[[str], None] | None = None
        #: called with the delay in microseconds of each xrun (JACK's notification thread)
        self.on_xrun: Callable[[float], None] | None = None
        #: an existing port (its name, or a unique part of it) that the output goes to and the
        #: input comes from (Windows' loopMIDI ports; a synth or DAW port on JACK); set before
        #: open(). JACK connects riffd's own ports to them; rtmidi opens them instead of
        #: virtual ports.
        self.connect_out: str | None = None
        self.connect_in: str | None = None
        self.late_events = 0
        self.dropped = 0
        self.xruns = 0
        self.missed_cycles = 0
        self.opened = 0               # times the ports were opened (re-opens included)

    @property
    def is_open(self) -> bool:
        return self._is_open

    @property
    def alive(self) -> bool:
        """False once the ports are closed or the backend went away."""
        return self._is_open

    @property
    def reason(self) -> str:
        """Why the ports are not alive ("" while they are)."""
        return "" if self.alive else "ports closed"

    def open(self, client_name: str = "riffd", out_name: str = "out", in_name: str = "in") -> "MidiPorts":
        """Create the ports ``<client_name>:<out_name>`` and ``<client_name>:<in_name>``."""
        with self._lock:
            if self._is_open:
                raise MidiPortError(f"{self.api} ports are already open as {self.client_name!r}")
            self._open(client_name, out_name, in_name)
            self.client_name = client_name
            self._names = (client_name, out_name, in_name)
            self._is_open = True
            self.opened += 1
        return self

    def reopen(self) -> "MidiPorts":
        """Close the ports (without waiting: the backend may be gone) and open them again under
        the same names, e.g. when the JACK server is back. Queued events are dropped and
        counted: the notes of a server that went away died with it. Raises MidiPortError while
        the backend is still missing (the ports stay closed; call again later)."""
        if self._names is None:
            raise MidiPortError("reopen() needs ports that were opened once")
        with self._lock:
            if self._is_open:
                self._is_open = False
                self._close()
            self._open(*self._names)
            self._is_open = True
            self.opened += 1
        return self

    def send_reset(self, channels=range(1, 17)) -> None:
        """Send All Notes Off (CC 123) and All Sound Off (CC 120) now on ``channels`` (1..16)."""
        for message in reset_messages(channels):
            self.send(message)

    def out_connections(self) -> list[str]:
        """Names of the ports connected to the output (empty where the backend cannot tell)."""
        return []

    def send(self, message: bytes | Sequence[int], at: float | None = None) -> None:
        """Send one MIDI message.

        Args:
            message: raw bytes, e.g. ``[0x90, 60, 100]``.
            at: ``time.monotonic()`` time in seconds at which it should sound; None = now.
        """
        data = _as_bytes(message)
        if not self._is_open:
            raise MidiPortError(f"{self.api} MIDI ports are not open")
        self._send(data, at)

    def set_input_callback(self, callback: InputCallback | None) -> None:
        """Call ``callback(message: list[int], time_s: float)`` for every incoming message.

        ``time_s`` is on the ``time.monotonic()`` clock. The callback runs on a backend thread
        (never inside a real-time audio callback); keep it short.
        """
        if callback is not None and not callable(callback):
            raise TypeError("input callback must be callable or None")
        self._callback = callback

    def close(self) -> None:
        """Close and delete both ports. Safe to call more than once."""
        with self._lock:
            if not self._is_open:
                return
            self._is_open = False
            self._close()

    def _deliver(self, message: list, time_s: float) -> None:
        callback = self._callback
        if callback is not None:
            callback(message, time_s)

    def __enter__(self) -> "MidiPorts":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Backend hooks.
    def _open(self, client_name: str, out_name: str, in_name: str) -> None:
        raise NotImplementedError

    def _send(self, data: bytes, at: float | None) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


def find_port(wanted: str, names: list[str], what: str) -> int:
    """Index of the port in ``names`` called ``wanted``, or else the only one containing it
    (case ignored). Raises MidiPortError naming the ports there are."""
    exact = [i for i, n in enumerate(names) if n == wanted]
    if exact:
        return exact[0]
    partial = [i for i, n in enumerate(names) if wanted.lower() in n.lower()]
    if len(partial) == 1:
        return partial[0]
    there = ", ".join(repr(n) for n in names) or "none"
    if partial:
        raise MidiPortError(f"{len(partial)} MIDI {what} ports match {wanted!r}: "
                            f"{', '.join(repr(names[i]) for i in partial)}; give more of the name")
    raise MidiPortError(f"no MIDI {what} port called {wanted!r}; the {what} ports there are: "
                        f"{there} (create it first, e.g. in loopMIDI, or start the synth)")


# --------------------------------------------------------------------------------------- JACK

class JackMidiPorts(MidiPorts):
    """One JACK client with a MIDI output and a MIDI input port.

    Timing model: frame offset ``o`` of the process cycle that starts at monotonic time ``T``
    stands for time ``T + o / samplerate``. An event whose ``at`` falls in ``[T, T + period)`` is
    written at its exact offset in that cycle, provided it was handed over before the cycle
    started; hence :attr:`latency_s` = one period (``blocksize / samplerate`` seconds): send at
    least that long before ``at``. Late events (and ``at=None``) go at offset 0 of the next cycle.
    Input events get the same mapping, so a message another client writes for time ``at`` arrives
    stamped ``at`` (plus one period when JACK delays it a cycle, e.g. over a feedback connection).
    """

    api = "jack"

    def __init__(self, realtime=None) -> None:
        super().__init__(realtime)
        self._client = None
        self._outport = None
        self._inport = None
        self._alive = False
        self._shutdown_reason = ""
        self._server_gone = ""                # why the server went away, until re-opened
        self._seq = itertools.count()
        # send() appends (at, seq, data) from any thread; the process callback drains it into
        # _pending, kept sorted by (at, seq) so events leave in time order.
        self._incoming: collections.deque = collections.deque()
        self._pending: list = []
        self._inq: queue.SimpleQueue = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self.samplerate = 0
        self.blocksize = 0
        self.write_failures = 0   # writes JACK refused (buffer full); the event stays queued
        self.process_errors = 0   # exceptions caught in the process callback
        self.repeated_cycles = 0  # extra calls JACK made for a cycle already run (after a stall)
        self.last_process_error = ""
        self._origins: collections.deque = collections.deque()   # (cycle, frame-clock origin)
        self._cycle = 0
        self._next_frame: int | None = None   # first frame of the cycle expected next
        self._in_step = STEADY_CALLS          # calls in a row that followed their predecessor
        self._held = 0                        # calls whose output was held since the last xrun

    @property
    def alive(self) -> bool:
        return self._is_open and self._alive

    @property
    def reason(self) -> str:
        if self.alive:
            return ""
        if self._server_gone:
            return f"the JACK server went away ({self._server_gone})"
        return self._shutdown_reason or "ports closed"

    def _open(self, client_name: str, out_name: str, in_name: str) -> None:
        try:
            import jack
        except (ImportError, OSError) as exc:  # OSError: libjack missing
            raise MidiPortError(f"JACK-Client or libjack is unavailable ({exc}); "
                                "pip install JACK-Client and install JACK (apt-get install jackd2)") from exc
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            client = jack.Client(client_name, use_exact_name=True, no_start_server=True)
        except jack.JackOpenError as exc:
            raise MidiPortError(
                f"cannot open JACK client {client_name!r} ({exc}); is a JACK server running "
                "(start one: `jackd -d dummy -r 48000 -p 256`, or check JACK_DEFAULT_SERVER), "
                f"and is no other client already called {client_name!r}?") from exc
        try:
            self._outport = client.midi_outports.register(out_name)
            self._inport = client.midi_inports.register(in_name)
            self.samplerate = client.samplerate
            self.blocksize = client.blocksize
            self.latency_s = self.blocksize / self.samplerate
            client.set_process_callback(self._process)
            client.set_shutdown_callback(self._on_shutdown)
            client.set_blocksize_callback(self._on_blocksize)
            client.set_xrun_callback(self._on_xrun)
            client.set_port_connect_callback(self._on_port_connect)
            self._client = client
            self._next_frame = None
            self._in_step, self._held = STEADY_CALLS, 0
            self._origins.clear()
            self._shutdown_reason = ""
            self._server_gone = ""
            self._alive = True
            self._dispatcher = threading.Thread(target=self._dispatch_input,
                                                name=f"{client_name}-midi-in", daemon=True)
            self._dispatcher.start()
            client.activate()
        except Exception:
            self._alive = False
            self._stop_dispatcher()
            client.close()
            self._client = None
            raise
        self.out_port_name = self._outport.name
        self.in_port_name = self._inport.name
        try:
            self._connect_named_ports(client)
        except MidiPortError:
            if not self.opened:         # first opening: a wrong name stops riffd, clearly
                self._close()
                raise
            log.warning("%s", sys.exc_info()[1])   # a re-opening goes on without that link

    def _connect_named_ports(self, client) -> None:
        """Connect riffd:out to ``connect_out`` and ``connect_in`` to riffd:in (JACK port names
        or unique parts of them)."""
        if self.connect_out:
            names = [p.name for p in client.get_ports(is_midi=True, is_input=True)
                     if p.name != self._inport.name]
            target = names[find_port(self.connect_out, names, "input")]
            if target not in [p.name for p in client.get_all_connections(self._outport)]:
                client.connect(self._outport, target)
        if self.connect_in:
            names = [p.name for p in client.get_ports(is_midi=True, is_output=True)
                     if p.name != self._outport.name]
            source = names[find_port(self.connect_in, names, "output")]
            if source not in [p.name for p in client.get_all_connections(self._inport)]:
                client.connect(source, self._inport)

    def _send(self, data: bytes, at: float | None) -> None:
        if not self._alive:
            raise MidiPortError(f"JACK server went away ({self._shutdown_reason or 'shutdown'}); "
                                "restart jackd / riffd")
        # deque.append is atomic; the process callback is the only consumer.
        self._incoming.append((0.0 if at is None else at, next(self._seq), data))

    def _process(self, frames: int) -> None:
        """JACK process callback: runs once per cycle on JACK's thread; must not block.

        An exception escaping it would make JACK-Client stop calling it for good (no more MIDI
        out or in): it is counted and the next cycle runs again."""
        try:
            self._process_cycle(frames)
        except Exception as exc:
            self.process_errors += 1
            self.last_process_error = repr(exc)

    def _process_cycle(self, frames: int) -> None:
        client = self._client
        first_frame = client.last_frame_time
        expected = self._next_frame
        if expected is not None and first_frame < expected:
            # After a stall JACK calls us again for the cycle we already ran (one call per
            # missed activation, all stamped with the current cycle). Its output buffer already
            # holds what we wrote and its input was already read: clearing and writing again
            # would lose those events (or deliver them twice). Leave the cycle as it is.
            self.repeated_cycles += 1
            return
        # Monotonic time at which this cycle started (frames_since_cycle_start counts from it).
        cycle_start = time.monotonic() - client.frames_since_cycle_start / self.samplerate
        rate = self.samplerate
        # The driver wakes late, never early: the smallest (cycle start - frame time) over the
        # last FRAME_CLOCK_WINDOW cycles is the frame clock's own origin, free of wake-up jitter.
        base = first_frame / rate + self._frame_origin(cycle_start - first_frame / rate)
        if expected is not None and first_frame > expected:
            self.missed_cycles += (first_frame - expected) // frames   # JACK skipped us
            if self._in_step >= STEADY_CALLS:
                self._held = 0
            self._in_step = 0
        else:
            self._in_step += 1
        self._next_frame = first_frame + frames
        # The first calls after skipped cycles may run for a cycle the server has already left
        # behind (measured: a call stamped 37 periods late), or after the receivers of their
        # cycle ran: what they write is lost. Hold the output until STEADY_CALLS calls in a row
        # followed their predecessor, for at most RESYNC_CALLS calls.
        hold_output = self._in_step < STEADY_CALLS and self._held < RESYNC_CALLS
        if hold_output:
            self._held += 1

        # Input: stamp each event with the time of its frame; hand it to the dispatcher thread.
        for offset, data in self._inport.incoming_midi_events():
            self._inq.put((bytes(data), first_frame + offset, base + offset / rate))

        # Output.
        out = self._outport
        out.clear_buffer()
        pending = self._pending
        incoming = self._incoming
        while incoming:
            bisect.insort(pending, incoming.popleft())
        if hold_output:
            return
        written = 0
        last_offset = 0
        late_frames = -LATE_S * rate
        for at, _seq, data in pending:
            offset = int((at - base) * rate + 0.5)
            if offset >= frames:
                break                          # later cycle: stays queued (pending is sorted)
            if at and offset < late_frames:
                late = True                    # its cycle was missed, or it was handed over late
            else:
                late = False
            offset = max(offset, last_offset)  # already due -> offset 0; keep offsets monotonic
            try:
                out.write_midi_event(offset, data)
            except Exception:
                # Buffer full: this event and every later one wait for the next cycle. One
                # that does not fit even an empty buffer never will: drop it, counted.
                self.write_failures += 1
                if written == 0 and last_offset == 0 and len(data) > out.max_event_size:
                    self.dropped += 1
                    written += 1
                break
            if late:
                self.late_events += 1
            last_offset = offset
            written += 1
        if written:
            del pending[:written]

    def _frame_origin(self, raw: float) -> float:
        """Sliding-window minimum of ``raw`` (seconds) over the last FRAME_CLOCK_WINDOW cycles
        (a monotonic deque: O(1) per cycle)."""
        window = self._origins
        self._cycle += 1
        while window and window[-1][1] >= raw:
            window.pop()
        window.append((self._cycle, raw))
        if window[0][0] <= self._cycle - FRAME_CLOCK_WINDOW:
            window.popleft()
        return window[0][1]

    def _on_blocksize(self, blocksize: int) -> None:
        self.blocksize = blocksize
        self.latency_s = blocksize / self.samplerate

    def _on_shutdown(self, status, reason: str) -> None:
        # Runs on a JACK thread, like a signal handler: only set flags.
        self._shutdown_reason = reason
        self._server_gone = reason or "shutdown"    # kept until the ports open again
        self._alive = False
        hook = self.on_shutdown
        if hook is not None:
            try:
                hook(reason)
            except Exception:
                pass

    def _on_xrun(self, delayed_usecs: float) -> None:
        """JACK notification thread: one xrun (a cycle that did not finish in time)."""
        self.xruns += 1
        hook = self.on_xrun
        if hook is not None:
            try:
                hook(delayed_usecs)
            except Exception as exc:
                print(f"riffd: xrun callback failed: {exc!r}", file=sys.stderr)

    def out_connections(self) -> list[str]:
        out = self._outport
        if out is None or not self.alive:
            return []
        try:
            return [port.name for port in out.connections]
        except Exception:                  # the server went away meanwhile
            return []

    def _on_port_connect(self, a, b, connect: bool) -> None:
        """JACK notification thread: tell ``on_connect`` what connected to our output."""
        hook, out = self.on_connect, self._outport
        if not connect or hook is None or out is None:
            return
        try:
            if a.name == out.name or b.name == out.name:
                hook(b.name if a.name == out.name else a.name)
        except Exception as exc:
            print(f"riffd: port connect callback failed: {exc!r}", file=sys.stderr)

    def _dispatch_input(self) -> None:
        """Thread: deliver input events to the user callback, outside the JACK callback."""
        if self.realtime is not None:
            from riffd.daemon.realtime import INPUT_PRIORITY
            self.realtime.promote("input", INPUT_PRIORITY)
        while True:
            item = self._inq.get()
            if item is None:
                return
            data, frame, time_s = item
            try:
                self._deliver_frame(list(data), frame, time_s)
            except Exception as exc:  # a bad user callback must not kill MIDI input
                print(f"riffd: MIDI input callback failed: {exc!r}", file=sys.stderr)

    def _deliver_frame(self, message: list, frame: int, time_s: float) -> None:
        self._deliver(message, time_s)

    def _stop_dispatcher(self) -> None:
        if self._dispatcher is not None:
            self._inq.put(None)
            self._dispatcher.join(2.0)
            self._dispatcher = None

    def _drain(self, limit_s: float = 1.0) -> None:
        """Wait until every queued event has been written (the final note-offs of a stop),
        at most ``limit_s`` seconds; the process callback empties the queues."""
        deadline = time.monotonic() + limit_s
        while (self._incoming or self._pending) and time.monotonic() < deadline:
            time.sleep(self.latency_s / 4 or 0.001)
        # the last events are in this cycle's buffer: let JACK deliver it
        time.sleep(2 * self.latency_s)

    def _close(self) -> None:
        client = self._client
        was_alive = self._alive
        if was_alive:
            self._drain()
        self._alive = False
        self._shutdown_reason = "ports closed"
        try:
            if client is not None:
                if was_alive:
                    client.deactivate()  # after this the process callback no longer runs
                    self._outport.unregister()
                    self._inport.unregister()
                client.close()
        finally:
            self._client = None
            self._stop_dispatcher()
            # what is still queued cannot go out any more (server gone, or the drain timed out)
            self.dropped += len(self._incoming) + len(self._pending)
            self._incoming.clear()
            self._pending.clear()


# ------------------------------------------------------------------------------------- rtmidi

class RtMidiPorts(MidiPorts):
    """python-rtmidi virtual ports: ``api`` is ``"alsa"``, ``"coremidi"``, ``"windows"`` or ``"jack"``.

    rtmidi sends immediately, so a future ``at`` is held by a small timer thread and sent at
    ``at`` (latency_s = 0). Input times are ``time.monotonic()`` at arrival. Note that with the
    JACK API rtmidi makes a separate JACK client for input (``<client>-01``); use
    :class:`JackMidiPorts` for JACK.
    """

    def __init__(self, api: str, realtime=None) -> None:
        super().__init__(realtime)
        if api not in ("alsa", "coremidi", "windows", "jack"):
            raise ValueError(f"unknown rtmidi API {api!r}")
        self.api = api
        self._out = None
        self._in = None
        self._timer: threading.Thread | None = None
        self._cond = threading.Condition()
        self._heap: list = []
        self._seq = itertools.count()
        self._stopping = False

    def _open(self, client_name: str, out_name: str, in_name: str) -> None:
        if self.api == "windows" and not self.connect_out:
            raise MidiPortError("Windows MIDI has no virtual ports: install loopMIDI "
                                "(https://www.tobias-erichsen.de/software/loopmidi.html), create "
                                "two ports ('riffd out', 'riffd in') and start riffd with "
                                "--connect-out 'riffd out' --connect-in 'riffd in'")
        try:
            import rtmidi
        except ImportError as exc:
            raise MidiPortError(f"python-rtmidi is not installed ({exc}); pip install python-rtmidi") from exc
        api_id = {"alsa": rtmidi.API_LINUX_ALSA, "coremidi": rtmidi.API_MACOSX_CORE,
                  "jack": rtmidi.API_UNIX_JACK}[self.api]
        if api_id not in rtmidi.get_compiled_api():
            raise MidiPortError(f"python-rtmidi was built without {self.api} support")
        midi_out = midi_in = None
        try:
            midi_out = rtmidi.MidiOut(api_id, name=client_name)
            midi_in = rtmidi.MidiIn(api_id, name=client_name)
            out_port = self._open_port(midi_out, self.connect_out, out_name, "input")
            in_port = self._open_port(midi_in, self.connect_in, in_name, "output")
        except MidiPortError:
            for port in (midi_in, midi_out):
                if port is not None:
                    port.delete()
            raise
        except (SystemError, RuntimeError, rtmidi.RtMidiError) as exc:
            for port in (midi_in, midi_out):
                if port is not None:
                    port.close_port()
                    port.delete()
            hint = {"alsa": "load the ALSA sequencer: `sudo modprobe snd-seq` (needs /dev/snd/seq)",
                    "coremidi": "check that CoreMIDI is available (macOS only)",
                    "jack": "start a JACK server: `jackd -d dummy -r 48000 -p 256`"}[self.api]
            raise MidiPortError(f"cannot open {self.api} MIDI ports ({exc}); {hint}") from exc
        midi_in.set_callback(self._on_rtmidi_input)
        self._out, self._in = midi_out, midi_in
        self.out_port_name = out_port or f"{client_name}:{out_name}"
        self.in_port_name = in_port or f"{client_name}:{in_name}"
        self._stopping = False
        self._timer = threading.Thread(target=self._run_timer, name=f"{client_name}-midi-out", daemon=True)
        self._timer.start()

    @staticmethod
    def _open_port(port, existing: str | None, virtual_name: str, what: str) -> str | None:
        """Open the existing port named ``existing`` (its name is returned), or else a virtual
        port called ``virtual_name`` (None is returned). ``what``: "input" for an output's
        target, "output" for an input's source (as the other program sees it)."""
        if not existing:
            port.open_virtual_port(virtual_name)
            return None
        names = port.get_ports()
        index = find_port(existing, names, what)
        port.open_port(index, virtual_name)
        return names[index]

    def _on_rtmidi_input(self, event, _data) -> None:
        message, _delta = event
        self._deliver(list(message), time.monotonic())

    def _send(self, data: bytes, at: float | None) -> None:
        if at is None or at <= time.monotonic():
            with self._cond:  # serialise with the timer thread
                self._out.send_message(data)
            return
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._seq), data))
            self._cond.notify()

    def _run_timer(self) -> None:
        """Thread: send queued future messages when their time comes."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    at, _seq, data = heapq.heappop(self._heap)
                    if now - at > LATE_S:
                        self.late_events += 1
                    self._out.send_message(data)
                timeout = self._heap[0][0] - now if self._heap else None
                self._cond.wait(timeout)

    def _close(self) -> None:
        with self._cond:
            self._stopping = True
            # Flush what is still queued so no note-off is lost.
            while self._heap:
                self._out.send_message(heapq.heappop(self._heap)[2])
            self._cond.notify()
        if self._timer is not None:
            self._timer.join(2.0)
            self._timer = None
        for port in (self._in, self._out):
            if port is not None:
                port.close_port()
                port.delete()
        self._in = self._out = None


# ------------------------------------------------------------------------------------ factory

def _native_api(platform: str) -> str | None:
    if platform.startswith("linux"):
        return "alsa"
    if platform == "darwin":
        return "coremidi"
    if platform.startswith("win"):
        return "windows"
    return None


def _make(api: str, realtime=None, connect_out: str | None = None,
          connect_in: str | None = None) -> MidiPorts:
    ports = JackMidiPorts(realtime) if api == "jack" else RtMidiPorts(api, realtime)
    ports.connect_out, ports.connect_in = connect_out, connect_in
    return ports


ALSA_SEQUENCER = "/dev/snd/seq"


def open_midi_ports(api: str = "auto", client_name: str = "riffd", realtime=None,
                    reset: bool = True, connect_out: str | None = None,
                    connect_in: str | None = None) -> MidiPorts:
    """Open riffd's MIDI ports ``<client_name>:out`` and ``<client_name>:in``.

    Args:
        api: ``auto`` (the platform's native API, then JACK), ``alsa``, ``jack``, ``coremidi``
            or ``windows``.
        client_name: client name shown to other MIDI programs.
        realtime: a :class:`riffd.daemon.realtime.RealtimeState` for the input thread, or None.
        reset: send All Notes Off and All Sound Off on all 16 channels once open, so that the
            notes of a riffd that crashed end.
        connect_out, connect_in: existing ports (names, or unique parts of them) to send to
            and listen to: on JACK riffd's ports are connected to them (again after the server
            comes back); with rtmidi (Windows' loopMIDI) they are opened instead of virtual
            ports.

    Raises:
        MidiPortError: listing every API tried, why it failed and how to fix it.
    """
    if api not in API_NAMES:
        raise ValueError(f"api must be one of {', '.join(API_NAMES)}, not {api!r}")
    if api == "auto":
        native = _native_api(sys.platform)
        tries = [a for a in (native, "jack") if a is not None]
    else:
        tries = [api]
    failures = []
    for name in tries:
        if name == "alsa" and api == "auto" and not os.path.exists(ALSA_SEQUENCER):
            # without the sequencer device ALSA can only fail, after printing its own errors
            failures.append(f"  alsa: no ALSA sequencer ({ALSA_SEQUENCER} is missing: "
                            "`modprobe snd-seq`, or use JACK)")
            continue
        ports = _make(name, realtime, connect_out, connect_in)
        try:
            ports.open(client_name)
        except MidiPortError as exc:
            failures.append(f"  {name}: {exc}")
            continue
        if reset:
            ports.send_reset()
        return ports
    raise MidiPortError("could not open MIDI ports; tried:\n" + "\n".join(failures))
