"""Checkpoints: one ``.safetensors`` file holding the weights and a JSON metadata document.

The metadata (stored under the key ``"riffd"``) carries the format version, the model
family, the model config, the representation (vocabulary, time step…), the training
summary and evaluation metrics. Loading never unpickles anything.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT_VERSION = 1
METADATA_KEY = "riffd"
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class CheckpointError(Exception):
    """A file cannot be used as a riffd checkpoint; the message says why and what to do."""


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor],
                    metadata: dict[str, Any]) -> Path:
    """Write weights and metadata atomically: a temporary file, then a rename.

    ``metadata`` must be JSON-serialisable; the format version is added here.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"format_version": FORMAT_VERSION, **metadata}
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(contiguous, tmp, metadata={METADATA_KEY: json.dumps(document)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read only the metadata document of a checkpoint (fast: the weights are not read)."""
    path = Path(path)
    header = _read_header(path)
    return _metadata_from_header(path, header)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load weights (on the CPU) and metadata, refusing anything that is not a riffd checkpoint."""
    path = Path(path)
    metadata = read_metadata(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: the weights cannot be read ({exc}); the file is damaged or "
            "truncated. Copy it again or retrain with `riffd train`.") from exc
    return tensors, metadata


def _read_header(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file. Check the path, or train "
                              "one with `riffd train CONFIG`.")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the path of a .safetensors file.")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(9)               # 8-byte header length, then the JSON header's "{"
        if head[8:9] != b"{" and (head[:1] == b"\x80" or head[:2] == b"PK"):
            raise CheckpointError(
                f"{path} looks like a pickled PyTorch file (torch.save). riffd never "
                "unpickles files, because that can run arbitrary code; use a .safetensors "
                "checkpoint written by `riffd train`.")
        if len(head) < 8:
            raise CheckpointError(f"{path} is too short ({size} bytes) to be a checkpoint; "
                                  "it is empty or truncated.")
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len > _MAX_HEADER_BYTES or header_len + 8 > size:
            raise CheckpointError(
                f"{path} is not a valid .safetensors file (header of {header_len} bytes in "
                f"a {size}-byte file): it is truncated or of another format.")
        f.seek(8)
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not a .safetensors file (unreadable header).") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a .safetensors file (header is not an object).")
    data_end = max((t.get("data_offsets", [0, 0])[1] for k, t in header.items()
                    if k != "__metadata__" and isinstance(t, dict)), default=0)
    if 8 + header_len + data_end > size:
        raise CheckpointError(f"{path} is truncated: its weights need {8 + header_len + data_end} "
                              f"bytes but the file has {size}. Copy it again or retrain.")
    return header


def _metadata_from_header(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    raw = (header.get("__metadata__") or {}).get(METADATA_KEY)
    if raw is None:
        raise CheckpointError(f"{path} is a .safetensors file but not a riffd checkpoint "
                              "(no riffd metadata). Train a model with `riffd train`.")
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: the riffd metadata is damaged ({exc}).") from exc
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        hint = ("upgrade riffd" if isinstance(version, int) and version > FORMAT_VERSION
                else "retrain it with this version's `riffd train`")
        raise CheckpointError(f"{path} has checkpoint format {version!r}, this riffd reads "
                              f"format {FORMAT_VERSION}: {hint}.")
    return document
