"""The view's network thread: talks to the daemon so the UI thread never waits on a socket.

One thread owns every ZeroMQ socket of the view (sockets are not thread-safe): a
:class:`riffd.daemon.client.RiffdClient` for requests and a SUB socket for events. It

- measures the offset between the daemon's monotonic clock and this process's with ``ping``
  (at connection and every ``PING_EVERY_S`` seconds), so events' times can be placed on the
  view's playhead;
- asks ``status`` every ``STATUS_EVERY_S`` seconds;
- forwards events as they arrive, in batches;
- runs the commands the UI queued (:meth:`DaemonFeed.send`) and reports each answer.

Everything goes to the UI through ``post(kind, payload)``, which must be thread-safe (Textual's
``post_message`` is). Kinds: ``"connected"`` (offset_s), ``"disconnected"`` (problem),
``"status"`` (the reply), ``"events"`` (list of event dicts), ``"reply"`` (cmd, result) and
``"error"`` (cmd, message). When the daemon does not answer, the thread says so and tries again
every ``RETRY_S`` seconds, with fresh sockets.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any, Callable

import zmq

from riffd.daemon import auth
from riffd.daemon.client import RiffdClient, RiffdError, RiffdUnavailable

STATUS_EVERY_S = 0.5
PING_EVERY_S = 5.0
RETRY_S = 1.0
REQUEST_TIMEOUT_S = 1.5

Post = Callable[[str, Any], None]


class DaemonFeed:
    """The network thread of ``riffd view``; ``start()``, ``send()``, ``stop()``."""

    def __init__(self, post: Post, endpoint: str | None = None,
                 events_endpoint: str | None = None):
        self.endpoint = endpoint or auth.default_endpoint("control")
        self.events_endpoint = events_endpoint or auth.events_endpoint_for(self.endpoint)
        self._post = post
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx = zmq.Context()

    def start(self) -> "DaemonFeed":
        self._thread = threading.Thread(target=self._run, name="riffd-view-feed", daemon=True)
        self._thread.start()
        return self

    def send(self, cmd: str, **args: Any) -> None:
        """Queue a command for the daemon (any thread); its answer comes back as ``reply``
        or ``error``."""
        self._commands.put((cmd, args))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3.0)
            if self._thread.is_alive():     # stuck in a request: never block the quit on it
                return
            self._thread = None
        self._ctx.term()

    # -- thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            client = RiffdClient(self.endpoint, timeout_s=REQUEST_TIMEOUT_S, context=self._ctx)
            sub = None
            try:
                offset = self._offset(client)
                sub = self._subscribe()
                self._post("connected", offset)
                self._serve(client, sub)
            except RiffdUnavailable as exc:
                self._post("disconnected", str(exc))
            except Exception as exc:          # keys, sockets, a reply it cannot read: retry
                self._post("disconnected", f"{type(exc).__name__}: {exc}")
            finally:
                client.close()
                if sub is not None:
                    sub.close(linger=0)
            self._drop_commands()
            self._stop.wait(RETRY_S)

    def _offset(self, client: RiffdClient) -> float:
        """Daemon monotonic − local monotonic, seconds, from one ping (midpoint)."""
        before = time.monotonic()
        daemon_s = float(client.ping()["time"])
        after = time.monotonic()
        return daemon_s - (before + after) / 2

    def _subscribe(self) -> zmq.Socket:
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        try:
            auth.secure_client_socket(sub, self.events_endpoint, None)
            sub.setsockopt_string(zmq.SUBSCRIBE, "")
            sub.connect(self.events_endpoint)
        except BaseException:
            sub.close(linger=0)
            raise
        return sub

    def _serve(self, client: RiffdClient, sub: zmq.Socket) -> None:
        """Until the daemon stops answering (raises RiffdUnavailable) or the view quits."""
        next_status = next_ping = 0.0
        while not self._stop.is_set():
            self._run_commands(client)        # before status: its reply shows their effect
            now = time.monotonic()
            if now >= next_status:
                self._post("status", client.status())
                next_status = now + STATUS_EVERY_S
            if now >= next_ping:
                self._post("connected", self._offset(client))
                next_ping = now + PING_EVERY_S
            events = []
            if sub.poll(50, zmq.POLLIN):
                while len(events) < 500:
                    try:
                        _topic, body = sub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    events.append(json.loads(body))
            if events:
                self._post("events", events)

    def _run_commands(self, client: RiffdClient) -> None:
        while True:
            try:
                cmd, args = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                self._post("reply", (cmd, client.request(cmd, **args)))
            except RiffdError as exc:
                self._post("error", (cmd, exc.message))

    def _drop_commands(self) -> None:
        """Commands queued while the daemon is away are dropped (and said so), not sent late."""
        while True:
            try:
                cmd, _args = self._commands.get_nowait()
            except queue.Empty:
                return
            self._post("error", (cmd, "not sent: riffd is not connected"))
