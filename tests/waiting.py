"""Polling helper shared by the tests that wait for a running daemon or a JACK client."""
import time


def wait_until(predicate, timeout: float, every: float = 0.02):
    """Call ``predicate`` every ``every`` seconds until it returns something true or
    ``timeout`` seconds pass; return its last value (truthy on success)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()
