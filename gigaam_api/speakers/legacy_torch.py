"""Torch-free, safe reader of legacy (pre-zip) PyTorch files such as Resemblyzer's weights.

Before PyTorch 1.6, ``torch.save`` wrote one flat stream instead of a zip archive:

1. three small pickles: a magic number, the protocol version (1001) and a dict describing the
   writer (endianness, type sizes);
2. the pickled object itself, in which every tensor is ``torch._utils._rebuild_tensor_v2``
   over a storage named by a *persistent id* ``("storage", <type>, key, location, numel,
   view)``;
3. a pickled list of the storage keys, in the order their bytes follow;
4. for each of those storages: its element count as a little-endian int64, then the raw
   little-endian elements.

We never let the pickle run code: :meth:`_Unpickler.find_class` answers only an allow-list
(``OrderedDict``, harmless builtins, the tensor rebuilder and the storage types) and refuses
anything else with :class:`LegacyTorchError`, so a booby-trapped file (``os.system`` and
friends) stops the read instead of running. Storage bytes are copied into numpy arrays only
for the storages the object refers to; nothing is imported from torch.
"""

from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path
from typing import IO, Any, Final

import numpy as np

__all__ = ["LegacyTorchError", "read_legacy_torch", "read_legacy_torch_stream"]

#: The first pickle of every legacy file (``torch.serialization.MAGIC_NUMBER``).
_MAGIC: Final = 0x1950A86A20F9469CFC6C
_PROTOCOL: Final = 1001

_STORAGE_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

_SAFE_BUILTINS: Final[dict[str, type]] = {
    "dict": dict,
    "list": list,
    "tuple": tuple,
    "set": set,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
}


class LegacyTorchError(ValueError):
    """The file is not a legacy PyTorch file we can read, or it asks for code we refuse."""


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _Storage:
    """A storage named by the pickle; its array is filled once the bytes are read."""

    def __init__(self, key: str, dtype: np.dtype[Any], numel: int) -> None:
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.array: np.ndarray | None = None


class _Tensor:
    """What ``_rebuild_tensor_v2`` gives back until the storages' bytes have been read."""

    def __init__(
        self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
    ) -> None:
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride

    def resolve(self) -> np.ndarray:
        data = self.storage.array
        if data is None:
            raise LegacyTorchError(f"storage {self.storage.key} has no data in the file")
        needed = self.offset + sum(
            (s - 1) * st for s, st in zip(self.size, self.stride, strict=True)
        )
        if self.size and min(self.size) > 0 and needed >= data.size:
            raise LegacyTorchError("a tensor extends past its storage")
        if any(st < 0 for st in self.stride):
            raise LegacyTorchError("negative tensor strides are not supported")
        item = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=tuple(st * item for st in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(
    storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise LegacyTorchError("a tensor refers to something that is not a storage")
    return _Tensor(storage, int(offset), tuple(map(int, size)), tuple(map(int, stride)))


class _Unpickler(pickle.Unpickler):
    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(stream)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module in {"builtins", "__builtin__"} and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise LegacyTorchError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise LegacyTorchError(f"unsupported persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if len(pid) > 5 and pid[5] is not None:
            raise LegacyTorchError("storage views are not supported")
        if not isinstance(storage_type, _StorageType):
            raise LegacyTorchError(f"unsupported storage type {storage_type!r:.80}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, _STORAGE_DTYPES[storage_type.name], numel)
        return self.storages[key]


def _resolve(value: Any) -> Any:
    """Replace every tensor placeholder inside plain containers by its numpy array."""
    if isinstance(value, _Tensor):
        return value.resolve()
    if isinstance(value, dict):
        return type(value)((k, _resolve(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return type(value)(_resolve(v) for v in value)
    return value


def _plain_load(stream: IO[bytes]) -> Any:
    return _Unpickler(stream).load()


def read_legacy_torch(path: Path) -> Any:
    """The object a legacy ``torch.save`` wrote to ``path``, with tensors as numpy arrays.

    Raises :class:`LegacyTorchError` for a file in another format (a zip checkpoint, a
    truncated file) or one whose pickle names a class outside the allow-list.
    """
    try:
        with path.open("rb") as stream:
            return read_legacy_torch_stream(stream, path.name)
    except OSError as exc:
        raise LegacyTorchError(f"{path.name} could not be read: {exc}") from exc


def read_legacy_torch_stream(stream: IO[bytes], name: str) -> Any:
    """:func:`read_legacy_torch` over an open binary stream (a file inside a wheel); ``name``
    is used in error messages."""
    path = Path(name)
    try:
        if _plain_load(stream) != _MAGIC:
            raise LegacyTorchError(f"{path.name} is not a legacy PyTorch file")
        if _plain_load(stream) != _PROTOCOL:
            raise LegacyTorchError(f"{path.name} has an unknown PyTorch protocol version")
        info = _plain_load(stream)
        if not (isinstance(info, dict) and info.get("little_endian") is True):
            raise LegacyTorchError(f"{path.name} was not written little-endian")
        unpickler = _Unpickler(stream)
        obj = unpickler.load()
        keys = _plain_load(stream)
        if not isinstance(keys, list):
            raise LegacyTorchError(f"{path.name} has no storage list")
        for key in keys:
            _read_storage(stream, unpickler.storages.get(str(key)), path)
        return _resolve(obj)
    except LegacyTorchError:
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError) as exc:
        raise LegacyTorchError(f"{path.name} could not be read: {exc}") from exc
    except (AttributeError, KeyError, IndexError) as exc:
        raise LegacyTorchError(f"{path.name} has an unexpected structure: {exc}") from exc


def _read_storage(stream: IO[bytes], storage: _Storage | None, path: Path) -> None:
    header = stream.read(8)
    if len(header) != 8:
        raise LegacyTorchError(f"{path.name} is truncated")
    (count,) = struct.unpack("<q", header)
    if storage is None:
        raise LegacyTorchError(f"{path.name} lists a storage the object does not use")
    if count != storage.numel:
        raise LegacyTorchError(f"{path.name}: storage {storage.key} size does not match")
    size = count * storage.dtype.itemsize
    data = stream.read(size)
    if len(data) != size:
        raise LegacyTorchError(f"{path.name} is truncated")
    storage.array = np.frombuffer(data, dtype=storage.dtype)
