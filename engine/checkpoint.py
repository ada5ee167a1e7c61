"""Checkpoints: one ``.safetensors`` file holding the weights and a JSON metadata document.

The metadata (stored under the key ``"riffd"``) carries the format version, the model
family, the model config, the representation (vocabulary, time step…), the training
summary and evaluation metrics. Loading never unpickles anything.

Reading is safe on the daemon's threads: only regular files are opened (never a FIFO or a
device, see engine.safe_files), the file size and the model's parameter count are bounded by
:class:`ModelLimits`, and every size the header claims is checked before anything is allocated.
Error messages name the problem without quoting the file's bytes.
"""
from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from riffd.engine.safe_files import DEFAULT_MAX_FILE_BYTES, FileRefused, open_regular

FORMAT_VERSION = 1
METADATA_KEY = "riffd"
_MAX_HEADER_BYTES = 16 * 1024 * 1024   # a riffd header (vocabulary, metrics) is a few KB
MAX_TENSOR_DIMS = 8
_READ_CHUNK_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_PARAMS = 50_000_000        # parameters: ~200 MB of float32 weights
NOT_A_CHECKPOINT = "not a riffd checkpoint (.safetensors)"
# the safetensors dtypes riffd reads, as torch dtypes
TORCH_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
                "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
DTYPE_BYTES = {name: dtype.itemsize for name, dtype in TORCH_DTYPES.items()}


@dataclass(frozen=True)
class ModelLimits:
    """How large a checkpoint is accepted: ``max_bytes`` of file, ``max_params`` parameters
    (None: no limit). The hints tell the user how to raise each limit (shown in messages)."""

    max_bytes: int | None = DEFAULT_MAX_FILE_BYTES
    max_params: int | None = DEFAULT_MAX_PARAMS
    bytes_hint: str = ""
    params_hint: str = ""


DEFAULT_LIMITS = ModelLimits()
UNLIMITED = ModelLimits(None, None)


class CheckpointError(Exception):
    """A file cannot be used as a riffd checkpoint; the message says why and what to do."""


def _current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
        os.chmod(tmp, 0o666 & ~_current_umask())   # as a plain new file would be, not 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


STORAGE_DTYPES = {"float16": torch.float16, "float32": torch.float32}


def store_weights(source: str | Path, destination: str | Path, dtype: str = "float16"
                  ) -> Path:
    """Copy a checkpoint's model weights (not its training state, ``_optim.…``) into
    ``destination`` with floating-point tensors stored as ``dtype`` ("float16" halves the
    bytes). The metadata records ``storage: {dtype, runs_in}``; :func:`restore_dtype` (used by
    every loader) gives the weights back in the dtype the model runs in (float32)."""
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"storage dtype must be one of {', '.join(STORAGE_DTYPES)}, "
                         f"not {dtype!r}")
    tensors, metadata = load_checkpoint(source)
    runs_in = metadata.get("storage", {}).get("runs_in", "float32")
    weights = {name: (t.to(STORAGE_DTYPES[dtype]) if t.is_floating_point() else t)
               for name, t in tensors.items() if not name.startswith("_")}
    return save_checkpoint(destination, weights,
                           {**metadata, "storage": {"dtype": dtype, "runs_in": runs_in}})


def restore_dtype(tensors: dict[str, torch.Tensor], metadata: dict[str, Any]
                  ) -> dict[str, torch.Tensor]:
    """Floating-point weights in the dtype the model runs in (metadata ``storage.runs_in``,
    float32 when absent): a float16-stored checkpoint loads as the float32 model it came from,
    each weight rounded once to float16."""
    storage = metadata.get("storage") if isinstance(metadata.get("storage"), dict) else {}
    runs_in = STORAGE_DTYPES.get(storage.get("runs_in", "float32"))
    if runs_in is None:
        raise CheckpointError(f"the checkpoint's weights run in {storage.get('runs_in')!r}; "
                              f"this riffd runs {', '.join(STORAGE_DTYPES)}: upgrade riffd")
    return {name: (t.to(runs_in) if t.is_floating_point() and t.dtype != runs_in else t)
            for name, t in tensors.items()}


