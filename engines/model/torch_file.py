"""A PyTorch checkpoint's tensors read as numpy arrays, without PyTorch and without running pickled code.

The packaged EfficientNet-Lite0 weights are a state dict saved in PyTorch's legacy format
(before 1.6): five pickles in a row (magic number, protocol, system info, the object, the
storage keys), then each storage's raw bytes. The object pickle names only an
``OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and storage classes; this reader
admits those names and nothing else, so a file that asks for any other callable is refused
before anything runs (the file's sha256 is checked before this too). Installs without
PyTorch (a Space, a laptop that wants no multi-GB CUDA stack) read the weights this way.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

#: PyTorch's legacy file magic number and protocol version.
MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
          "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class CheckpointError(ValueError):
    """The file is not a PyTorch state dict this reader accepts; the message says why."""


@dataclass
class _Storage:
    dtype: Any
    numel: int
    data: np.ndarray | None = None


@dataclass
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        assert self.storage.data is not None
        item = self.storage.data.itemsize
        if self.shape and (self.offset + sum((s - 1) * st for s, st in zip(self.shape, self.stride, strict=True))
                           >= self.storage.numel):
            raise CheckpointError("a tensor reaches past the end of its storage")
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset:], shape=self.shape, strides=[s * item for s in self.stride], writeable=False,
        )
        return np.array(view)  # a copy: nothing keeps the whole file's buffer alive


def _storage_class(name: str) -> Any:
    return ("storage-class", name)


def _rebuild(storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...], *_: Any) -> _Tensor:
    return _Tensor(storage, int(offset), tuple(int(s) for s in shape), tuple(int(s) for s in stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild
        if module == "torch" and name in DTYPES:
            return _storage_class(name)
        raise CheckpointError(f"the checkpoint asks for {module}.{name}, which a state dict of tensors never needs")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {str(pid)[:60]}")
        _, kind, key, _location, numel = pid[:5]
        if not (isinstance(kind, tuple) and kind[0] == "storage-class" and isinstance(numel, int) and numel >= 0):
            raise CheckpointError("a storage of an unknown type")
        return self.storages.setdefault(str(key), _Storage(DTYPES[kind[1]], numel))


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """``{name: array}`` of a legacy-format PyTorch state dict; ``CheckpointError`` otherwise."""
    raw = path.read_bytes()
    stream = io.BytesIO(raw)
    if raw[:2] == b"PK":
        raise CheckpointError("a zip-format checkpoint: only the legacy format of the packaged weights is read")
    try:
        head = [_Unpickler(stream).load() for _ in range(3)]
    except (pickle.UnpicklingError, EOFError) as exc:
        raise CheckpointError(f"not a PyTorch checkpoint ({exc})") from exc
    if head[0] != MAGIC or head[1] != PROTOCOL or not isinstance(head[2], dict) \
            or not head[2].get("little_endian", False):
        raise CheckpointError("not a little-endian PyTorch legacy checkpoint")
    reader = _Unpickler(stream)
    state = reader.load()
    keys = _Unpickler(stream).load()
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise CheckpointError("the checkpoint holds no state dict")
    for key in keys:
        storage = reader.storages.get(str(key))
        header = stream.read(8)
        if storage is None or len(header) < 8:
            raise CheckpointError(f"storage {key} is missing or cut short")
        (count,) = struct.unpack("<q", header)
        size = count * np.dtype(storage.dtype).itemsize
        if count != storage.numel or stream.tell() + size > len(raw):
            raise CheckpointError(f"storage {key} does not hold the {storage.numel} values it declares")
        storage.data = np.frombuffer(raw, dtype=storage.dtype, count=count, offset=stream.tell())
        stream.seek(size, io.SEEK_CUR)
    out = {}
    for name, value in state.items():
        if not isinstance(value, _Tensor) or value.storage.data is None:
            raise CheckpointError(f"{name} is not a stored tensor")
        out[str(name)] = value.array()
    return out
