"""The speaker model file diarization loads: a local path as it is, or a catalogue name fetched.

``DIARIZATION_MODEL`` is either a name from :data:`gigaam_api.speakers.catalogue.SPEAKER_MODELS`
or a path to a model file (``.onnx``, Resemblyzer's ``pretrained.pt`` or its wheel). A name is
fetched into ``MODELS_DIR`` by the same downloader as the GigaAM weights (``weights.py``:
``.part`` file resumed with ``Range``, retries with back-off, a cross-process lock, offline
message), and then checked against the catalogue's SHA-256 — the downloader itself checks
MD5s, and the publisher's asset is known by its SHA-256. The result of the check is cached in
a ``<file>.sha256`` sidecar keyed by size and mtime, as the MD5 one is, so a start re-hashes
only a changed file. A file that fails the check is deleted and fetched once more; a second
failure is an error that names both digests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from gigaam_api import weights
from gigaam_api.speakers.catalogue import SPEAKER_MODELS, SpeakerModelInfo

__all__ = ["speaker_model_path"]

log = logging.getLogger(__name__)

_BLOCK: Final = 4 << 20


def speaker_model_path(
    model: str,
    models_dir: str | Path,
    *,
    progress: bool | None = None,
    retries: int = 5,
    retry_delay: float = 1.0,
    timeout: float = 30.0,
    catalogue: Mapping[str, SpeakerModelInfo] = SPEAKER_MODELS,
) -> Path:
    """The file for ``model`` (a catalogue name or a local path), downloading a name if needed.

    ``catalogue`` replaces the published table (tests, mirrors). Raises
    :class:`gigaam_api.weights.WeightsError` with what to do when it cannot.
    """
    info = catalogue.get(model)
    if info is None:
        path = Path(model).expanduser()
        if path.is_file():
            return path
        raise weights.WeightsError(
            f"DIARIZATION_MODEL={model!r} is neither a speaker model name "
            f"({', '.join(catalogue)}) nor an existing file"
        )
    dest = Path(models_dir).expanduser() / info.file
    options = weights._Options(
        progress=progress, retries=retries, delay=retry_delay, timeout=timeout
    )
    for attempt in (1, 2):
        try:
            weights._ensure_file(info.url, dest, None, options, model=info.name)
        except weights.WeightsError as exc:
            raise weights.WeightsError(
                f"{exc}. For diarization: download {info.file} from {info.url} where the "
                f"network is reachable (`gigaam-api download`) and put it in MODELS_DIR, or set "
                "DIARIZATION_MODEL to a local speaker model file"
            ) from None
        actual = _cached_sha256(dest)
        if actual == info.sha256:
            return dest
        log.warning("%s has SHA-256 %s, expected %s; removing it", dest.name, actual, info.sha256)
        dest.unlink(missing_ok=True)
        _sidecar(dest).unlink(missing_ok=True)
        if attempt == 2:
            break
    raise weights.WeightsError(_mismatch(info, actual))


def _mismatch(info: SpeakerModelInfo, actual: str) -> str:
    return (
        f"checksum mismatch for {info.file} downloaded from {info.url}: SHA-256 {actual}, "
        f"expected {info.sha256}. The server does not serve the published file"
    )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _cached_sha256(path: Path) -> str:
    """SHA-256 of ``path``, reusing the sidecar while the file's size and mtime match."""
    stat = path.stat()
    sidecar = _sidecar(path)
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        if record["size"] == stat.st_size and record["mtime_ns"] == stat.st_mtime_ns:
            return str(record["sha256"])
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    value = digest.hexdigest()
    with contextlib.suppress(OSError):
        tmp = sidecar.with_suffix(".tmp")
        record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": value}
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, sidecar)
    return value
