"""Torch-free, safe reader of official GigaAM checkpoints.

An official ``.ckpt`` is a PyTorch zip archive: ``<prefix>/data.pkl`` is a pickle of
``{"cfg": omegaconf.DictConfig, "state_dict": OrderedDict[str, Tensor]}`` and every tensor's
bytes live uncompressed in ``<prefix>/data/<key>``.

We never let the pickle run code. ``find_class`` hands back our own stand-ins:

* tensors become numpy arrays that are zero-copy views into a read-only memory map of the
  archive (the page cache holds the weights, not our heap);
* OmegaConf containers and nodes become small record objects that are turned into plain
  dicts / lists / values afterwards;
* a handful of harmless builtins (``dict``, ``list``, ``int``...) are allowed as values;
* *anything else* becomes an inert placeholder: calling it only records its arguments.
  So a booby-trapped pickle (``os.system`` and friends) is neutralised, never imported.
"""

from __future__ import annotations

import collections
import mmap
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Checkpoint", "CheckpointError", "read_checkpoint", "resolve_interpolations"]


class CheckpointError(ValueError):
    """The file is not a readable GigaAM checkpoint (truncated, not a zip, wrong content)."""


@dataclass
class Checkpoint:
    """What a checkpoint holds: the config as plain containers and numpy weights."""

    cfg: dict[str, Any]
    state_dict: dict[str, np.ndarray]
    path: Path
    #: Placeholders created for pickled classes we refused to load (for diagnostics).
    refused: list[str] = field(default_factory=list)


_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(np.uint16),  # widened to float32 after loading
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}


@dataclass(frozen=True)
class _StorageType:
    name: str


class _Record:
    """Stand-in for an allowed config class: keeps whatever state the pickle gives it."""

    kind = "record"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _DictConfig(_Record):
    kind = "dict"


class _ListConfig(_Record):
    kind = "list"


class _Node(_Record):
    kind = "node"


class _Metadata(_Record):
    kind = "metadata"


class _Inert:
    """Placeholder for a class or function we refuse to load. Calling it does nothing."""

    def __init__(self, qualname: str) -> None:
        self.qualname = qualname

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        return _Inert(f"{self.qualname}(...)")

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<refused {self.qualname}>"


def _make_inert_class(qualname: str) -> type:
    # NEWOBJ calls cls.__new__(cls, *args); a fresh subclass keeps the refused name visible.
    return type(
        "Refused", (_Inert,), {"__init__": lambda self, *a, **k: _Inert.__init__(self, qualname)}
    )


_SAFE_BUILTINS = {
    "dict": dict,
    "list": list,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "bytes": bytes,
    "complex": complex,
    "object": object,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storage: _StorageReader) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self._storage = storage
        self.refused: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol-2 pickles use Python 2 names
            module, name = "builtins", {"long": "int", "unicode": "str"}.get(name, name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "collections" and name == "defaultdict":
            return _safe_defaultdict
        if module == "builtins" and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "typing" and name == "Any":
            return _Metadata  # only ever used as a type marker inside metadata
        if module == "omegaconf.dictconfig" and name == "DictConfig":
            return _DictConfig
        if module == "omegaconf.listconfig" and name == "ListConfig":
            return _ListConfig
        if module == "omegaconf.nodes":
            return _Node
        if module == "omegaconf.base" and name in {"ContainerMetadata", "Metadata"}:
            return _Metadata
        qualname = f"{module}.{name}"
        self.refused.append(qualname)
        return _make_inert_class(qualname)

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1], pid[2], pid[3], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        return self._storage.array(str(key), _STORAGE_DTYPES[storage_type.name], int(numel))


def _safe_defaultdict(*args: Any) -> collections.defaultdict[Any, Any]:
    factory = args[0] if args and args[0] in _SAFE_BUILTINS.values() else None
    return collections.defaultdict(factory)


def _rebuild_tensor_v2(
    storage: np.ndarray,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_: Any,
) -> np.ndarray:
    itemsize = storage.dtype.itemsize
    needed = storage_offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True)) + 1
    if size and min(size) > 0 and needed > storage.size:
        raise pickle.UnpicklingError("tensor extends past its storage")
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:],
        shape=tuple(size),
        strides=tuple(st * itemsize for st in stride),
        writeable=False,
    )
    return view if view.flags.c_contiguous else np.ascontiguousarray(view)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


