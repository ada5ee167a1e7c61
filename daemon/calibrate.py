"""``riffd calibrate``: measure the MIDI round trip through a loopback and suggest the
``output_latency_ms`` that makes riffd's notes land on the beat there.

It runs on its own, beside a running daemon or without one: it opens a JACK client of its own
(``riffd-calibrate:out`` and ``:in``), connects ``out`` to the port named by ``--to`` (the
input of something that echoes MIDI back: a synth's MIDI thru, an interface with a loopback
cable, a JACK client) and the ``--from`` port to ``in``, and sends ``--count`` pings, one at a
time: a note-on (velocity 1, channel 16 unless ``--channel``) and its note-off. A running
daemon's ports and notes are left alone, so a ping never sounds in the middle of its music.

Timing is counted in JACK frames, free of Python's scheduling: a ping is written at the first
frame of a process cycle and its echo is stamped with the frame at which it arrived. The round
trip of a loop through another JACK client includes one period that JACK adds itself (a
message that comes back to the client that sent it is read in the next cycle); the suggested
offset is the median round trip less that period, i.e. how late the echo came out of the other
side. Pings whose round trip spans a cycle JACK skipped are left out (counted).

The same module runs a stand-in synth for trying it: ``python -m riffd.daemon.calibrate echo
--delay-ms 20`` is a JACK client that sends everything it receives back out exactly that many
frames later.
"""
from __future__ import annotations

import argparse
import collections
import json
import queue
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass

from riffd.daemon.latency import MAX_OUTPUT_LATENCY_MS

DEFAULT_CLIENT = "riffd-calibrate"
PING_CHANNEL = 16          # MIDI channel of the pings (1..16)
PING_VELOCITY = 1          # as quiet as a note-on gets


class CalibrationError(RuntimeError):
    """The loop could not be measured; the message says what to check."""


@dataclass
class Calibration:
    """What ``riffd calibrate`` measured. Times in milliseconds."""

    pings: int                  # pings sent
    echoes: int                 # echoes that came back and were measured
    lost: int                   # pings with no echo within the timeout
    skipped: int                # pings left out: JACK skipped a cycle during their round trip
    median_ms: float            # round trip, median
    p99_ms: float               # round trip, 99th percentile
    min_ms: float
    max_ms: float
    period_ms: float            # one JACK period (what the loop itself adds)
    suggested_output_latency_ms: float
    round_trips_ms: list

    def text(self) -> str:
        """A short report for a musician."""
        return (f"round trip over {self.echoes} of {self.pings} pings: median "
                f"{self.median_ms:.2f} ms, p99 {self.p99_ms:.2f} ms (min {self.min_ms:.2f}, "
                f"max {self.max_ms:.2f}); {self.lost} lost, {self.skipped} left out "
                f"(JACK skipped a cycle)\n"
                f"JACK adds one period ({self.period_ms:.2f} ms) to a loop through another "
                f"client; the rest is the other side's latency\n"
                f"suggested output latency: {self.suggested_output_latency_ms:g} ms\n"
                f"  riffd serve --output-latency-ms {self.suggested_output_latency_ms:g}\n"
                f"  riffd ctl set output_latency_ms={self.suggested_output_latency_ms:g}"
                f"   (a running daemon; add voice=NAME for one voice)")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by the nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _open_client(name: str):
    """A JACK client called exactly ``name`` (no server is started)."""
    try:
        import jack
    except (ImportError, OSError) as exc:
        raise CalibrationError(f"JACK-Client or libjack is unavailable ({exc}); pip install "
                               "JACK-Client and install JACK (apt-get install jackd2)") from None
    try:
        return jack.Client(name, use_exact_name=True, no_start_server=True)
    except jack.JackOpenError as exc:
        raise CalibrationError(f"cannot open JACK client {name!r} ({exc}); is a JACK server "
                               "running (check JACK_DEFAULT_SERVER), and is no other client "
                               f"called {name!r}?") from None


