"""The interactive API docs at /docs, served entirely by the gateway.

Government intranets are often offline, so Swagger UI comes from the npm package
`swagger-ui-dist` (pinned in package.json) vendored under `gateway/static/swagger-ui`
by `make swagger-ui`; the page loads nothing from another origin, which also lets it
run under a strict Content-Security-Policy (no inline script).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "static" / "swagger-ui"
ASSETS_URL = "/docs/assets"

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{title}}</title>
<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS_URL}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_URL}/init.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """/docs and its assets; the app is built with docs_url=None and redoc_url=None."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    page = _PAGE.replace("{title}", f"{app.title} - docs")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)
