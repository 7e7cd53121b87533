"""``gigaam-api listen``: live text from a running server's realtime door, in a terminal.

It speaks OpenAI's Realtime transcription protocol like any client (``/v1/realtime?intent=
transcription``, ``session.update`` with 24 kHz PCM16, ``input_audio_buffer.append``), so it is
also a working example of it. The audio is the default input device (through ``sounddevice``,
the optional ``mic`` extra, with the PortAudio library) or ``--file F``, decoded by the same
decoder path the server uses for an upload and sent at real-time pace (``--fast``: as fast as
the socket takes it, for tests and demos). On a terminal the interim text of the turn being
spoken is rewritten in place and each final gets its own line; piped, only the finals are
printed. ``--save`` keeps the recording on the server as a job (this server's ``save``
extension) and prints its id last, on standard error.

The server is ``--url`` (or ``GIGAAM_URL``, default ``http://127.0.0.1:8000``) and the key
``--api-key`` (or ``GIGAAM_API_KEY``, else ``API_KEY``), as for ``gigaam-api jobs``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit, urlunsplit

from gigaam_api.jobs_cli import DEFAULT_URL, JobsCliError

#: The PCM rate OpenAI's realtime door takes (and so the one this client sends).
RATE = 24000
#: Audio per ``input_audio_buffer.append``: 100 ms.
CHUNK_SAMPLES = RATE // 10
#: Error codes after which the server closes the session (the others are about one event).
FATAL_CODES = frozenset(
    {
        "invalid_api_key",
        "session_limit_reached",
        "model_not_ready",
        "session_expired",
        "idle_timeout",
    }
)
#: Seconds to wait for the last final and the server's goodbye after the audio ended.
FINISH_TIMEOUT_S = 120.0


class ListenError(JobsCliError):
    """Reported as ``error: <message>`` with exit code 1 (like the jobs client's errors)."""


def add_listen_parser(commands: Any) -> None:
    """Register ``listen`` on the main parser's subparsers."""
    listen = commands.add_parser(
        "listen",
        help="print live text from the microphone or a file (a server's /v1/realtime)",
        description="Live transcription through a running server's realtime door: the "
        "default input device, or a file played in real time.",
    )
    listen.add_argument(
        "--url", default=None, help=f"server URL (default: GIGAAM_URL or {DEFAULT_URL})"
    )
    listen.add_argument(
        "--api-key", default=None, help="API key (default: GIGAAM_API_KEY or API_KEY)"
    )
    listen.add_argument(
        "--file", type=Path, metavar="F", help="play this file instead of the microphone"
    )
    listen.add_argument(
        "--fast", action="store_true", help="with --file: do not wait for real time"
    )
    listen.add_argument("--language", metavar="CODE", help="the spoken language (ISO 639-1)")
    listen.add_argument(
        "--save", action="store_true", help="keep the recording as a job on the server"
    )
    listen.add_argument(
        "--device", default=None, help="input device (name or number; default: the system's)"
    )


def door_url(base: str, *, save: bool) -> str:
    """``http(s)://host[:port][/prefix]`` → ``ws(s)://…/v1/realtime?intent=transcription``."""
    parts = urlsplit(base.rstrip("/"))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ListenError(f"not a server URL: {base!r}")
    query = {"intent": "transcription", **({"save": "true"} if save else {})}
    return urlunsplit((scheme, parts.netloc, parts.path + "/v1/realtime", urlencode(query), ""))


def file_chunks(path: Path) -> Iterator[bytes]:
    """``path`` as 24 kHz mono PCM16 chunks: decoded to 16 kHz by the server's own decoder path
    (so the samples are the ones an upload gives), then resampled by libswresample."""
    import av
    import numpy as np

    from gigaam_api import audio
    from gigaam_api.constants import SAMPLE_RATE

    if not path.is_file():
        raise ListenError(f"{path}: no such file")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE, frame_size=CHUNK_SAMPLES)
    pts = 0

    def resampled(block: Any) -> Iterator[bytes]:
        for frame in resampler.resample(block):
            yield frame.to_ndarray().astype("<i2").tobytes()

    try:
        with audio.decode_pcm(path) as stream:
            for block in stream:
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(block, dtype=np.int16).reshape(1, -1),
                    format="s16",
                    layout="mono",
                )
                frame.sample_rate = SAMPLE_RATE
                frame.pts = pts
                pts += len(block)
                yield from resampled(frame)
    except audio.AudioError as exc:
        raise ListenError(f"{path}: {exc.message}") from None
    yield from resampled(None)


def mic_chunks(device: str | None, stop: threading.Event) -> Iterator[bytes]:
    """The default (or ``device``) input as 24 kHz mono PCM16 chunks until ``stop`` is set.

    Checked at once (before any connection is made): a missing package or PortAudio library is
    a clear error, not a traceback after the session started.
    """
    try:
        import sounddevice
    except ImportError:
        raise ListenError(
            "recording from a microphone needs the optional 'sounddevice' package (the "
            "'mic' extra: pip install -e '.[mic]') and the PortAudio library "
            "(apt-get install libportaudio2); or play a file with --file"
        ) from None
    except OSError as exc:  # the package is there but PortAudio is not
        raise ListenError(f"the microphone cannot be used: {exc}") from None
    return _recorded(sounddevice, device, stop)


