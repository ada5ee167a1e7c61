"""The OSC server: one thread that owns a UDP socket and answers the protocol's commands sent as
OSC messages (Max, Pd, SuperCollider, TouchOSC), beside the ZeroMQ control server.

Each message is read by :mod:`riffd.daemon.osc_map` into the protocol's request and checked by
:func:`riffd.daemon.protocol.decode_request` (the same checks, error codes and messages as ZeroMQ),
then handed to ``handler(cmd, args)``, the daemon's command router. Slow commands (load_model,
add_voice, list_models) come back as a :class:`riffd.daemon.slow_work.Deferred`: they run on this
server's worker thread and answer when done, while the OSC thread goes on serving. ``ping`` is
answered here. Replies go to the sender, or to ``reply_to`` when one is configured; events go to
``events_to`` and to every client that sent ``/riffd/subscribe``.

Nothing a packet holds may end the thread: a packet that is not OSC gets a ``not_osc`` error
reply and is counted; any failure inside is answered ``internal`` and counted.

Exposure: OSC has no authentication; whoever can send to the port controls riffd. The endpoint
must be a loopback address (any local user can still reach a UDP port there) unless
``allow_remote`` is set, which logs a warning (docs/osc.md, "Who can reach it").
"""
from __future__ import annotations

import ipaddress
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from riffd.daemon import osc_map
from riffd.daemon.protocol import ProtocolError
from riffd.daemon.slow_work import Deferred, SlowWorker

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Any]
POLL_TIMEOUT_S = 0.05       # longest the thread sleeps before it looks at the stop flag, seconds
MAX_SUBSCRIBERS = 16        # clients that may ask for events with /riffd/subscribe
RECV_BYTES = 65536          # larger than any UDP datagram


class OscEndpointError(ValueError):
    """An OSC address riffd will not use; the message says why and what to write instead."""


class OscBindError(OSError):
    """The OSC socket could not be bound (usually: the port is in use)."""


def parse_udp(url: str, what: str = "--osc") -> tuple[str, int]:
    """``udp://HOST:PORT`` (``udp://[::1]:PORT`` for IPv6) → (host, port)."""
    scheme, sep, rest = url.partition("://")
    host, _, port = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if sep == "" or scheme.lower() != "udp" or not host or not port.isdigit() \
            or not 0 <= int(port) <= 65535:
        raise OscEndpointError(f"{what} {url!r} is not an OSC address; write "
                               f"udp://127.0.0.1:PORT (a port 1-65535)")
    return host, int(port)


def _resolve(host: str, port: int, what: str) -> list[tuple]:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise OscEndpointError(f"{what}: cannot resolve host {host!r} ({exc.strerror}); "
                               f"write an address such as 127.0.0.1") from None


def check_endpoint(url: str, allow_remote: bool = False) -> tuple[str, int]:
    """Check the ``--osc`` endpoint before anything starts: a loopback host, or any host with
    ``allow_remote``. Returns (host, port); raises :class:`OscEndpointError`."""
    host, port = parse_udp(url)
    if not allow_remote:
        addresses = {info[4][0] for info in _resolve(host, port, "--osc")}
        remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0])
                        .is_loopback)
        if remote:
            raise OscEndpointError(
                f"--osc {url}: {remote[0]} is reachable from other machines, and OSC has no "
                f"authentication: anyone who can send to it would control riffd. Use "
                f"udp://127.0.0.1:{port}, or add --osc-allow-remote on a network you trust "
                f"(see docs/osc.md)")
    return host, port


