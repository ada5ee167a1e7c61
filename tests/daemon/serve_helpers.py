"""Helpers for the tests that listen to riffd's MIDI output with a separate JACK client
(MidiPeer), most of them on ``riffd serve`` run as a child process."""
import time
from contextlib import contextmanager
from pathlib import Path

from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.process import DaemonProcess
from tests.waiting import wait_until

# JACK MIDI, 240 BPM, 2-bar phrases, 0.4 s of silence ends a played phrase: quick to hear
FAST = ["--midi-api", "jack", "--tempo", "240", "--length", "2", "--silence", "0.4",
        "--log-level", "WARNING"]


@contextmanager
def serving(args: list[str], log_path: Path):
    """``riffd serve ARGS`` as a child process, logging to ``log_path``; once the block ends
    (the daemon is shut down), it must have exited with status 0, else its log is shown."""
    with DaemonProcess(args, log_path=log_path) as daemon:
        yield daemon
    assert daemon.proc.returncode == 0, log_path.read_text()


@contextmanager
def restoring_peer(daemon: DaemonProcess, client: str, restore: dict):
    """A MidiPeer connected to ``CLIENT:out`` and ``CLIENT:in``; afterwards (also when the
    block fails) the daemon is stopped and ``restore`` (``set`` arguments) put back."""
    try:
        with MidiPeer(f"peer-{time.monotonic_ns()}") as peer:
            peer.connect(f"{client}:out", f"{client}:in")
            yield peer
    finally:
        with daemon.client() as c:
            c.stop()
            c.set(**restore)


def note_ons(received, channel: int | None = None) -> list:
    """The note-ons (status 0x9n, velocity > 0) among received MIDI messages; only those on
    ``channel`` (1–16) when it is given."""
    return [r for r in received if r.message[0] & 0xF0 == 0x90 and r.message[2] > 0
            and (channel is None or (r.message[0] & 0x0F) == channel - 1)]


def wait_quiet(peer: MidiPeer, seconds: float = 0.4, timeout: float = 5.0,
               counted=lambda received: True) -> None:
    """Wait until nothing ``counted`` (a test on each received message; default: all) has
    arrived at ``peer`` for ``seconds`` (at most ``timeout`` seconds in all)."""
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        now = len([r for r in peer.received() if counted(r)])
        if now == count:
            return
        count = now
        time.sleep(seconds)


def sounding(daemon: DaemonProcess, timeout: float = 3.0) -> int:
    """Notes the daemon has sent and not ended, by its own ``sounding`` counter, once it falls
    to 0 or ``timeout`` seconds pass (a listening client may miss a JACK cycle on a loaded
    machine, and with it a note-off)."""
    with daemon.client() as c:
        wait_until(lambda: c.status()["counters"]["sounding"] == 0, timeout)
        return c.status()["counters"]["sounding"]
