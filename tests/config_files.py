"""Checks shared by the tests of riffd's TOML files (training recipes, serve configs)."""
import pytest


def assert_file_refused(path, text: str, load, error: type, words: str) -> None:
    """Write ``text`` to ``path``: ``load(path)`` must raise ``error`` with a message that the
    regular expression ``words`` matches (the problem named, and the fix where there is one)."""
    path.write_text(text)
    with pytest.raises(error, match=words):
        load(path)
