"""The JACK sink: the audio voice's ring played through JACK audio ports of riffd's own.

One JACK-Client client ``client_name`` (``<riffd's --client-name>-audio``) with ports
``out_0`` / ``out_1``, connected to ``system:playback_*`` when those exist. Its process
callback (JACK's real-time thread, once per period of ``blocksize`` frames) fills ``out_0``
with :meth:`riffd.daemon.audio_sink.AudioSink.render`, the block logic every sink shares, and copies
it to the other ports. JACK xruns seen by this client are counted in ``device_underflows``.

Unlike PortAudio, this sink survives its server: when JACK goes away the shutdown callback
only marks the sink gone (``server_gone``, ``reason``); :meth:`JackAudioOutput.reopen`, called
from the daemon's retry loop, makes a new client with the same name and ports on the server
that came back, connects them again and carries on where it was (playing if it played: the
ring and the play state live in this object, not in the client).

One rule for a process with several JACK clients (riffd's MIDI ports, this sink): after the
server died, every dead client must be closed before any new one is opened. libjack's first
``jack_client_open`` after a server death frees all clients still allocated in the process, so
closing one of those later touches freed memory (measured with JACK2 1.9.21: a segfault).
Hence :meth:`JackAudioOutput.release`, called as soon as the loss is seen, and the daemon
re-opens this sink only once its MIDI ports have let go of their dead client too.
"""
from __future__ import annotations

import logging

from riffd.daemon.audio_sink import AudioSink, AudioUnavailable

log = logging.getLogger(__name__)

START_JACK_HINT = ("start the JACK server (`jackd -d dummy -r 48000 -p 256`, or your sound "
                   "card's driver; check JACK_DEFAULT_SERVER)")


class JackServerMissing(AudioUnavailable):
    """No JACK server answers (riffd may use another output, or wait for it)."""


def jack_module():
    """The ``jack`` module (JACK-Client); AudioUnavailable naming the fix without it."""
    try:
        import jack
    except (ImportError, OSError) as exc:      # OSError: libjack itself is missing
        raise AudioUnavailable(f"JACK-Client or libjack is unavailable ({exc}); pip install "
                               "JACK-Client and install JACK (apt-get install jackd2)") from exc
    return jack