def read_metadata(path: str | Path, limits: ModelLimits | None = None) -> dict[str, Any]:
    """Read only the metadata document of a checkpoint (fast: the weights are not read).

    ``limits`` bounds the file size (None: any size); the file is opened only when it is a
    regular file (never a FIFO or a device), see engine.safe_files.
    """
    with CheckpointReader(path, limits) as reader:
        return reader.metadata


def load_checkpoint(path: str | Path, limits: ModelLimits | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load weights (on the CPU) and metadata, refusing anything that is not a riffd checkpoint.

    ``limits``: file size and parameter count (None: any size, as for training's resume).
    """
    with CheckpointReader(path, limits) as reader:
        reader.check_params()
        return reader.load_tensors(), reader.metadata


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the safetensors header describes it: dtype name, shape, byte span."""

    dtype: str
    shape: tuple[int, ...]
    begin: int          # offset in the data section, bytes
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class CheckpointReader:
    """One open checkpoint file: its header, metadata and tensor table are read and checked on
    opening; the weights only by :meth:`load_tensors`. Use as a context manager.

    Nothing is allocated from the file's claims before they are checked: the header is at most
    _MAX_HEADER_BYTES, each tensor's byte span must fit its dtype and shape and lie inside the
    file, and :meth:`check_params` bounds the parameter count.
    """

    def __init__(self, path: str | Path, limits: ModelLimits | None = None):
        self.path = Path(path)
        self.limits = limits if limits is not None else UNLIMITED
        self._file = _open(self.path, self.limits)
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            self.header_len, header = _read_header(self.path, self._file, self.size)
            self.metadata = _metadata_from_header(self.path, header)
            self.tensors = _tensor_table(self.path, header, self.size - 8 - self.header_len)
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    def weight_names(self) -> list[str]:
        """Names of the model's tensors (not the training state stored under "_...")."""
        return [name for name in self.tensors if not name.startswith("_")]

    def param_count(self) -> int:
        """Numbers in the model's tensors, from the header alone."""
        return sum(self.tensors[name].numel for name in self.weight_names())

    def check_params(self) -> None:
        """Refuse a model with more parameters than ``limits.max_params``."""
        check_param_count(self.path, self.param_count(), self.limits)

    def load_tensors(self) -> dict[str, torch.Tensor]:
        """Read every tensor (CPU). The file was checked on opening: this reads at most its
        (bounded) size, straight into one uint8 tensor, in chunks (each read releases the GIL,
        so other threads run meanwhile), and makes each weight a view of that buffer."""
        data_start = 8 + self.header_len
        buffer = torch.empty(self.size - data_start, dtype=torch.uint8)
        view = memoryview(buffer.numpy())
        self._file.seek(data_start)
        done = 0
        while done < len(view):
            got = self._file.readinto(view[done:done + _READ_CHUNK_BYTES])
            if not got:
                raise CheckpointError(f"{self.path} changed while it was read; try again.")
            done += got
        tensors = {}
        try:
            for name, info in self.tensors.items():
                raw = buffer[info.begin:info.end]
                dtype = TORCH_DTYPES[info.dtype]
                if info.begin % dtype.itemsize:       # unaligned: a copy can be reinterpreted
                    raw = raw.clone()
                tensors[name] = raw.view(dtype).reshape(info.shape)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(
                f"{self.path}: the weights cannot be read; the file is damaged or "
                "truncated. Copy it again or retrain with `riffd train`.") from exc
        return tensors


def check_param_count(path: Path, count: int, limits: ModelLimits) -> None:
    """Raise CheckpointError when ``count`` parameters are over ``limits.max_params``."""
    if limits.max_params is not None and count > limits.max_params:
        hint = f"; {limits.params_hint}" if limits.params_hint else ""
        raise CheckpointError(f"{path}: the model has {count:,} parameters, over the limit of "
                              f"{limits.max_params:,}{hint}")


def _open(path: Path, limits: ModelLimits):
    try:
        return open_regular(path, limits.max_bytes, limits.bytes_hint)
    except FileRefused as exc:
        if "no such file" in str(exc):
            raise CheckpointError(f"{path}: no such checkpoint file. Check the path, or train "
                                  "one with `riffd train CONFIG`.") from None
        if path.is_dir():
            raise CheckpointError(f"{path} is a folder; give the path of a .safetensors file."
                                  ) from None
        raise CheckpointError(f"cannot use {exc}") from None


def _read_header(path: Path, f, size: int) -> tuple[int, dict[str, Any]]:
    """(header length, header) of an open safetensors file of ``size`` bytes."""
    head = f.read(9)               # 8-byte header length, then the JSON header's "{"
    if head[8:9] != b"{" and (head[:1] == b"\x80" or head[:2] == b"PK"):
        raise CheckpointError(
            f"{path} looks like a pickled PyTorch file (torch.save). riffd never "
            "unpickles files, because that can run arbitrary code; use a .safetensors "
            "checkpoint written by `riffd train`.")
    if len(head) < 9:
        raise CheckpointError(f"{path} is too short to be a checkpoint; it is empty or "
                              "truncated.")
    (header_len,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or header_len > _MAX_HEADER_BYTES:
        raise CheckpointError(f"{path} is {NOT_A_CHECKPOINT}.")
    if header_len + 8 > size:
        raise CheckpointError(f"{path} is truncated or {NOT_A_CHECKPOINT}. Copy it again or "
                              "retrain.")
    f.seek(8)
    raw = f.read(header_len)
    try:
        header = json.loads(raw, object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"{path} is {NOT_A_CHECKPOINT} (unreadable header).") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is {NOT_A_CHECKPOINT} (header is not an object).")
    return header_len, header


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


def _tensor_table(path: Path, header: dict[str, Any], data_bytes: int) -> dict[str, TensorInfo]:
    """Check every tensor entry of the header against the data section (``data_bytes``)."""
    table = {}
    damaged = f"{path} is damaged ({{}}); copy it again or retrain with `riffd train`."
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise CheckpointError(damaged.format(f"tensor {name!r} has no description"))
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise CheckpointError(damaged.format(f"tensor {name!r} has an unknown dtype"))
        if (not isinstance(shape, list) or len(shape) > MAX_TENSOR_DIMS
                or not all(_count(d) for d in shape)):
            raise CheckpointError(damaged.format(f"tensor {name!r} has a bad shape"))
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_count, offsets))
                or not offsets[0] <= offsets[1]):
            raise CheckpointError(damaged.format(f"tensor {name!r} has bad offsets"))
        info = TensorInfo(dtype, tuple(shape), offsets[0], offsets[1])
        if info.end - info.begin != info.numel * DTYPE_BYTES[dtype]:
            raise CheckpointError(damaged.format(f"tensor {name!r} has the wrong byte length "
                                                 "for its shape"))
        if info.end > data_bytes:
            raise CheckpointError(f"{path} is truncated: its weights do not fit in the file. "
                                  "Copy it again or retrain.")
        table[name] = info
    return table


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _metadata_from_header(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    extra = header.get("__metadata__")
    raw = extra.get(METADATA_KEY) if isinstance(extra, dict) else None
    if raw is None:
        raise CheckpointError(f"{path} is a .safetensors file but not a riffd checkpoint "
                              "(no riffd metadata). Train a model with `riffd train`.")
    try:
        document = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise CheckpointError(f"{path}: the riffd metadata is damaged; copy the file again or "
                              "retrain with `riffd train`.")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        hint = ("upgrade riffd" if isinstance(version, int) and version > FORMAT_VERSION
                else "retrain it with this version's `riffd train`")
        raise CheckpointError(f"{path} has checkpoint format {version!r}, this riffd reads "
                              f"format {FORMAT_VERSION}: {hint}.")
    return document
