"""Official GigaAM weights: download, verify, cache.

The checkpoints are large (about 880 MB for a v3 model, 2.34 GB for multilingual_large_ctc) and
the boxes this runs on are small and sometimes flaky or offline, so every step here is built to
survive interruption:

* Files are fetched into ``<file>.part`` and renamed into place only once complete and verified,
  so a crash never leaves a half-written file under the final name.
* An interrupted download resumes with an HTTP ``Range`` request from the ``.part`` file; a
  server that ignores ``Range`` (answers 200) is handled by starting over.
* Checkpoints are verified against the official MD5s (``gigaam_api/catalogue.py``). Hashing
  880 MB costs seconds, so the result is remembered in a ``<file>.md5`` sidecar keyed by size
  and mtime: a later start re-hashes only if the file changed. A cached file that fails the
  check is deleted and fetched again.
* A file lock per file makes concurrent starters (two containers on one volume, ``download`` run
  next to ``serve``) wait for one download instead of racing on the same bytes.
* Without network and without a cached copy the error says exactly how to get weights onto the
  machine (``gigaam-api download`` elsewhere, or ``CHECKPOINT_PATH``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import httpx
from filelock import FileLock, Timeout
from tqdm import tqdm

from gigaam_api import __version__
from gigaam_api.catalogue import CATALOGUE, OFFICIAL_WEIGHTS_URL, tokenizer_beside

if TYPE_CHECKING:
    from gigaam_api.config import Settings

log = logging.getLogger(__name__)

#: Expected MD5 per file name (the catalogue's, by checkpoint file); ``ensure_model(checksums=...)``
#: replaces it (mirrors, tests). Tokenizers are not hashed upstream, so they are only checked for
#: completeness (length).
OFFICIAL_CHECKSUMS: Final[Mapping[str, str]] = {
    info.checkpoint_file: info.md5 for info in CATALOGUE.values()
}

_HASH_BLOCK = 4 << 20
_LOG_STEP_PERCENT = 5
_LOG_STEP_BYTES_UNKNOWN_TOTAL = 50 << 20
_DISK_MARGIN = 16 << 20


class WeightsError(RuntimeError):
    """Weights could not be obtained; the message says why and what to do about it."""


class _Transient(Exception):
    """A failure worth retrying (dropped connection, 5xx, server-side range mix-up)."""


def model_filenames(name: str) -> tuple[str, str | None]:
    """File names of a model's checkpoint and tokenizer (``None`` when it has none)."""
    _check_name(name)
    info = CATALOGUE[name]
    return info.checkpoint_file, info.tokenizer_file


def ensure_model(
    name: str,
    models_dir: str | Path,
    base_url: str = OFFICIAL_WEIGHTS_URL,
    *,
    progress: bool | None = None,
    checksums: Mapping[str, str] | None = None,
    retries: int = 5,
    retry_delay: float = 1.0,
    timeout: float = 30.0,
) -> tuple[Path, Path | None]:
    """Make sure ``name``'s weights are in ``models_dir`` (downloading them if needed).

    Returns ``(checkpoint, tokenizer)``; the tokenizer is ``None`` for models without one.
    ``base_url`` is the official location unless ``WEIGHTS_URL`` points at a mirror.
    ``progress``: show a tqdm bar on stderr (``None``: only when stderr is a terminal); the log
    always gets a line every few percent. ``checksums`` maps file name → expected MD5 (default:
    the official table). A dropped connection is resumed up to ``retries`` times, waiting
    ``retry_delay`` seconds, doubled after each try.
    """
    ckpt_name, tokenizer_name = model_filenames(name)
    table = OFFICIAL_CHECKSUMS if checksums is None else checksums
    folder = Path(models_dir).expanduser()
    base = base_url.rstrip("/")
    options = _Options(progress=progress, retries=retries, delay=retry_delay, timeout=timeout)
    checkpoint = _ensure_file(
        f"{base}/{ckpt_name}", folder / ckpt_name, table.get(ckpt_name), options, model=name
    )
    tokenizer = None
    if tokenizer_name is not None:
        tokenizer = _ensure_file(
            f"{base}/{tokenizer_name}",
            folder / tokenizer_name,
            table.get(tokenizer_name),
            options,
            model=name,
        )
    return checkpoint, tokenizer


