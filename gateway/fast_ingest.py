"""Telemetry over REST without FastAPI's routing: the path devices call per reading.

`POST /v1/tenants/{tenant}:ingestTelemetry` is what a device gateway calls once per
reading, thousands of times a second. Its plain case (`gateway.fast_routes`): a JSON
body the route's model (`TelemetryIn`) accepts. The readings go through the same
coalescer as the route's and are answered with the same `answer`.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from starlette.responses import Response

from gateway.auth import call_metadata
from gateway.errors import call
from gateway.fast_routes import FastRoute, json_body
from gateway.paths import parent
from gateway.schemas.identity import TENANT_ID_PATTERN
from gateway.schemas.twin import TelemetryIn
from gateway.telemetry_ingests import TelemetryIngests, answer, message_of
from services.kit.principal import Principal


class FastIngest(FastRoute):
    """Stands in for `POST /v1/tenants/{tenant}:ingestTelemetry` (`route`)."""

    method = "POST"
    body = True

    def __init__(self, route: APIRoute) -> None:
        super().__init__(route, {"tenant": TENANT_ID_PATTERN})

    def take(
        self, params: dict[str, str], headers: dict[bytes, str], body: bytes
    ) -> tuple[str, TelemetryIn] | None:
        """The tenant and the body as the route's model reads it (JSON, then the model)."""
        readings = json_body(body, TelemetryIn)
        return None if readings is None else (params["tenant"], readings)

    async def answer(self, state: Any, who: Principal, taken: tuple[str, TelemetryIn]) -> Response:
        tenant, readings = taken
        ingests: TelemetryIngests = state.telemetry_ingests
        outcome = await call(
            ingests.ingest(
                state.upstreams.twin,
                message_of(parent(tenant), readings),
                call_metadata(who),
                who.to_metadata(),
            )
        )
        return Response(answer(outcome), media_type="application/json")