def _recorded(sounddevice: Any, device: str | None, stop: threading.Event) -> Iterator[bytes]:
    blocks: queue.Queue[bytes] = queue.Queue()
    selected: int | str | None = int(device) if device and device.isdigit() else device
    try:
        with sounddevice.RawInputStream(
            samplerate=RATE,
            channels=1,
            dtype="int16",
            blocksize=CHUNK_SAMPLES,
            device=selected,
            callback=lambda data, _frames, _time, _status: blocks.put(bytes(data)),
        ):
            while not stop.is_set():
                try:
                    yield blocks.get(timeout=0.2)
                except queue.Empty:
                    continue
    except sounddevice.PortAudioError as exc:
        raise ListenError(f"the microphone cannot be used: {exc}") from None


class Printer:
    """Finals on their own lines; on a terminal, the interim text rewritten in place."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.interim = ""

    def delta(self, text: str) -> None:
        self.interim += text
        if self.tty:
            width = max(shutil.get_terminal_size().columns - 1, 10)
            shown = self.interim.strip()[-width:]
            self.out.write(f"\r\x1b[K\x1b[2m{shown}\x1b[0m")
            self.out.flush()

    def final(self, text: str) -> None:
        self.interim = ""
        if self.tty:
            self.out.write("\r\x1b[K")
        if text.strip():
            self.out.write(text.strip() + "\n")
        self.out.flush()


def run_listen(args: argparse.Namespace) -> int:
    """Run one live session; returns the exit code (raises :class:`ListenError`)."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    base = args.url or os.environ.get("GIGAAM_URL") or DEFAULT_URL
    key = args.api_key or os.environ.get("GIGAAM_API_KEY") or os.environ.get("API_KEY") or ""
    url = door_url(base, save=args.save)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    stop = threading.Event()
    chunks = file_chunks(args.file) if args.file else mic_chunks(args.device, stop)
    try:
        ws = connect(url, additional_headers=headers, max_size=None, open_timeout=30)
    except InvalidStatus as exc:
        status = exc.response.status_code
        hint = " (the API key is wrong)" if status in (401, 403) else ""
        raise ListenError(f"the server refused live transcription: HTTP {status}{hint}") from None
    except (OSError, WebSocketException) as exc:
        raise ListenError(f"cannot reach the server's realtime door at {url}: {exc}") from None
    printer = Printer(sys.stdout)
    outcome: dict[str, Any] = {}
    reader = threading.Thread(target=_read, args=(ws, printer, outcome, stop), daemon=True)
    reader.start()
    with ws:
        session: dict[str, Any] = {
            "type": "transcription",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": RATE}}},
        }
        if args.language:
            session["audio"]["input"]["transcription"] = {"language": args.language}
        try:
            ws.send(json.dumps({"type": "session.update", "session": session}))
            _send_audio(ws, chunks, stop, paced=bool(args.file) and not args.fast)
            ws.send(json.dumps({"type": "session.finish"}))
        except KeyboardInterrupt:  # Ctrl-C ends the audio; the last turn's final still comes
            stop.set()
            with contextlib.suppress(ConnectionClosed):
                ws.send(json.dumps({"type": "session.finish"}))
        except ConnectionClosed:
            pass
        reader.join(FINISH_TIMEOUT_S)
    if "error" in outcome:
        raise ListenError(outcome["error"])
    job = outcome.get("job")
    if job:
        print(f"saved as job {job['id']}", file=sys.stderr)
    return 0


def _send_audio(ws: Any, chunks: Iterator[bytes], stop: threading.Event, *, paced: bool) -> None:
    started = time.monotonic()
    sent = 0.0
    for chunk in chunks:
        if stop.is_set():
            break
        ws.send(
            json.dumps(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()}
            )
        )
        sent += len(chunk) / (2 * RATE)
        if paced:
            time.sleep(max(started + sent - time.monotonic(), 0.0))


def _read(ws: Any, printer: Printer, outcome: dict[str, Any], stop: threading.Event) -> None:
    """Print the server's events until it says goodbye or closes; a fatal error ends the audio."""
    from websockets.exceptions import ConnectionClosed

    try:
        for message in ws:
            event = json.loads(message)
            kind = event.get("type")
            if kind == "conversation.item.input_audio_transcription.delta":
                printer.delta(str(event.get("delta") or ""))
            elif kind == "conversation.item.input_audio_transcription.completed":
                printer.final(str(event.get("transcript") or ""))
            elif kind == "session.finished":
                outcome["job"] = event.get("job")
                break
            elif kind == "error":
                error = event.get("error") or {}
                message = str(error.get("message"))
                if error.get("code") == "invalid_api_key":
                    message = f"the server did not accept the API key: {message}"
                if error.get("code") in FATAL_CODES:  # the server closes the session after it
                    outcome["error"] = message
                    stop.set()
                else:
                    print(f"gigaam-api: server: {message}", file=sys.stderr)
    except ConnectionClosed as exc:
        if exc.rcvd is not None and exc.rcvd.code not in (1000, 1001) and "job" not in outcome:
            outcome.setdefault(
                "error", f"the server closed the session: {exc.rcvd.reason or exc.rcvd.code}"
            )
            stop.set()
    printer.final("")
