"""Collecting a running daemon's published events on a thread, through the project's client
(so whatever security the event socket has, the test meets it as a user's script does)."""
from __future__ import annotations

import threading
import time

from riffd.daemon.client import RiffdClient



class EventLog:
    """Every event named in ``names`` that ``endpoint`` publishes while the log is open.

    Usage: ``with EventLog(daemon.control, daemon.events, ["note_on"]) as log: ...``;
    ``log.items`` is the list of event dicts, in arrival order.
    """

    def __init__(self, control: str, events: str, names: list[str]):
        self.items: list[dict] = []
        self._args = (control, events, names)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-log", daemon=True)

    def _run(self) -> None:
        control, events, names = self._args
        # one subscription for the whole log: a SUB socket that reconnects misses what is
        # published while it joins
        with RiffdClient(control) as client:
            stream = client.subscribe(events, names, stop=self._stop)
            self._connected.set()
            for event in stream:
                self.items.append(event)

    def where(self, name: str | None = None, start: float = -1e18, end: float = 1e18,
              key: str = "t") -> list[dict]:
        """Events (of ``name``) whose ``key`` time (monotonic seconds) is in [start, end)."""
        return [e for e in list(self.items) if (name is None or e["event"] == name)
                and start <= e[key] < end]

    def __enter__(self) -> "EventLog":
        self._thread.start()
        self._connected.wait(5)
        time.sleep(0.3)                    # the subscription reaches the publisher
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)
