"""The web page at ``/`` (setting ``WEB_UI``): drop recordings, follow the jobs, read, listen,
download subtitles — for people who will never write a curl command.

The page is static HTML, CSS and JavaScript modules shipped inside the package
(``gigaam_api/web/static``, no build step, nothing fetched from the internet) and talks only to
this server's public API (``/v1/jobs``, ``/v1/models``) exactly as any client would. It holds
no secrets: with ``API_KEY`` set it asks the person for the key and keeps it in the browser.

Files are served from a fixed list made when the app is built, so no request path ever
reaches the file system, and every response carries a strict Content-Security-Policy: scripts,
styles, media and connections from this origin only, no inline script, no framing.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Where the page's assets live under the server's root (kept off the API's own paths).
ASSET_PREFIX = "/web"

#: Same-origin only (with ``API_KEY`` the player streams a signed link, so no ``blob:`` media);
#: ``data:`` images are the CSS's inline icons.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # the Record button asks for this page's own microphone (no frame may: see above)
    "Permissions-Policy": "camera=(), microphone=(self), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Revalidate every time (ETag), so an upgraded server never runs yesterday's script.
    "Cache-Control": "no-cache",
}

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


def asset_files(static_dir: Path = STATIC_DIR) -> dict[str, Path]:
    """Every servable asset by its name, e.g. ``{"app.js": …/static/app.js}``."""
    return {
        path.name: path
        for path in sorted(static_dir.iterdir())
        if path.is_file() and path.suffix in _MEDIA_TYPES and path.name != "index.html"
    }


def _serve(path: Path) -> FileResponse:
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


def web_router(static_dir: Path = STATIC_DIR) -> APIRouter:
    """``GET /`` (the page) and ``GET /web/<name>`` (its assets, from a fixed list)."""
    router = APIRouter()
    index = static_dir / "index.html"
    assets = asset_files(static_dir)

    @router.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return _serve(index)

    @router.get(ASSET_PREFIX + "/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        path = assets.get(name)
        if path is None:  # the app's 404 handler words it like any unknown route
            raise HTTPException(status_code=404)
        return _serve(path)

    return router


def install_web(app: FastAPI) -> None:
    """Mount the page on ``app`` (called by ``api/app.py`` when ``WEB_UI`` is on)."""
    app.include_router(web_router())
