"""Telemetry over REST without FastAPI's routing: the path devices call per reading.

`POST /v1/tenants/{tenant}:ingestTelemetry` is what a device gateway calls once per
reading, thousands of times a second. Through FastAPI a request spent more of the
gateway's CPU on matching routes, solving dependencies and passing through the
framework's layers than on admitting the caller and forwarding the reading. This ASGI
middleware sits innermost of the gateway's own, so request ids, metrics, security
headers, body limits, idempotent replays and CORS still apply as to every route, and
answers that route itself when the request is the plain case: a JSON body the route's
model (`TelemetryIn`) accepts, no query string, credentials in a header. It admits the
caller with the same `Guard` and the scopes the route's contract declares, sends the
readings through the same coalescer and answers what the route answers (`answer`).

Anything else - a body the model refuses, no credentials, a query parameter - goes on,
body and all, to the FastAPI route, which answers it as before. It is decided before
the caller is admitted, so no request is charged to the rate limits twice.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import Guard, call_metadata, endpoint_scopes
from gateway.errors import ApiError, call
from gateway.paths import parent
from gateway.schemas.identity import TENANT_ID_PATTERN
from gateway.schemas.twin import TelemetryIn
from gateway.telemetry_ingests import TelemetryIngests, answer, message_of

_PATH = re.compile(r"/v1/tenants/([^/]+):ingestTelemetry")
_TENANT = re.compile(TENANT_ID_PATTERN)
_JSON = (b"content-type", b"application/json")


class FastIngest:
    """See the module docstring. `route` is the FastAPI route it stands in for."""

    def __init__(self, app: ASGIApp, route: APIRoute) -> None:
        self.app = app
        self.route = route
        scopes = endpoint_scopes(route.endpoint)
        if scopes is None:
            raise ValueError(f"{route.path} declares no RPC")
        self.scopes = scopes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._plain(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        tenant, bearer, api_key = found
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        readings = _readings(body)
        if readings is None:
            await self.app(scope, _replaying(body, receive), send)
            return
        state = scope["app"].state
        try:
            await self._ingest(scope, send, state, tenant, readings, bearer, api_key)
        except ApiError as exc:
            await exc.response()(scope, receive, send)

    def _plain(self, scope: Scope) -> tuple[str, str | None, str | None] | None:
        """(tenant, bearer, API key) when this route's plain case, else None."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
            return None
        matched = _PATH.fullmatch(scope["path"])
        if matched is None or not _TENANT.match(matched[1]):
            return None
        bearer = api_key = None
        json_body = False
        for key, value in scope["headers"]:
            if key == b"content-type":
                json_body = value.split(b";", 1)[0].strip() == b"application/json"
            elif key == b"x-api-key":
                api_key = value.decode("latin-1") or None
            elif key == b"authorization":
                # As FastAPI's HTTPBearer reads it: "Bearer <credentials>", else nothing.
                kind, _, credentials = value.decode("latin-1").partition(" ")
                if kind.lower() == "bearer" and credentials:
                    bearer = credentials
        if not json_body or (bearer is None and api_key is None):
            return None
        return matched[1], bearer, api_key

    async def _ingest(
        self,
        scope: Scope,
        send: Send,
        state: Any,
        tenant: str,
        readings: TelemetryIn,
        bearer: str | None,
        api_key: str | None,
    ) -> None:
        guard: Guard = state.guard
        peer = scope.get("client")
        forwarded = _header(scope, b"x-forwarded-for")
        source = guard.clients.resolve(peer[0] if peer else None, forwarded)
        who = await guard.admit(bearer, api_key, self.scopes, source)
        scope["route"] = self.route  # metrics and traces name the route, as FastAPI does
        scope["endpoint"] = self.route.endpoint
        scope.setdefault("state", {})["principal"] = who
        ingests: TelemetryIngests = state.telemetry_ingests
        outcome = await call(
            ingests.ingest(
                state.upstreams.twin,
                message_of(parent(tenant), readings),
                call_metadata(who),
                who.to_metadata(),
            )
        )
        body = answer(outcome)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), _JSON],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _readings(body: bytes) -> TelemetryIn | None:
    """The body as the route's model reads it (JSON, then the model), or None."""
    try:
        return TelemetryIn.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for the app behind: the body already read, then whatever comes next."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