class JackAudioOutput(AudioSink):
    """The ring (mono) on ``channels`` JACK output ports ``<client_name>:out_<i>``.

    client_name: the JACK client's exact name. connect: connect the ports to the physical
    playback ports (``system:playback_*``) when there are any. fade_seconds, ring_seconds:
    see :class:`AudioSink`. The rate is the server's (Hz).
    """

    backend = "jack"

    def __init__(self, client_name: str = "riffd-audio", channels: int = 2,
                 fade_seconds: float = 0.005, ring_seconds: float = 2.0,
                 connect: bool = True):
        super().__init__(fade_seconds, ring_seconds)
        self.client_name = client_name
        self.channels = max(1, int(channels))
        self.connect = connect
        self.device_name = "JACK"
        self.port_names: list[str] = []
        self.opened = 0                  # times a client was opened (re-opens included)
        self.process_errors = 0          # exceptions caught in the process callback
        self.last_process_error = ""
        self._client = None
        self._ports: list = []
        self._alive = False              # the client runs (cleared by the shutdown callback)
        self._gone = ""                  # why the server went away, until re-opened

    # --- control side --------------------------------------------------------------------
    def open(self) -> "JackAudioOutput":
        """Open the client and its ports (silent until :meth:`play`); AudioUnavailable when
        no JACK server runs or the name is taken."""
        client = self._new_client()
        try:
            self._prepare(client.samplerate)
        except Exception:
            client.close()
            raise
        self._start(client)
        return self

    def reopen(self) -> "JackAudioOutput":
        """After the server went away: a new client with the same name and ports on the
        server that is back, connected again; playing carries on if it played. A running
        client is kept. AudioUnavailable while the server is still missing (call again)."""
        if self.active:
            return self
        self._drop_client()
        client = self._new_client()
        if client.samplerate != self.samplerate:
            rate = client.samplerate
            client.close()
            raise AudioUnavailable(f"the JACK server came back at {rate} Hz, not "
                                   f"{self.samplerate} Hz: start it at {self.samplerate} Hz "
                                   "(jackd ... -r RATE), or restart riffd to follow the new rate")
        self._start(client)
        return self

    def release(self) -> None:
        """Close the client at once when its server went away (see the module docstring);
        :meth:`reopen` makes a new one later. Nothing happens while the client runs."""
        if self._gone and self._client is not None:
            self._drop_client()

    def close(self) -> None:
        """Leave the JACK graph (a client whose server died is only released)."""
        self._drop_client()
        self._gone = ""

    def __enter__(self) -> "JackAudioOutput":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def active(self) -> bool:
        return self._client is not None and self._alive

    @property
    def server_gone(self) -> bool:
        return bool(self._gone)

    @property
    def reason(self) -> str:
        if self.active:
            return ""
        if self._gone:
            return f"the JACK server went away ({self._gone})"
        return "the audio output is closed"

    @property
    def latency_seconds(self) -> float:
        """One period, s: what riffd adds before JACK's own playback latency."""
        return self.blocksize / self.samplerate if self.samplerate else 0.0

    def _new_client(self):
        jack = jack_module()
        try:
            return jack.Client(self.client_name, use_exact_name=True, no_start_server=True)
        except jack.JackOpenError as exc:
            if exc.status.name_not_unique:
                raise AudioUnavailable(
                    f"the JACK client name {self.client_name!r} is taken (another riffd?): "
                    "give this riffd another --client-name") from exc
            raise JackServerMissing(f"no JACK server to open {self.client_name!r} on ({exc}): "
                                    f"{START_JACK_HINT}") from exc

    def _start(self, client) -> None:
        """Register the ports, set the callbacks, activate, connect."""
        try:
            ports = [client.outports.register(f"out_{i}") for i in range(self.channels)]
            client.set_process_callback(self._process)
            client.set_shutdown_callback(self._on_shutdown)
            client.set_xrun_callback(self._on_xrun)
            client.set_blocksize_callback(self._on_blocksize)
            self.blocksize = client.blocksize
            self._ports, self._client = ports, client
            self._gone, self._alive = "", True
            client.activate()
        except Exception as exc:
            self._alive, self._client, self._ports = False, None, []
            client.close()
            raise AudioUnavailable(f"cannot set up the JACK audio ports of "
                                   f"{self.client_name!r} ({exc}): {START_JACK_HINT}") from exc
        self.opened += 1
        self.port_names = [p.name for p in ports]
        if self.connect:
            self._connect_playback(client, ports)
        log.info("audio output: JACK ports %s at %d Hz, %d-frame periods",
                 ", ".join(self.port_names), self.samplerate, self.blocksize)

    @staticmethod
    def _connect_playback(client, ports) -> None:
        """out_0 → system:playback_1, out_1 → playback_2, … (as many as there are)."""
        try:
            playback = client.get_ports(is_audio=True, is_input=True, is_physical=True)
        except Exception as exc:
            log.warning("audio output: cannot list JACK playback ports (%s)", exc)
            return
        for port, target in zip(ports, playback):
            try:
                client.connect(port, target)
            except Exception as exc:       # already connected, or the port left meanwhile
                log.warning("audio output: cannot connect %s to %s (%s)", port.name,
                            target.name, exc)

    def _drop_client(self) -> None:
        client, was_alive = self._client, self._alive
        self._alive, self._client, self._ports = False, None, []
        if client is None:
            return
        try:
            if was_alive:
                client.deactivate()      # after this the process callback no longer runs
            client.close()
        except Exception as exc:         # the server died under it: nothing left to release
            log.debug("audio output: closing the old JACK client: %s", exc)

    # --- JACK's threads --------------------------------------------------------------------
    def _process(self, frames: int) -> None:
        """JACK's process callback: one period. An exception escaping it would stop
        JACK-Client calling it for good, so it is counted and the next period runs again."""
        try:
            ports = self._ports
            out = ports[0].get_array()                 # (frames,) float32, JACK's buffer
            self.render(out)
            for port in ports[1:]:
                port.get_array()[:] = out
        except Exception as exc:
            self.process_errors += 1
            self.last_process_error = repr(exc)

    def _on_shutdown(self, status, reason: str) -> None:
        # Runs on a JACK thread, like a signal handler: only set flags.
        self._gone = reason or "shutdown"
        self._alive = False

    def _on_xrun(self, delayed_usecs: float) -> None:
        self.device_underflows += 1

    def _on_blocksize(self, blocksize: int) -> None:
        self.blocksize = blocksize                     # render() takes any length


__all__ = ["JackAudioOutput", "JackServerMissing", "START_JACK_HINT", "jack_module"]
