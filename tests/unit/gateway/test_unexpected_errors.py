"""An unexpected failure answers 500 in the platform's shape, with the request id to quote."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from gateway.errors import install_handlers
from gateway.middleware import RequestContextMiddleware


def _app() -> FastAPI:
    app = FastAPI()
    install_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise AttributeError("a bug")

    return app


async def test_a_500_carries_the_request_id_in_body_and_header():
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        answer = await client.get("/boom", headers={"X-Request-ID": "req-quoted-1"})
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "req-quoted-1"
    error = answer.json()["error"]
    assert error["status"] == "INTERNAL"
    assert error["message"] == "internal error"  # no trace, no exception text
    assert error["request_id"] == "req-quoted-1"


async def test_a_500_without_an_incoming_id_names_the_minted_one():
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        answer = await client.get("/boom")
    assert answer.status_code == 500
    assert answer.json()["error"]["request_id"] == answer.headers["x-request-id"]
