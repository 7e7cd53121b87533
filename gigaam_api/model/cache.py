"""The graph cache: built ONNX graphs kept on disk, keyed by checkpoint content and version.

Built graphs are written under ``cache_dir/graphs/<key>/`` (``encoder.onnx``, ``step.onnx`` for
RNN-T, ``meta.json`` last) where the key digests the checkpoint's content (the archive's
per-entry CRC-32s and sizes, which ``torch.save`` computes over every byte of every tensor,
plus the pickle itself), the graph version and the int8 flag — so a cache hit costs
milliseconds instead of hashing 850 MB. A directory is built under a temporary name and renamed
into place (atomic), under a file lock so two processes never build the same graph at once.
Weights sit page-aligned in an external data file, which ONNX Runtime memory-maps; the graph
protobuf itself is a few hundred kB, so loading never parses (and glibc never retains) a
model-sized message.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "ENCODER_FILE",
    "META_FILE",
    "STEP_FILE",
    "GraphFiles",
    "cache_key",
    "checkpoint_digest",
    "ensure_graphs",
    "prune_stale_graphs",
]

ENCODER_FILE: Final = "encoder.onnx"
STEP_FILE: Final = "step.onnx"
META_FILE: Final = "meta.json"
_GRAPHS_FOLDER: Final = "graphs"


@dataclass(frozen=True)
class GraphFiles:
    """Where a model's graphs are, and whether this call had to build them."""

    directory: Path
    encoder: Path
    step: Path | None
    built: bool
    #: The cache folder the entry belongs to (``ensure_graphs``'s ``cache_dir``).
    cache_dir: Path
    key: str


def checkpoint_digest(path: Path) -> str:
    """A content digest of a checkpoint archive without reading its tensors.

    Hashes every entry's name, size and CRC-32 (which the writer computed over the entry's
    bytes) plus the pickle with the config. Raises ``zipfile.BadZipFile``/``OSError`` for a
    file that is not a readable archive.
    """
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as zf:
        infos = sorted(zf.infolist(), key=lambda i: i.filename)
        for info in infos:
            digest.update(f"{info.filename}\0{info.file_size}\0{info.CRC}\n".encode())
            if info.filename.endswith("/data.pkl"):
                digest.update(zf.read(info))
    return digest.hexdigest()


def cache_key(digest: str, graph_version: int, quantize_int8: bool) -> str:
    """Directory name of one cached build."""
    return f"{digest[:24]}-g{graph_version}-{'int8' if quantize_int8 else 'fp32'}"


def ensure_graphs(
    cache_dir: Path,
    key: str,
    build: Callable[[Path], Mapping[str, Any]],
) -> GraphFiles:
    """Return the cached graphs under ``cache_dir/graphs/key``, building them if absent.

    ``build(directory)`` writes ``encoder.onnx`` (and ``step.onnx`` for RNN-T) into an empty
    temporary directory and returns metadata stored beside them. The finished directory is
    renamed into place, so a crash never leaves a half-written cache entry behind.
    """
    from filelock import FileLock

    cache_dir = Path(cache_dir)
    root = cache_dir / _GRAPHS_FOLDER
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    if _complete(final):
        return _files(cache_dir, key, built=False)
    with FileLock(str(root / f"{key}.lock")):
        if _complete(final):  # another process built it while we waited
            return _files(cache_dir, key, built=False)
        if final.exists():  # incomplete leftovers from an older, interrupted layout
            shutil.rmtree(final, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            meta = dict(build(tmp))
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
            _fsync_dir(tmp)
            os.replace(tmp, final)
            _fsync_dir(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return _files(cache_dir, key, built=True)


def rebuild_graphs(files: GraphFiles, build: Callable[[Path], Mapping[str, Any]]) -> GraphFiles:
    """Throw away a damaged cache entry and build it again (same cache folder and key)."""
    shutil.rmtree(files.directory, ignore_errors=True)
    return ensure_graphs(files.cache_dir, files.key, build)


def prune_stale_graphs(cache_dir: Path, keep: str) -> list[Path]:
    """Delete cached builds of the same checkpoint and precision from other graph versions.

    Each fp32 build is as large as the model, so an upgrade should not leave the previous
    one behind. Builds of other checkpoints are kept (switching models back stays fast).
    Returns what was removed.
    """
    digest, precision = keep.split("-", 1)[0], keep.rsplit("-", 1)[-1]
    removed = []
    root = Path(cache_dir) / _GRAPHS_FOLDER
    for entry in root.glob(f"{digest}-g*-{precision}"):
        if entry.name != keep and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            (root / f"{entry.name}.lock").unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _complete(directory: Path) -> bool:
    return (directory / META_FILE).is_file() and (directory / ENCODER_FILE).is_file()


def _files(cache_dir: Path, key: str, *, built: bool) -> GraphFiles:
    directory = cache_dir / _GRAPHS_FOLDER / key
    step = directory / STEP_FILE
    return GraphFiles(
        directory=directory,
        encoder=directory / ENCODER_FILE,
        step=step if step.is_file() else None,
        built=built,
        cache_dir=cache_dir,
        key=key,
    )


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
