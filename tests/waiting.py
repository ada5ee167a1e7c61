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


# Seconds to wait for riffd to answer a phrase played into riffd:in. On a loaded machine a
# JACK cycle can be missed and a note-off with it: the key stays down until the captor
# releases it (riffd.daemon.phrase_capture.MAX_HOLD_S, 10 s), and the phrase is answered then.
ANSWER_WAIT_S = 30.0