class _StorageReader:
    """Zero-copy access to the uncompressed tensor entries of the zip archive."""

    def __init__(self, zf: zipfile.ZipFile, buffer: mmap.mmap, prefix: str) -> None:
        self._zf = zf
        self._buffer = buffer
        self._prefix = prefix

    def array(self, key: str, dtype: np.dtype[Any], numel: int) -> np.ndarray:
        try:
            info = self._zf.getinfo(f"{self._prefix}/data/{key}")
        except KeyError as exc:
            raise CheckpointError(f"checkpoint is missing tensor data {key!r}") from exc
        if info.compress_type != zipfile.ZIP_STORED:
            # Never produced by torch.save, but stay correct if someone re-zipped the file.
            raw = np.frombuffer(self._zf.read(info), dtype=dtype)
            return raw[:numel]
        header = self._buffer[info.header_offset : info.header_offset + 30]
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise CheckpointError("corrupt zip entry header (truncated file?)")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        nbytes = numel * dtype.itemsize
        if start + nbytes > len(self._buffer) or info.file_size < nbytes:
            raise CheckpointError(f"tensor data {key!r} is truncated")
        return np.frombuffer(self._buffer, dtype=dtype, count=numel, offset=start)


def _to_plain(value: Any) -> Any:
    """Turn OmegaConf stand-ins into plain dicts, lists and values."""
    if isinstance(value, _DictConfig):
        content = value.state.get("_content") if isinstance(value.state, dict) else None
        if content is None:
            return None
        return {str(k): _to_plain(v) for k, v in content.items()}
    if isinstance(value, _ListConfig):
        content = value.state.get("_content") if isinstance(value.state, dict) else None
        if content is None:
            return None
        return [_to_plain(v) for v in content]
    if isinstance(value, _Node):
        return _to_plain(value.state.get("_val")) if isinstance(value.state, dict) else None
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


_MISSING = object()
_INTERPOLATION = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}$")


def resolve_interpolations(cfg: dict[str, Any]) -> dict[str, Any]:
    """Replace OmegaConf ``${a.b}`` references by the values they point to, as OmegaConf does
    on access.

    Older checkpoints (v2) keep the vocabulary once, at the top (``labels``), and point at it
    from ``decoding.vocabulary: ${labels}``; pickled, such a node is just the string. Only
    whole-value absolute references are resolved (the only kind GigaAM configs use); a
    reference to a missing key, a cycle, or any other ``${...}`` form stays the string it is,
    so the spec reports the field by name instead of guessing.
    """

    def lookup(path: str, seen: frozenset[str]) -> Any:
        node: Any = cfg
        for part in path.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return _MISSING
        return resolve(node, seen | {path})

    def resolve(value: Any, seen: frozenset[str]) -> Any:
        if isinstance(value, str):
            match = _INTERPOLATION.match(value)
            if match is None or match.group(1) in seen:
                return value
            found = lookup(match.group(1), seen)
            return value if found is _MISSING else found
        if isinstance(value, dict):
            return {k: resolve(v, seen) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, seen) for v in value]
        return value

    resolved = resolve(cfg, frozenset())
    assert isinstance(resolved, dict)
    return resolved


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read an official GigaAM checkpoint without torch and without executing pickled code.

    Raises :class:`CheckpointError` for anything that is not a complete checkpoint.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CheckpointError(f"cannot open checkpoint {path}: {exc.strerror}") from exc
    with handle:
        try:
            buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # empty file
            raise CheckpointError(f"{path} is empty, not a checkpoint") from exc
        try:
            zf = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError(
                f"{path} is not a PyTorch checkpoint archive (truncated or wrong file)"
            ) from exc
        with zf:
            obj, refused = _load_pickle(path, zf, buffer)
    if not isinstance(obj, dict) or "state_dict" not in obj or "cfg" not in obj:
        raise CheckpointError(f"{path} does not hold a GigaAM checkpoint (need cfg and state_dict)")
    cfg = _to_plain(obj["cfg"])
    raw_state = obj["state_dict"]
    if not isinstance(cfg, dict) or not isinstance(raw_state, dict):
        raise CheckpointError(f"{path}: cfg or state_dict has the wrong type")
    cfg = resolve_interpolations(cfg)
    state: dict[str, np.ndarray] = {}
    for key, value in raw_state.items():
        if not isinstance(value, np.ndarray):
            raise CheckpointError(f"{path}: state_dict entry {key!r} is not a tensor")
        if value.dtype == np.uint16:  # bfloat16 bits → float32
            value = (value.astype(np.uint32) << 16).view(np.float32)
        state[str(key)] = value
    return Checkpoint(cfg=cfg, state_dict=state, path=path, refused=refused)


def _load_pickle(path: Path, zf: zipfile.ZipFile, buffer: mmap.mmap) -> tuple[Any, list[str]]:
    pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pickles:
        raise CheckpointError(f"{path} has no data.pkl: not a PyTorch checkpoint")
    prefix = pickles[0].split("/")[0]
    try:
        unpickler = _Unpickler(zf.read(pickles[0]), _StorageReader(zf, buffer, prefix))
        return unpickler.load(), unpickler.refused
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} could not be unpickled: {exc}") from exc
    except (AttributeError, KeyError, IndexError, OSError) as exc:
        raise CheckpointError(f"{path} has an unexpected pickle structure: {exc}") from exc
