"""A real HTTP file server on the loopback interface, standing in for the weights mirror.

``FileServer`` is ``http.server`` in a thread with our own Range handling and knobs for the
failures a real CDN shows: a connection dropped mid-file, no Range support, 5xx once. The
weights download (``tests/test_weights.py``), the ``download`` command
(``tests/test_cli.py``) and the self-healing first start (``tests/test_first_start.py``) all
fetch from it, so it lives here rather than in one of them.
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: URL path every served file sits under, as on the real mirror.
PREFIX = "/GigaAM"


class FileServer:
    """Serves ``files`` (URL path → bytes) over HTTP/1.0 on 127.0.0.1, recording requests."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[tuple[str, str | None]] = []
        self.range_support = True
        #: path → bytes to send before closing the connection; applies to the next request only.
        self.drop_after: dict[str, int] = {}
        #: path → HTTP status to answer once before serving normally.
        self.fail_once: dict[str, int] = {}
        self.chunk_delay = 0.0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{PREFIX}"

    def gets(self, name: str) -> list[str | None]:
        """Range headers of the GET requests made for file ``name``."""
        with self._lock:
            return [rng for path, rng in self.requests if path == f"{PREFIX}/{name}"]

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        range_header = h.headers.get("Range")
        with self._lock:
            self.requests.append((h.path, range_header))
            status = self.fail_once.pop(h.path, None)
            drop = self.drop_after.pop(h.path, None)
        data = self.files.get(h.path)
        if status is not None or data is None:
            h.send_response(status or 404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        start = 0
        if range_header and self.range_support:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        body = data[start:]
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes" if self.range_support else "none")
        h.end_headers()
        limit = len(body) if drop is None else drop
        for offset in range(0, limit, 64 * 1024):
            h.wfile.write(body[offset : min(offset + 64 * 1024, limit)])
            if self.chunk_delay:
                time.sleep(self.chunk_delay)
        h.wfile.flush()
        if drop is not None:
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
