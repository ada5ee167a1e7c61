"""The control server: one thread that owns the ROUTER (requests) and PUB (events) sockets.

Requests are decoded and validated by :mod:`riffd.daemon.protocol`, then handed to
``handler(cmd, args) -> dict``, which runs on the server thread and must return quickly: slow
work (loading a model) is returned as a :class:`riffd.daemon.slow_work.Deferred`, run on the server's
worker thread, and answered from the server thread when it is done, while other requests are
served. ``ping`` is answered by the server itself, so it tells a script that the control thread is
alive even while the rest of the daemon is busy.

Every request gets exactly one reply: decoding, the handler and encoding are guarded, a failure
is answered ``internal`` (counted in :attr:`ControlServer.internal_errors`), and when even that
reply cannot be encoded a fixed ASCII ``internal`` reply goes out.

Events can be published from any thread: :meth:`ControlServer.publish` encodes the event and
pushes it, under a lock, down an inproc PUSH socket; the server thread polls the other end together
with the ROUTER and forwards events to PUB as soon as they arrive (well under a millisecond).
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from riffd.daemon.auth import ServerSecurity, default_endpoint, ipc_path, transport
from riffd.daemon.protocol import (
    MAX_MESSAGE_BYTES, PROTOCOL_VERSION, ProtocolError, decode_request, encode_event,
    encode_reply_error, encode_reply_ok,
)
from riffd.daemon.slow_work import Deferred, SlowWorker

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], "dict[str, Any] | None"]

REPLY_LINGER_MS = 500  # how long queued replies may take to leave at stop, ms
POLL_TIMEOUT_S = 0.05  # longest the loop sleeps before it looks at the stop flag, seconds
# libzmq drops a connection that sends a frame bigger than this. It is well above
# MAX_MESSAGE_BYTES so that a request a little too large still gets a `too_large` reply.
ROUTER_MAX_FRAME_BYTES = 4 * MAX_MESSAGE_BYTES  # 1 MiB
EVENT_QUEUE_MESSAGES = 10000  # events waiting for the server thread before publish() drops them

_instances = itertools.count()


_REPLY_TAG = b"reply"   # marks a deferred reply on the inproc queue (events never start b"")


def _envelope(frames: list[bytes]) -> list[bytes]:
    """The routing frames of a ROUTER message: [identity] or [identity, b""] (REQ)."""
    return frames[:2] if len(frames) >= 2 and frames[1] == b"" else frames[:1]


def _fallback_reply(req_id: Any) -> bytes:
    """A fixed ASCII `internal` reply for when even an error reply cannot be encoded."""
    try:
        shown = json.dumps(req_id if isinstance(req_id, (str, int)) else None)
        shown.encode("ascii")
    except Exception:
        shown = "null"
    return (b'{"v":%d,"id":%s,"ok":false,"error":{"code":"internal","message":'
            b'"the daemon could not encode its reply; see its log"}}'
            % (PROTOCOL_VERSION, shown.encode("ascii")))


class ControlBindError(OSError):
    """A control or event endpoint could not be bound (usually: the port is in use)."""


class ControlServer:
    """Serve control requests on ``router_endpoint`` and publish events on ``pub_endpoint``.

    Endpoints may use a wildcard port (``tcp://127.0.0.1:*``); :attr:`router_address` and
    :attr:`pub_address` give the bound addresses. Use as a context manager or call
    :meth:`start` / :meth:`stop`.

    An empty or None endpoint is the default: an ipc socket in the user's private runtime folder
    (:func:`riffd.daemon.auth.default_endpoint`). Every tcp endpoint is a CURVE server that admits the
    keys allowed in ``config_dir`` (:mod:`riffd.daemon.auth`, default ~/.config/riffd). Without a
    ``context`` the server has a context of its own (a ZAP authenticator is one per context).
    """

    def __init__(self, handler: Handler, router_endpoint: str | None = None,
                 pub_endpoint: str | None = None, context: zmq.Context | None = None,
                 config_dir=None):
        self._handler = handler
        self._router_endpoint = router_endpoint
        self._pub_endpoint = pub_endpoint
        self._own_ctx = context is None
        self._ctx = context
        self._config_dir = config_dir
        self._security: ServerSecurity | None = None
        self._wake_endpoint = f"inproc://riffd-control-events-{next(_instances)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The PUSH end is shared by every publishing thread; the lock serializes its use.
        self._push_lock = threading.Lock()
        self._push: zmq.Socket | None = None
        self.router_address: str | None = None
        self.pub_address: str | None = None
        self.requests = 0          # requests received (answered, well-formed or not)
        self.errors = 0            # error replies sent
        self.events_published = 0  # events forwarded to PUB
        self.events_dropped = 0    # events publish() could not hand over
        self.internal_errors = 0   # requests answered `internal` (a handler or encoder failed)
        self._count_lock = threading.Lock()     # counters change on the worker thread too
        self._worker = SlowWorker()             # runs Deferred work (model loading)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the sockets (raising :class:`ControlBindError` on failure) and start the thread."""
        if self._thread is not None:
            raise RuntimeError("ControlServer already started")
        sockets: list[zmq.Socket] = []
        router_endpoint = self._router_endpoint or default_endpoint("control")
        pub_endpoint = self._pub_endpoint or default_endpoint("events")
        if self._own_ctx:
            self._ctx = zmq.Context()
        self._security = ServerSecurity(self._ctx, self._config_dir)
        try:
            # refuse an unsafe endpoint before anything is bound
            self._security.check(router_endpoint, "--control")
            self._security.check(pub_endpoint, "--events")
            router = self._socket(zmq.ROUTER, sockets)
            router.setsockopt(zmq.MAXMSGSIZE, ROUTER_MAX_FRAME_BYTES)
            self._security.secure(router, router_endpoint)
            self.router_address = self._bind(router, router_endpoint, "control", "--control")
            pub = self._socket(zmq.PUB, sockets)
            self._security.secure(pub, pub_endpoint)
            self.pub_address = self._bind(pub, pub_endpoint, "events", "--events")
            pull = self._socket(zmq.PULL, sockets)
            pull.bind(self._wake_endpoint)
            push = self._socket(zmq.PUSH, sockets)
            push.setsockopt(zmq.SNDHWM, EVENT_QUEUE_MESSAGES)
            push.connect(self._wake_endpoint)
        except BaseException:
            for s in sockets:
                s.close(linger=0)
            self._release()
            raise
        self._push = push
        self._stop.clear()
        # The sockets move to the server thread here; Thread.start() is the memory barrier
        # that libzmq asks for when a socket changes threads.
        self._thread = threading.Thread(target=self._run, args=(router, pub, pull),
                                        name="riffd-control", daemon=True)
        self._thread.start()
        log.info("control on %s, events on %s", self.router_address, self.pub_address)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread (within ``timeout_s`` seconds) and close the sockets."""
        if self._thread is None:
            return
        self._stop.set()
        with self._push_lock:
            try:
                self._push.send(b"", zmq.NOBLOCK)  # wake the poll now rather than at its timeout
            except zmq.Again:
                pass
            self._push.close(linger=0)
            self._push = None
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("control thread did not stop within %.1f s", timeout_s)
        else:
            self._release()
        self._thread = None

    def _release(self) -> None:
        """Stop the ZAP authenticator and end a context of our own (its sockets are closed)."""
        if self._security is not None:
            self._security.close()
            self._security = None
        if self._own_ctx and self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- events ----------------------------------------------------------------------------

    def publish(self, event: str, data: dict[str, Any]) -> bool:
        """Publish ``event`` with ``data`` from any thread, without blocking.

        Returns False when the event was dropped (server not running, or the server thread is
        more than EVENT_QUEUE_MESSAGES events behind). Raises ``ValueError`` for an event that
        :mod:`riffd.daemon.protocol` does not define.
        """
        frames = encode_event(event, data)
        with self._push_lock:
            if self._push is None:
                self.events_dropped += 1
                return False
            try:
                self._push.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                self.events_dropped += 1
                return False
        return True

    # --- server thread ---------------------------------------------------------------------

    def _run(self, router: zmq.Socket, pub: zmq.Socket, pull: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(POLL_TIMEOUT_S * 1000))
                if pull in ready:
                    self._forward_events(pull, pub, router)
                if router in ready:
                    self._serve_requests(router)
        finally:
            self._worker.stop()
            # replies already queued (the reply to `shutdown` among them) get a moment to
            # leave; events and the wake-up pipe are dropped
            router.close(linger=REPLY_LINGER_MS)
            for s in (pub, pull):
                s.close(linger=0)

    def _forward_events(self, pull: zmq.Socket, pub: zmq.Socket, router: zmq.Socket) -> None:
        while True:
            try:
                frames = pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) >= 4 and frames[0] == b"" and frames[1] == _REPLY_TAG:
                # a deferred reply: [b"", tag, payload, *envelope] (see _send_later)
                self._send(router, frames[3:] + [frames[2]])
            elif len(frames) == 2:  # a single empty frame is stop()'s wake-up
                pub.send_multipart(frames, zmq.NOBLOCK)  # PUB drops, never blocks, at its HWM
                self.events_published += 1

    def _serve_requests(self, router: zmq.Socket) -> None:
        while not self._stop.is_set():
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                reply = self._reply_frames(frames)
            except Exception:   # nothing a request does may end the control thread
                log.exception("control request failed outside every handler")
                self._count()
                self._count_internal()
                reply = _envelope(frames) + [_fallback_reply(None)]
            if reply is not None:   # None: deferred, answered when its work is done
                self._send(router, reply)

    def _send(self, router: zmq.Socket, reply: list[bytes]) -> None:
        try:
            router.send_multipart(reply, zmq.NOBLOCK)
        except zmq.Again:
            log.warning("control reply dropped: client not reading")
        except zmq.ZMQError as e:
            log.warning("control reply dropped: %s", e)

    def _reply_frames(self, frames: list[bytes]) -> list[bytes] | None:
        """The reply for one ROUTER message, with the same envelope as the request; None when
        the handler deferred its work (the reply is sent later, see _send_later).

        A REQ client's message arrives as [identity, b"", payload]; a DEALER's as
        [identity, payload]. The reply goes back with the same envelope.
        """
        with self._count_lock:
            self.requests += 1
        envelope = _envelope(frames)
        body = frames[len(envelope):]
        if len(body) == 1:
            payload = self._answer(body[0], envelope)
            return None if payload is None else envelope + [payload]
        problem = f"expected one frame of JSON, got {len(body)} frames" if body else "empty message"
        return envelope + [self._error_reply(ProtocolError("bad_frames", problem), None)]

    def _answer(self, payload: bytes, envelope: list[bytes]) -> bytes | None:
        """Decode one request, run it, and encode the reply (errors included); None when the
        handler returned a :class:`Deferred` (handed to the worker thread)."""
        req = None
        try:
            req = decode_request(payload)
            if req.cmd == "ping":
                result = {"pong": True, "time": time.monotonic()}
            else:
                result = self._handler(req.cmd, req.args)
            if isinstance(result, Deferred):
                self._worker.submit(lambda: self._finish(result, req, envelope))
                return None
            return self._ok_reply(req, result)
        except ProtocolError as e:
            return self._error_reply(e, req)
        except Exception as e:  # the handler's failure, reported back
            return self._error_reply(self._internal(req, e), req)

    def _finish(self, deferred: Deferred, req, envelope: list[bytes]) -> None:
        """Worker thread: run deferred work and send its reply through the control thread."""
        try:
            payload = self._ok_reply(req, deferred.work())
        except ProtocolError as e:
            payload = self._error_reply(e, req)
        except Exception as e:
            payload = self._error_reply(self._internal(req, e), req)
        self._send_later(envelope, payload)

    def _send_later(self, envelope: list[bytes], payload: bytes) -> None:
        """Any thread: queue a reply for the control thread to send (the ROUTER is its own)."""
        with self._push_lock:
            if self._push is None:
                log.warning("control reply dropped: the control server is stopping")
                return
            try:
                self._push.send_multipart([b"", _REPLY_TAG, payload, *envelope], zmq.NOBLOCK)
            except zmq.Again:
                log.warning("control reply dropped: the event queue is full")

    def _ok_reply(self, req, result: Any) -> bytes:
        if result is None:
            result = {}
        try:
            if not isinstance(result, dict):
                raise TypeError(f"handler returned {type(result).__name__}, expected a dict")
            return encode_reply_ok(req.id, result)
        except Exception as e:   # a result that is not JSON (a bug): say so, keep serving
            return self._error_reply(self._internal(req, e), req)

    def _internal(self, req, exc: Exception) -> ProtocolError:
        what = req.cmd if req is not None else "request"
        log.error("control command %r failed", what, exc_info=exc)
        self._count_internal()
        return ProtocolError("internal", f"{what} failed: {type(exc).__name__}: {exc}")

    def _error_reply(self, err: ProtocolError, req) -> bytes:
        if req is not None:
            err.id = req.id  # a handler's ProtocolError answers this request
        self._count()
        try:
            return encode_reply_error(err)
        except Exception:
            log.exception("control error reply could not be encoded")
            self._count_internal()
            return _fallback_reply(err.id)

    def _count(self) -> None:
        with self._count_lock:
            self.errors += 1

    def _count_internal(self) -> None:
        with self._count_lock:
            self.internal_errors += 1

    # --- helpers ---------------------------------------------------------------------------

    def _socket(self, kind: int, made: list[zmq.Socket]) -> zmq.Socket:
        s = self._ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        made.append(s)
        return s

    @staticmethod
    def _bind(sock: zmq.Socket, endpoint: str, what: str, option: str) -> str:
        """Bind and return the bound address, or raise a ControlBindError that says what to do."""
        if transport(endpoint) == "ipc" and _ipc_in_use(ipc_path(endpoint)):
            # libzmq would silently take the socket file over from the running daemon
            raise ControlBindError(errno.EADDRINUSE, f"cannot bind the {what} socket to "
                                   f"{endpoint}: another riffd is answering there; stop it "
                                   f"(`riffd ctl shutdown`) or pick another with `riffd serve "
                                   f"{option} ipc:///PRIVATE/FOLDER/{what}`")
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as e:
            hint = (f"is another riffd (or another program) using it? Pick another with "
                    f"`riffd serve {option} tcp://127.0.0.1:PORT`")
            if e.errno != errno.EADDRINUSE:
                hint = f"check the address, e.g. `{option} tcp://127.0.0.1:PORT`"
            raise ControlBindError(e.errno, f"cannot bind the {what} socket to {endpoint}: "
                                            f"{zmq.strerror(e.errno)}; {hint}") from e
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def _ipc_in_use(path) -> bool:
    """True when something accepts connections on the unix socket at ``path``."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:   # refused: a stale file from a daemon that died
            return False
    return True
