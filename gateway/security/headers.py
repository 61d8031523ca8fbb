"""Security headers on every response.

API answers are JSON and never framed; pages get a strict Content-Security-Policy.
The interactive docs (/docs) load only the gateway's own Swagger UI files, so they get
the same script policy; Swagger UI sets inline styles, which their policy allows.
The web pages (`/`, `/web/`) keep the strict policy; a configured tile server's origin
is added to `img-src` only, and they may ask for the device's position (residents pin
their reports, grid workers check in), which every other answer is denied.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_PERMISSIONS = b"geolocation=(), camera=(), microphone=()"
_PAGE_PERMISSIONS = b"geolocation=(self), camera=(), microphone=()"
_STRICT_CSP = (
    b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_DOCS_CSP = _STRICT_CSP.replace(b"style-src 'self'", b"style-src 'self' 'unsafe-inline'")
_DOCS_PATHS = ("/docs",)
_PAGE_PATHS = ("/web/",)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, tile_origin: str = "") -> None:
        """`tile_origin`: where the pages' base-map tiles come from, if not the gateway."""
        self.app = app
        self.page_csp = (
            _STRICT_CSP.replace(
                b"img-src 'self' data: blob:", b"img-src 'self' data: blob: " + tile_origin.encode()
            )
            if tile_origin
            else _STRICT_CSP
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        page = path == "/" or path.startswith(_PAGE_PATHS)
        csp = _DOCS_CSP if path.startswith(_DOCS_PATHS) else self.page_csp if page else _STRICT_CSP
        permissions = _PAGE_PERMISSIONS if page else _PERMISSIONS
        private = path.startswith(("/v1/", "/open311/", "/ogc/"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in _COMMON:
                    if name not in present:
                        headers.append((name, value))
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                if b"permissions-policy" not in present:
                    headers.append((b"permissions-policy", permissions))
                if private and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
