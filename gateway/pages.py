"""The town's web pages: a landing page at `/` and plain HTML/JS/CSS under `/web`.

The pages are static files that speak the public REST API with the signed-in person's
token, so they need nothing from the gateway but their files and one small settings
document (`/web/config.json`: the base-map tile URL, if any, and which coordinate
system positions and taps arrive in). Leaflet comes from the npm package pinned in
package.json, copied into `gateway/static/web/vendor` by `make web-vendor` and
committed, like Swagger UI, so `make run` serves the pages without npm or any CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from gateway.settings import GatewaySettings

ROOT = Path(__file__).parent / "static" / "web"
URL = "/web"


def tile_origin(tile_url: str) -> str:
    """The origin the pages may load tiles from ("" when tiles come from the gateway)."""
    if not tile_url or tile_url.startswith("/"):
        return ""
    parts = urlsplit(tile_url)
    return f"{parts.scheme}://{parts.netloc}"


def page_config(settings: GatewaySettings) -> dict[str, Any]:
    """What the pages read at start; nothing secret."""
    return {
        "tile_url": settings.tile_url,
        "tile_attribution": settings.tile_attribution,
        "tile_crs": settings.tile_crs,
        "device_crs": settings.device_crs,
        # Whom a page without a signed-in person speaks to (reports without an account).
        "public_tenant": settings.public_tenant,
    }


def install_pages(app: FastAPI, settings: GatewaySettings) -> None:
    """`/` (the landing page), `/web/config.json` and the files under `/web`."""
    config = page_config(settings)

    @app.get("/", include_in_schema=False)
    async def landing() -> FileResponse:
        return FileResponse(ROOT / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get(f"{URL}/config.json", include_in_schema=False)
    async def pages_config() -> JSONResponse:
        return JSONResponse(config, headers={"Cache-Control": "no-cache"})

    app.mount(URL, StaticFiles(directory=ROOT, html=True), name="web")