def model_paths(settings: Settings, *, progress: bool | None = None) -> tuple[Path, Path | None]:
    """Checkpoint and tokenizer the service should load, per settings.

    ``CHECKPOINT_PATH`` wins (fine-tunes, air-gapped hosts, tests): it must exist, and its
    tokenizer is ``TOKENIZER_PATH`` or else ``<stem>_tokenizer.model`` beside it when present.
    Otherwise ``MODEL`` is fetched from ``WEIGHTS_URL`` into ``MODELS_DIR`` (or found cached).
    """
    if settings.checkpoint_path is not None:
        checkpoint = settings.checkpoint_path.expanduser()
        if not checkpoint.is_file():
            raise WeightsError(f"CHECKPOINT_PATH={checkpoint} does not exist or is not a file")
        tokenizer = settings.tokenizer_path
        if tokenizer is not None:
            tokenizer = tokenizer.expanduser()
            if not tokenizer.is_file():
                raise WeightsError(f"TOKENIZER_PATH={tokenizer} does not exist or is not a file")
        else:
            sibling = tokenizer_beside(checkpoint)
            tokenizer = sibling if sibling.is_file() else None
        return checkpoint, tokenizer
    return ensure_model(
        settings.model, settings.models_dir, settings.weights_url, progress=progress
    )


def file_md5(path: Path) -> str:
    """MD5 hex digest of a file, read in blocks so memory stays flat."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def cached_md5(path: Path) -> str:
    """MD5 of ``path``, reusing the ``.md5`` sidecar while the file's size and mtime match."""
    stat = path.stat()
    sidecar = _sidecar(path)
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        if record["size"] == stat.st_size and record["mtime_ns"] == stat.st_mtime_ns:
            return str(record["md5"])
    log.info("verifying %s (%s)...", path.name, _mb(stat.st_size))
    md5 = file_md5(path)
    _write_sidecar(path, md5)
    return md5


class _Options:
    """Download knobs passed down from :func:`ensure_model`."""

    def __init__(self, *, progress: bool | None, retries: int, delay: float, timeout: float):
        self.progress = progress
        self.retries = max(0, retries)
        self.delay = max(0.0, delay)
        self.timeout = timeout


def _ensure_file(url: str, dest: Path, md5: str | None, options: _Options, *, model: str) -> Path:
    """``dest`` present and verified, downloading ``url`` under a per-file lock if needed."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(dest.parent / f".{dest.name}.lock"))
        with _acquire(lock, dest.name):
            if _cached_ok(dest, md5):
                return dest
            _download(url, dest, md5, options, model=model)
            return dest
    except PermissionError as exc:
        # A read-only volume is fine as long as it already holds good weights.
        if _cached_ok(dest, md5, repair=False):
            return dest
        raise WeightsError(
            f"MODELS_DIR={dest.parent} is not writable ({exc.strerror}) and holds no verified "
            f"{dest.name}; make it writable (Docker: the folder mounted there must belong to "
            f"UID 1000: `sudo chown -R 1000:1000 <that folder>`) or set MODELS_DIR to a "
            "writable folder"
        ) from None


@contextlib.contextmanager
def _acquire(lock: FileLock, name: str) -> Iterator[None]:
    """Hold ``lock``, saying in the log when we wait for another process's download."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("another process is downloading %s; waiting for it to finish", name)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _cached_ok(dest: Path, md5: str | None, *, repair: bool = True) -> bool:
    """Whether ``dest`` exists and matches ``md5``; a corrupt copy is removed when ``repair``."""
    if not dest.is_file():
        return False
    if md5 is None:
        return True
    actual = cached_md5(dest)
    if actual == md5.lower():
        return True
    log.warning(
        "cached %s is corrupt (md5 %s, expected %s); fetching it again", dest.name, actual, md5
    )
    if repair:
        dest.unlink(missing_ok=True)
        _sidecar(dest).unlink(missing_ok=True)
    return False


