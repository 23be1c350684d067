"""The browser live-caption page at `/` (plain HTML/JS under static/, no build step)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

STATIC_DIR = Path(__file__).parent / "static"


async def page(_request: Request) -> Response:
    """index.html; the page reads its token from its own `?token=`."""
    # no-store: a page cached across gateway upgrades would speak an old protocol.
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})