class OscServer:
    """Serve OSC on ``endpoint`` (``udp://127.0.0.1:PORT``; port 0 picks a free one, see
    :attr:`address`). ``reply_to`` / ``events_to``: ``udp://HOST:PORT`` targets for every
    reply / every event ("" = replies to the sender, events to subscribers only).
    Use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self, handler: Handler, endpoint: str, reply_to: str = "",
                 events_to: str = "", allow_remote: bool = False):
        self._handler = handler
        self._host, self._port = check_endpoint(endpoint, allow_remote)
        self._allow_remote = allow_remote
        self._reply_to = self._target(reply_to, "--osc-reply") if reply_to else None
        self._events_to = self._target(events_to, "--osc-events") if events_to else None
        self._subscribers: tuple[tuple, ...] = ()        # replaced whole, read without a lock
        self._lock = threading.Lock()                    # counters and subscribers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._worker = SlowWorker("riffd-osc-slow-work")
        self.address = ""
        self.requests = 0           # OSC messages read (answered, well-formed or not)
        self.errors = 0             # error replies sent (not_osc included)
        self.malformed = 0          # packets that were not OSC riffd can read
        self.internal_errors = 0    # messages answered `internal`
        self.replies_dropped = 0    # replies that could not be sent
        self.events_sent = 0        # event datagrams sent (one per target)
        self.events_dropped = 0     # event datagrams that could not be sent

    @staticmethod
    def _target(url: str, what: str) -> tuple:
        host, port = parse_udp(url, what)
        if port == 0:
            raise OscEndpointError(f"{what} {url}: name the port the client listens on")
        return _resolve(host, port, what)[0][4]

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> OscServer:
        """Bind the socket (raising :class:`OscBindError`) and start the thread."""
        if self._thread is not None:
            raise RuntimeError("OscServer already started")
        info = _resolve(self._host, self._port, "--osc")[0]
        sock = socket.socket(info[0], socket.SOCK_DGRAM)
        try:
            sock.bind(info[4])
        except OSError as exc:
            sock.close()
            raise OscBindError(exc.errno, f"cannot bind OSC to udp://{self._host}:{self._port}: "
                                          f"{exc.strerror}; is another riffd (or another "
                                          f"program) using it? Pick another port with "
                                          f"`riffd serve --osc udp://127.0.0.1:PORT`") from None
        sock.setblocking(False)
        host, port = sock.getsockname()[:2]
        self.address = f"udp://[{host}]:{port}" if ":" in host else f"udp://{host}:{port}"
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="riffd-osc", daemon=True)
        self._thread.start()
        if self._allow_remote:
            log.warning("OSC on %s with --osc-allow-remote: OSC has no authentication, anyone "
                        "who can reach this port controls riffd", self.address)
        log.info("OSC on %s", self.address)
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread (within ``timeout_s`` seconds) and close the socket."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("OSC thread did not stop within %.1f s", timeout_s)
        self._thread = None
        self._worker.stop()
        sock, self._sock = self._sock, None
        sock.close()

    def __enter__(self) -> OscServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def status(self) -> dict[str, Any]:
        """The ``osc`` part of the daemon's status."""
        with self._lock:
            return {"on": True, "address": self.address, "requests": self.requests,
                    "errors": self.errors, "malformed": self.malformed,
                    "internal_errors": self.internal_errors,
                    "replies_dropped": self.replies_dropped, "events_sent": self.events_sent,
                    "events_dropped": self.events_dropped,
                    "subscribers": len(self._subscribers) + (self._events_to is not None)}

    # --- events ----------------------------------------------------------------------------

    def publish(self, name: str, data: dict[str, Any]) -> None:
        """Send an event to the events target and the subscribers, from any thread, without
        blocking (a full socket buffer drops the datagram and counts it)."""
        targets = self._subscribers
        if self._events_to is not None:
            targets = (self._events_to, *targets)
        sock = self._sock
        if not targets or sock is None:
            return
        try:
            dgram = osc_map.event(name, data)
        except Exception:               # an event riffd cannot write as OSC: a bug, say so once
            log.exception("OSC: event %s could not be encoded", name)
            return
        sent = 0
        for target in targets:
            try:
                sock.sendto(dgram, target)
                sent += 1
            except OSError:             # buffer full, or a subscriber that went away
                pass
        with self._lock:
            self.events_sent += sent
            self.events_dropped += len(targets) - sent

    # --- server thread ---------------------------------------------------------------------

    def _run(self) -> None:
        sock = self._sock
        try:
            while not self._stop.is_set():
                try:
                    ready, _, _ = select.select([sock], [], [], POLL_TIMEOUT_S)
                except (OSError, ValueError):
                    return                          # the socket was closed under us
                if not ready:
                    continue
                for _ in range(64):                 # then look at the stop flag again
                    try:
                        dgram, sender = sock.recvfrom(RECV_BYTES)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as exc:          # an ICMP error reported on the socket
                        log.debug("OSC receive: %s", exc)
                        break
                    try:
                        self._serve(dgram, sender)
                    except Exception:               # nothing a packet does may end the thread
                        log.exception("OSC packet failed outside every handler")
                        self._count(internal=1, errors=1)
        finally:
            log.debug("OSC thread stopped")

    def _serve(self, dgram: bytes, sender: tuple) -> None:
        try:
            messages = osc_map.read_packet(dgram)
        except osc_map.NotOsc as exc:
            self._count(requests=1, malformed=1, errors=1)
            self._send(osc_map.reply_error("", None, "not_osc",
                                           f"the packet is not OSC riffd can read: {exc}"),
                       sender)
            return
        for message in messages:
            self._serve_message(message, sender)

    def _serve_message(self, message, sender: tuple) -> None:
        self._count(requests=1)
        cmd, req_id = message.address, None
        try:
            parsed = osc_map.to_request(message.address, message.params)
            cmd = parsed.cmd
            if parsed.request is None:
                result = self._subscription(cmd, sender)
            else:
                req_id = parsed.request.id
                if cmd == "ping":
                    result = {"pong": True, "time": time.monotonic()}
                else:
                    result = self._handler(cmd, parsed.request.args)
                if isinstance(result, Deferred):
                    self._worker.submit(lambda: self._finish(result, cmd, req_id, sender))
                    return
            payload = self._ok(cmd, req_id, result)
        except ProtocolError as exc:
            payload = self._error(cmd, exc.id if exc.id is not None else req_id, exc.code,
                                  exc.message)
        except Exception as exc:
            payload = self._internal(cmd, req_id, exc)
        self._send(payload, sender)

    def _finish(self, deferred: Deferred, cmd: str, req_id, sender: tuple) -> None:
        """Worker thread: run slow work and send its reply (a UDP socket may send from any
        thread)."""
        try:
            payload = self._ok(cmd, req_id, deferred.work())
        except ProtocolError as exc:
            payload = self._error(cmd, req_id, exc.code, exc.message)
        except Exception as exc:
            payload = self._internal(cmd, req_id, exc)
        self._send(payload, sender)

    def _subscription(self, verb: str, sender: tuple) -> dict[str, Any]:
        with self._lock:
            subs = [s for s in self._subscribers if s != sender]
            if verb == "subscribe":
                if len(subs) >= MAX_SUBSCRIBERS:
                    raise ProtocolError("unavailable", f"subscribe: {MAX_SUBSCRIBERS} clients "
                                                       f"already get events; one of them must "
                                                       f"send /riffd/unsubscribe first")
                subs.append(sender)
            self._subscribers = tuple(subs)
            return {"subscribed": verb == "subscribe", "subscribers": len(subs)}

    def _ok(self, cmd: str, req_id, result) -> bytes:
        if result is None:
            result = {}
        try:
            if not isinstance(result, dict):
                raise TypeError(f"handler returned {type(result).__name__}, expected a dict")
            payload = osc_map.reply_ok(cmd, req_id, result)
        except Exception as exc:                    # a result that is not JSON (a bug)
            return self._internal(cmd, req_id, exc)
        if len(payload) > osc_map.MAX_DATAGRAM_BYTES:
            return self._error(cmd, req_id, "unavailable",
                               f"{cmd}: the reply is {len(payload)} bytes, more than one UDP "
                               f"datagram holds; ask over ZeroMQ instead: riffd ctl {cmd}")
        return payload

    def _error(self, cmd: str, req_id, code: str, message: str) -> bytes:
        self._count(errors=1)
        return osc_map.reply_error(cmd, req_id, code, message)

    def _internal(self, cmd: str, req_id, exc: Exception) -> bytes:
        log.error("OSC command %r failed", cmd, exc_info=exc)
        self._count(internal=1)
        return self._error(cmd, req_id, "internal",
                           f"{cmd or 'request'} failed: {type(exc).__name__}: {exc}")

    def _send(self, payload: bytes, sender: tuple) -> None:
        sock = self._sock
        try:
            sock.sendto(payload, self._reply_to or sender)
        except (OSError, AttributeError) as exc:
            log.debug("OSC reply dropped: %s", exc)
            self._count(replies_dropped=1)

    def _count(self, requests=0, errors=0, malformed=0, internal=0, replies_dropped=0) -> None:
        with self._lock:
            self.requests += requests
            self.errors += errors
            self.malformed += malformed
            self.internal_errors += internal
            self.replies_dropped += replies_dropped
