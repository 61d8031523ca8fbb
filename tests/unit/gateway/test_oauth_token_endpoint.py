"""The sign-in routes speak OAuth 2.0 as client libraries expect (issue 9, item 12).

A real empower service (SQLite, real argon2) behind the gateway's auth router:
token errors come in RFC 6749's shape, revoking an unknown token answers 200 as
RFC 7009 asks, and a JSON body gets a 400 that says a form body is needed.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from gateway.auth import Guard
from gateway.errors import install_handlers
from gateway.routers import auth
from gateway.security.authenticator import Caller
from gateway.security.ratelimit import RateLimiter
from gateway.upstreams import Upstreams
from grassroots.empower.v1 import empower_service_pb2 as tenant_pb
from grassroots.empower.v1 import empower_service_pb2_grpc as tenant_grpc
from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from services.empower.config import EmpowerSettings
from services.empower.domain.roles import ALL_SCOPES
from services.empower.wiring import build
from services.kit.components import NAMES
from services.kit.discovery import StaticDiscovery
from services.kit.principal import Principal
from tests.conftest import serve_in_process

BOOT = Principal("services/boot", "sh", kind="service", scopes=ALL_SCOPES)
PASSWORD = "a-long-first-password"
TOKEN = "/v1/auth/token"
REVOKE = "/v1/auth/revoke"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = EmpowerSettings(
        grpc_port=0,
        host="127.0.0.1",
        database=tmp_path / "empower.sqlite3",
        seal_keys="k1:" + base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        index_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
    )
    server = await serve_in_process("empower", await build(settings))
    await tenant_grpc.EmpowerServiceStub(server.channel).CreateTenant(
        tenant_pb.CreateTenantRequest(
            tenant_id="sh",
            tenant=tenant_pb.Tenant(display_name="Shanghai", level=1, admin_code="310000"),
        ),
        metadata=BOOT.to_metadata(),
    )
    await identity_grpc.IdentityServiceStub(server.channel).CreateUser(
        identity_pb.CreateUserRequest(
            parent="tenants/sh",
            user=identity_pb.User(
                username="li.wei", display_name="Li Wei", kind=1, roles=["grid_worker"]
            ),
            password=PASSWORD,
        ),
        metadata=BOOT.to_metadata(),
    )
    app = FastAPI()
    install_handlers(app)
    app.include_router(auth.router)
    app.state.settings = SimpleNamespace(service_tenant="sh")
    app.state.guard = Guard(
        authenticator=None,
        limiter=RateLimiter(None),
        user_requests_per_minute=600,
        tenant_requests_per_minute=6000,
        anonymous_requests_per_minute=60,
        public_tenant="sh",
        fixed_caller=Caller(BOOT, None),
    )
    upstreams = Upstreams(
        StaticDiscovery({name: server.address for name in NAMES}), NAMES, timeout=5.0
    )
    app.state.upstreams = upstreams
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http
    await upstreams.close()
    await server.channel.close()
    await server.running.stop()


def oauth_error(response: httpx.Response, error: str) -> str:
    """The RFC 6749 (5.2) error body, checked; returns the description."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error, body
    assert response.headers["cache-control"] == "no-store"
    return body["error_description"]


async def test_a_sign_in_answers_tokens_never_cached(client):
    response = await client.post(
        TOKEN, data={"grant_type": "password", "username": "li.wei", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["refresh_token"].startswith("grr_")
    refreshed = await client.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text


@pytest.mark.parametrize(
    ("form", "error", "words"),
    [
        (
            {"grant_type": "password", "username": "li.wei", "password": "wrong-one"},
            "invalid_grant",
            "wrong username or password",
        ),
        (
            {"grant_type": "password", "username": "nobody", "password": PASSWORD},
            "invalid_grant",
            "wrong username or password",
        ),
        (
            {"grant_type": "refresh_token", "refresh_token": "grr_abc_def"},
            "invalid_grant",
            "refresh token",
        ),
        (
            {"grant_type": "refresh_token", "refresh_token": "not-a-token"},
            "invalid_grant",
            "refresh token",
        ),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type", "client_credentials"),
        ({"username": "li.wei", "password": PASSWORD}, "invalid_request", "grant_type is required"),
        (
            {"grant_type": "password", "username": "li.wei"},
            "invalid_request",
            "password is required",
        ),
        ({"grant_type": "refresh_token"}, "invalid_request", "refresh_token is required"),
        (
            {"grant_type": "password", "username": "x" * 129, "password": "p"},
            "invalid_request",
            "username",
        ),
    ],
)
async def test_token_errors_have_rfc_6749_shape(client, form, error, words):
    assert words in oauth_error(await client.post(TOKEN, data=form), error)


async def test_a_used_refresh_token_is_invalid_grant(client):
    issued = (
        await client.post(
            TOKEN, data={"grant_type": "password", "username": "li.wei", "password": PASSWORD}
        )
    ).json()
    form = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    assert (await client.post(TOKEN, data=form)).status_code == 200
    assert "already used" in oauth_error(await client.post(TOKEN, data=form), "invalid_grant")


async def test_a_json_body_is_told_to_send_a_form(client):
    response = await client.post(
        TOKEN, json={"grant_type": "password", "username": "li.wei", "password": PASSWORD}
    )
    description = oauth_error(response, "invalid_request")
    assert "application/x-www-form-urlencoded" in description and "JSON" in description.upper()
    revoke = await client.post(REVOKE, json={"token": "grr_abc_def"})
    assert "application/x-www-form-urlencoded" in oauth_error(revoke, "invalid_request")


async def test_revoking_any_token_answers_200(client):
    issued = (
        await client.post(
            TOKEN, data={"grant_type": "password", "username": "li.wei", "password": PASSWORD}
        )
    ).json()
    for token in (issued["refresh_token"], issued["refresh_token"], "grr_abc_def", "garbage"):
        response = await client.post(REVOKE, data={"token": token})
        assert response.status_code == 200, (token[:8], response.text)
    # The real one is revoked: it no longer refreshes.
    again = await client.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    )
    assert "revoked" in oauth_error(again, "invalid_grant")
    assert "token is required" in oauth_error(
        await client.post(REVOKE, data={"token_type_hint": "refresh_token"}), "invalid_request"
    )