class _Partial:
    """The ``.part`` file being filled, with a running MD5 of exactly the bytes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.responses = 0  # how many HTTP bodies the bytes came from (1 = one clean transfer)
        if path.is_file():
            with path.open("rb") as f:
                while block := f.read(_HASH_BLOCK):
                    self.digest.update(block)
                    self.size += len(block)
            if self.size:
                self.responses = 1

    def reset(self) -> None:
        self.path.write_bytes(b"")
        self.digest = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.responses = 0


def _download(url: str, dest: Path, md5: str | None, options: _Options, *, model: str) -> None:
    part = dest.with_name(dest.name + ".part")
    started_fresh = False
    while True:
        partial = _Partial(part)
        if partial.size:
            log.info("resuming %s from %s", dest.name, _mb(partial.size))
        _fetch_with_retries(url, partial, options, model=model)
        actual = partial.digest.hexdigest()
        if md5 is None or actual == md5.lower():
            break
        part.unlink(missing_ok=True)
        if partial.responses > 1 and not started_fresh:
            # Bytes stitched from several responses (or an old .part) may not belong together.
            log.warning("%s failed its checksum after a resume; downloading it afresh", dest.name)
            started_fresh = True
            continue
        raise WeightsError(
            f"checksum mismatch for {dest.name} downloaded from {url}: md5 {actual}, expected "
            f"{md5}. The server does not serve the official file; check WEIGHTS_URL"
        )
    with part.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, dest)
    _write_sidecar(dest, actual)
    log.info("%s ready in %s", dest.name, dest.parent)


def _fetch_with_retries(url: str, partial: _Partial, options: _Options, *, model: str) -> None:
    headers = {"User-Agent": f"gigaam-api/{__version__}", "Accept-Encoding": "identity"}
    with httpx.Client(follow_redirects=True, timeout=options.timeout, headers=headers) as client:
        attempt = 0
        while True:
            try:
                _fetch_once(client, url, partial, options)
                return
            except (httpx.TransportError, _Transient) as exc:
                attempt += 1
                reason = str(exc) or type(exc).__name__
                # Connection refused / no DNS usually means offline: fail fast, retry once.
                limit = options.retries
                if isinstance(exc, httpx.ConnectError):
                    limit = min(limit, 1)
                if attempt > limit:
                    raise WeightsError(_unreachable_message(url, partial, model, reason)) from None
                wait = options.delay * 2 ** (attempt - 1)
                log.warning(
                    "download of %s interrupted (%s); retrying in %.0f s (%d/%d), %s kept",
                    partial.path.name.removesuffix(".part"),
                    reason,
                    wait,
                    attempt,
                    limit,
                    _mb(partial.size),
                )
                time.sleep(wait)


def _fetch_once(client: httpx.Client, url: str, partial: _Partial, options: _Options) -> None:
    request_headers = {"Range": f"bytes={partial.size}-"} if partial.size else {}
    name = partial.path.name.removesuffix(".part")
    with client.stream("GET", url, headers=request_headers) as response:
        status = response.status_code
        if status == 416:
            # Our .part is longer than the file (or the file changed): start over.
            partial.reset()
            raise _Transient("server rejected the resume range; restarting")
        if status == 404:
            raise WeightsError(f"{url} was not found (HTTP 404); check WEIGHTS_URL and the name")
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status} from {url}")
        if status not in (200, 206):
            raise WeightsError(f"HTTP {status} from {url}")
        total = _content_length(response)
        if status == 206:
            start, whole = _content_range(response.headers.get("content-range", ""))
            if start != partial.size:
                partial.reset()
                raise _Transient("server resumed at the wrong offset; restarting")
            total = whole if whole is not None else (None if total is None else start + total)
        elif partial.size:
            log.info("server ignored the resume request; downloading %s from the start", name)
            partial.reset()
        _check_disk_space(partial, total)
        partial.responses += 1
        bar = _Progress(name, total, partial.size, options.progress)
        try:
            with partial.path.open("ab") as f:
                for chunk in response.iter_raw():
                    f.write(chunk)
                    partial.digest.update(chunk)
                    partial.size += len(chunk)
                    bar.update(partial.size)
        finally:
            bar.close()
        if total is not None and partial.size != total:
            raise _Transient(f"connection closed at {partial.size} of {total} bytes")


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


def _content_range(value: str) -> tuple[int, int | None]:
    """``bytes START-END/TOTAL`` → (START, TOTAL or None); malformed → (-1, None)."""
    try:
        unit, _, spec = value.partition(" ")
        span, _, whole = spec.partition("/")
        start = int(span.split("-", 1)[0])
        if unit.strip().lower() != "bytes":
            return -1, None
        return start, (int(whole) if whole.strip().isdigit() else None)
    except ValueError:
        return -1, None


def _check_disk_space(partial: _Partial, total: int | None) -> None:
    if total is None:
        return
    needed = total - partial.size
    free = shutil.disk_usage(partial.path.parent).free
    if free < needed + _DISK_MARGIN:
        raise WeightsError(
            f"not enough disk space in {partial.path.parent} for "
            f"{partial.path.name.removesuffix('.part')}: {_mb(needed)} needed, {_mb(free)} free"
        )


class _Progress:
    """Log a line every few percent (servers log to files); a tqdm bar too on a terminal."""

    def __init__(self, name: str, total: int | None, start: int, show_bar: bool | None) -> None:
        self.name = name
        self.total = total
        self.start = start
        self.began = time.monotonic()
        self.next_log = self._next_mark(start)
        if show_bar is None:
            show_bar = sys.stderr.isatty()
        self.bar: tqdm[Any] | None = None
        if show_bar:
            self.bar = tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=name,
                file=sys.stderr,
                leave=True,
            )
        log.info(
            "downloading %s (%s)%s",
            name,
            _mb(total) if total is not None else "size unknown",
            f", resuming at {_mb(start)}" if start else "",
        )
        self.shown = start

    def _next_mark(self, done: int) -> int:
        if self.total:
            step = max(1, self.total * _LOG_STEP_PERCENT // 100)
        else:
            step = _LOG_STEP_BYTES_UNKNOWN_TOTAL
        return (done // step + 1) * step

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.shown)
        self.shown = done
        if done >= self.next_log:
            elapsed = max(time.monotonic() - self.began, 1e-6)
            speed = (done - self.start) / elapsed
            # On a terminal the bar shows progress; keep the log quiet to not garble it.
            emit = log.debug if self.bar is not None else log.info
            if self.total:
                emit(
                    "%s: %d%% (%s of %s, %s/s)",
                    self.name,
                    done * 100 // self.total,
                    _mb(done),
                    _mb(self.total),
                    _mb(int(speed)),
                )
            else:
                emit("%s: %s (%s/s)", self.name, _mb(done), _mb(int(speed)))
            self.next_log = self._next_mark(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _unreachable_message(url: str, partial: _Partial, model: str, reason: str) -> str:
    kept = f" ({_mb(partial.size)} kept in {partial.path.name}; the next try resumes)"
    return (
        f"could not download {url}: {reason}{kept if partial.size else ''}. "
        f"No verified copy is cached in {partial.path.parent}. Either pre-download the weights "
        f"where the network is reachable with `gigaam-api download {model}` (or "
        f"`make download-weights-local`) and copy them into MODELS_DIR, point WEIGHTS_URL at a "
        "reachable mirror, or set CHECKPOINT_PATH to a local .ckpt file"
    )


def _check_name(name: str) -> None:
    if name not in CATALOGUE:
        raise WeightsError(
            f"unknown model {name!r}; the official weights are: {', '.join(CATALOGUE)}"
        )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".md5")


def _write_sidecar(path: Path, md5: str) -> None:
    """Remember ``path``'s MD5 for its current size and mtime; best effort (read-only dirs)."""
    try:
        stat = path.stat()
        record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "md5": md5}
        tmp = _sidecar(path).with_suffix(".md5.tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, _sidecar(path))
    except OSError as exc:
        log.debug("could not write the checksum cache for %s: %s", path.name, exc)


def _mb(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB"
