"""Reporting an event and reading one back without FastAPI's routing (ADR 28, 33).

A report is the one write every scenario makes, and district-wide alarms arrive in
bursts; reading an event back is the read apps make most. Their plain cases
(`gateway.fast_routes`) are answered by the same code as the routes
(`gateway.routers.events`: `create_request`, `report`, `read`):

* `POST /v1/tenants/{tenant}/events`: a JSON body `EventCreate` accepts and a key the
  route takes (`request_id` in the body, an `Idempotency-Key` header, or both the
  same). The events service keeps the key (ADR 3), so a retry is answered
  `Idempotent-Replayed: true` from there, as through the route.
* `GET /v1/tenants/{tenant}/events/{event}`.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from starlette.responses import Response

from gateway.errors import ApiError
from gateway.fast_routes import FastRoute, json_body
from gateway.idempotency import HEADER
from gateway.routers.events import (
    ID_PATTERN,
    KEY_MAX_LENGTH,
    create_request,
    read,
    report,
)
from gateway.schemas.events import EventCreate
from gateway.schemas.identity import TENANT_ID_PATTERN
from grassroots.events.v1 import events_service_pb2 as pb
from services.kit.principal import Principal

_KEY = HEADER.lower().encode()


class FastCreate(FastRoute):
    """Stands in for `POST /v1/tenants/{tenant}/events` (`route`)."""

    method = "POST"
    body = True
    headers = frozenset({_KEY})

    def __init__(self, route: APIRoute) -> None:
        super().__init__(route, {"tenant": TENANT_ID_PATTERN})

    def take(
        self, params: dict[str, str], headers: dict[bytes, str], body: bytes
    ) -> pb.CreateEventRequest | None:
        """The CreateEvent call, when the body and the key are what the route takes."""
        key = headers.get(_KEY)
        if key is not None and len(key) > KEY_MAX_LENGTH:
            return None
        report_in = json_body(body, EventCreate)
        if report_in is None:
            return None
        try:
            return create_request(params["tenant"], report_in, key)
        except ApiError:  # no key, or a malformed one: the route says which
            return None

    async def answer(self, state: Any, who: Principal, taken: pb.CreateEventRequest) -> Response:
        return await report(state, taken, who)


class FastGet(FastRoute):
    """Stands in for `GET /v1/tenants/{tenant}/events/{event}` (`route`)."""

    method = "GET"

    def __init__(self, route: APIRoute) -> None:
        super().__init__(route, {"tenant": TENANT_ID_PATTERN, "event": ID_PATTERN})

    def take(
        self, params: dict[str, str], headers: dict[bytes, str], body: bytes
    ) -> dict[str, str]:
        return params

    async def answer(self, state: Any, who: Principal, taken: dict[str, str]) -> Response:
        return await read(state, taken["tenant"], taken["event"], who)
