"""Opening files without blocking: only regular files of a plausible size are ever opened.

``open(path)`` on a FIFO waits for a writer; on a character device it may wait for input; a
multi-gigabyte file takes seconds to read. A daemon thread that must keep answering cannot
afford any of these. :func:`open_regular` checks the kind and size of a file with ``os.stat``
first, opens it with ``O_NONBLOCK`` (so a file swapped for a FIFO between the check and the open
cannot block either), then checks the opened descriptor again with ``os.fstat``.

:func:`check_regular` does the same checks without opening anything (for listings).
Messages never quote a file's contents; they say what the file is and what to do.
"""
from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO

MB = 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 512 * MB   # largest model file riffd opens by default, bytes


class FileRefused(OSError):
    """A path that is not opened: not a regular file, too large, or missing."""


def describe_kind(mode: int) -> str:
    """What a file is, from its ``st_mode``: "a FIFO", "a directory", ... (for messages)."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))
    for test, name in kinds:
        if test(mode):
            return name
    return "not a regular file"


def describe_size(n_bytes: int) -> str:
    """A size in words: "3 GB", "600 MB", "12 KB" (rounded; for messages)."""
    for unit, size in (("GB", 1024 * MB), ("MB", MB), ("KB", 1024)):
        if n_bytes >= size:
            return f"{n_bytes / size:.3g} {unit}"
    return f"{n_bytes} bytes"


def _check(path: Path, st: os.stat_result, max_bytes: int | None, limit_hint: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(f"{path} is {describe_kind(st.st_mode)}, not a regular file; "
                          "give the path of a file")
    if max_bytes is not None and st.st_size > max_bytes:
        hint = f" ({limit_hint})" if limit_hint else ""
        raise FileRefused(f"{path} is {describe_size(st.st_size)}, over the "
                          f"{describe_size(max_bytes)} limit{hint}")


def check_regular(path: str | Path, max_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
                  limit_hint: str = "") -> os.stat_result:
    """Stat ``path`` (following links) and refuse it unless it is a regular file of at most
    ``max_bytes`` bytes (None: any size). Opens nothing. ``limit_hint`` tells how to raise the
    limit (e.g. "--max-model-mb"). Returns the stat result."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileRefused(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:   # ValueError: NUL or lone surrogate in the path
        raise FileRefused(f"{path}: cannot look at this file "
                          f"({getattr(exc, 'strerror', None) or 'bad path'})") from None
    _check(path, st, max_bytes, limit_hint)
    return st


def open_regular(path: str | Path, max_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
                 limit_hint: str = "") -> BinaryIO:
    """Open ``path`` for binary reading only if it is a regular file of at most ``max_bytes``
    bytes; raise :class:`FileRefused` at once otherwise. Never blocks on FIFOs or devices.

    The returned file is in normal (blocking) mode, which for a regular file never waits long.
    """
    path = Path(path)
    check_regular(path, max_bytes, limit_hint)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError) as exc:
        raise FileRefused(f"{path}: cannot open this file "
                          f"({getattr(exc, 'strerror', None) or 'bad path'})") from None
    try:
        _check(path, os.fstat(fd), max_bytes, limit_hint)   # swapped since the stat?
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    # outside the try: once fdopen has taken the descriptor, its file object closes it
    return os.fdopen(fd, "rb")


def read_regular(path: str | Path, max_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
                 limit_hint: str = "") -> bytes:
    """The whole content of a regular file of at most ``max_bytes`` bytes (see open_regular)."""
    with open_regular(path, max_bytes, limit_hint) as f:
        return f.read()


def is_within(path: str | Path, folders: list[str | Path]) -> bool:
    """Whether ``path``, with links and ``..`` resolved, lies inside one of ``folders``
    (also resolved)."""
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return False
    for folder in folders:
        try:
            base = os.path.realpath(folder)
        except (OSError, ValueError):
            continue
        if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
            return True
    return False