class LoopMeter:
    """A JACK client that sends pings and stamps their echoes, in frames.

    The process callback writes a queued ping at offset 0 of its cycle (frame
    ``last_frame_time``) and hands back every echo note-on with its absolute frame.
    """

    def __init__(self, client_name: str = DEFAULT_CLIENT, channel: int = PING_CHANNEL):
        if not 1 <= channel <= 16:
            raise ValueError(f"the ping channel must be 1..16, not {channel}")
        self.channel = channel
        self._client = _open_client(client_name)
        self._out = self._client.midi_outports.register("out")
        self._in = self._client.midi_inports.register("in")
        self.rate = self._client.samplerate
        self.period = self._client.blocksize
        self._to_send: collections.deque = collections.deque()   # pitches to ping
        self.sent: queue.SimpleQueue = queue.SimpleQueue()       # (pitch, frame)
        self.echoes: queue.SimpleQueue = queue.SimpleQueue()     # (pitch, frame)
        self.skipped_cycles = 0
        self.xruns = 0
        self._next_frame: int | None = None
        self._client.set_process_callback(self._process)
        self._client.set_xrun_callback(self._on_xrun)
        self._client.activate()

    @property
    def out_port(self) -> str:
        return self._out.name

    @property
    def in_port(self) -> str:
        return self._in.name

    def connect(self, to: str, from_: str) -> None:
        """Connect our output to ``to`` and ``from_`` to our input; say which port is missing."""
        names = {p.name for p in self._client.get_ports(is_midi=True)}
        for port, flag in ((to, "--to"), (from_, "--from")):
            if port not in names:
                known = ", ".join(sorted(names - {self.out_port, self.in_port})) or "none"
                raise CalibrationError(f"{flag} {port}: there is no such JACK MIDI port; "
                                       f"MIDI ports now: {known}")
        try:
            self._client.connect(self._out, to)
            self._client.connect(from_, self._in)
        except Exception as exc:             # jack.JackError: e.g. two outputs
            raise CalibrationError(f"cannot connect {self.out_port} → {to} and {from_} → "
                                   f"{self.in_port} ({exc}): --to must name an input port "
                                   "(where the pings go in), --from an output port (where "
                                   "they come back)") from None

    def ping(self, pitch: int) -> None:
        """Ask the process callback to send one ping (note-on and note-off) next cycle."""
        self._to_send.append(pitch)

    def _process(self, frames: int) -> None:
        client = self._client
        first = client.last_frame_time
        if self._next_frame is not None and first > self._next_frame:
            self.skipped_cycles += (first - self._next_frame) // frames
        self._next_frame = first + frames
        on = 0x90 | (self.channel - 1)
        for offset, buffer in self._in.incoming_midi_events():
            data = bytes(buffer)                   # a cffi buffer indexes as bytes, not ints
            if len(data) == 3 and data[0] == on and data[2] > 0:
                self.echoes.put((data[1], first + offset))
        self._out.clear_buffer()
        if self._to_send:
            pitch = self._to_send.popleft()
            self._out.write_midi_event(0, bytes((on, pitch, PING_VELOCITY)))
            self._out.write_midi_event(min(1, frames - 1),
                                       bytes((0x80 | (self.channel - 1), pitch, 0)))
            self.sent.put((pitch, first))

    def _on_xrun(self, _delay_us: float) -> None:
        self.xruns += 1

    def close(self) -> None:
        try:
            self._client.deactivate()
        finally:
            self._client.close()

    def __enter__(self) -> "LoopMeter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def measure(meter: LoopMeter, count: int = 20, interval_s: float = 0.05,
            timeout_s: float = 0.5) -> Calibration:
    """Send ``count`` pings through ``meter``'s loop, one at a time (``interval_s`` seconds
    apart, each waited for at most ``timeout_s``), and summarise the round trips."""
    round_trips, lost, skipped = [], 0, 0
    for i in range(count):
        pitch = i % 128
        skips_before = meter.skipped_cycles
        meter.ping(pitch)
        try:
            _, sent = meter.sent.get(timeout=timeout_s)
        except queue.Empty:
            raise CalibrationError("the JACK client is not being run (no process cycle in "
                                   f"{timeout_s:g} s); is the JACK server running?") from None
        deadline = time.monotonic() + timeout_s
        echo = None
        while echo is None:
            try:
                got, frame = meter.echoes.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if got == pitch and frame >= sent:
                echo = frame                        # an older echo (a lost ping's) is dropped
        if echo is None:
            lost += 1
        elif meter.skipped_cycles != skips_before:
            skipped += 1
        else:
            round_trips.append(1000.0 * (echo - sent) / meter.rate)
        time.sleep(interval_s)
    if not round_trips:
        raise CalibrationError(f"no echo came back on {meter.in_port} ({lost} of {count} pings "
                               "lost): check that the --to port echoes MIDI (MIDI thru on, or a "
                               "loopback cable) to the --from port")
    period_ms = 1000.0 * meter.period / meter.rate
    median = statistics.median(round_trips)
    suggested = max(-MAX_OUTPUT_LATENCY_MS,
                    min(MAX_OUTPUT_LATENCY_MS, round(median - period_ms, 1)))
    return Calibration(pings=count, echoes=len(round_trips), lost=lost, skipped=skipped,
                       median_ms=median, p99_ms=percentile(round_trips, 0.99),
                       min_ms=min(round_trips), max_ms=max(round_trips), period_ms=period_ms,
                       suggested_output_latency_ms=suggested, round_trips_ms=round_trips)


# ------------------------------------------------------------------------------- echo client

class Echo:
    """A JACK client (``<name>:in`` → ``<name>:out``) that sends every MIDI message it receives
    back out exactly ``delay_frames`` frames later: a stand-in for a synth with a known latency.
    """

    def __init__(self, name: str = "riffd-echo", delay_frames: int = 960):
        if delay_frames < 0:
            raise ValueError(f"the echo delay must be 0 frames or more, not {delay_frames}")
        self.delay_frames = delay_frames
        self._client = _open_client(name)
        self._in = self._client.midi_inports.register("in")
        self._out = self._client.midi_outports.register("out")
        self._pending: collections.deque = collections.deque()   # (frame, bytes), in order
        self.echoed = 0
        self._client.set_process_callback(self._process)
        self._client.activate()

    @property
    def in_port(self) -> str:
        return self._in.name

    @property
    def out_port(self) -> str:
        return self._out.name

    def _process(self, frames: int) -> None:
        first = self._client.last_frame_time
        for offset, data in self._in.incoming_midi_events():
            self._pending.append((first + offset + self.delay_frames, bytes(data)))
        self._out.clear_buffer()
        pending = self._pending
        while pending and pending[0][0] < first + frames:
            due, data = pending.popleft()
            self._out.write_midi_event(max(0, due - first), data)   # late (a skip): at once
            self.echoed += 1

    def close(self) -> None:
        try:
            self._client.deactivate()
        finally:
            self._client.close()


# ------------------------------------------------------------------------------------- CLI

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Measure the MIDI round trip through a loopback (riffd-calibrate:out → "
                     "--to … echo … --from → riffd-calibrate:in) over JACK and suggest "
                     "output_latency_ms. Runs beside a running daemon without touching it.")
    p.add_argument("--to", required=True, metavar="PORT",
                   help="JACK MIDI port that receives the pings: the input of the synth or "
                        "interface that echoes them (e.g. system:midi_playback_1)")
    p.add_argument("--from", dest="from_", required=True, metavar="PORT",
                   help="JACK MIDI port the echoes come back from (e.g. system:midi_capture_1)")
    p.add_argument("--count", type=int, default=20, help="pings to send (default 20)")
    p.add_argument("--interval-ms", type=float, default=50.0,
                   help="pause after each ping, ms (default 50)")
    p.add_argument("--timeout-ms", type=float, default=500.0,
                   help="how long to wait for each echo, ms (default 500)")
    p.add_argument("--channel", type=int, default=PING_CHANNEL,
                   help="MIDI channel of the pings (default 16; note-ons at velocity 1)")
    p.add_argument("--client-name", default=DEFAULT_CLIENT,
                   help=f"JACK client name (default {DEFAULT_CLIENT})")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.count <= 10000:
        print(f"riffd calibrate: --count must be 1..10000, not {args.count}", file=sys.stderr)
        return 2
    try:
        with LoopMeter(args.client_name, args.channel) as meter:
            meter.connect(args.to, args.from_)
            time.sleep(0.05)                         # the connections take effect
            result = measure(meter, args.count, args.interval_ms / 1000.0,
                             args.timeout_ms / 1000.0)
    except (CalibrationError, ValueError) as exc:
        print(f"riffd calibrate: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(result)) if args.json else result.text())
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m riffd.daemon.calibrate echo --delay-ms MS [--name NAME]``: run an echo client
    until SIGTERM or SIGINT (prints one JSON line ``{"ready": in_port, "out": out_port}``).
    Any other arguments are those of ``riffd calibrate``."""
    import signal
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["echo"]:
        parser = argparse.ArgumentParser(prog="riffd calibrate")
        add_arguments(parser)
        return run(parser.parse_args(argv))
    parser = argparse.ArgumentParser(prog="python -m riffd.daemon.calibrate echo",
                                     description=Echo.__doc__)
    parser.add_argument("--delay-ms", type=float, default=20.0,
                        help="how much later each message goes back out, ms (default 20)")
    parser.add_argument("--name", default="riffd-echo", help="JACK client name")
    args = parser.parse_args(argv[1:])
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        client = _open_client(args.name)      # only to read the rate: frames from ms
        rate = client.samplerate
        client.close()
        echo = Echo(args.name, round(args.delay_ms * rate / 1000.0))
    except (CalibrationError, ValueError) as exc:
        print(f"riffd echo: {exc}", file=sys.stderr)
        return 1
    try:
        print(json.dumps({"ready": echo.in_port, "out": echo.out_port, "rate": rate,
                          "delay_frames": echo.delay_frames}), flush=True)
        done.wait()
    finally:
        echo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
