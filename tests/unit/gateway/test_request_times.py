"""Every time a REST request carries, in a body or a query, is RFC 3339 with an offset.

A time without one (`2026-12-01T09:00:00`), a date alone or a unix time is 400 naming
the parameter: read as UTC, a service plan's 09:00 would fire at 17:00 in China. One
annotated type (`Rfc3339Time`) reads them all; the walk below finds any route that
takes a `datetime` some other way.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

from gateway.app import create_app
from gateway.schemas.common import Rfc3339Time
from gateway.security.authenticator import Caller
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams
from services.kit.components import NAMES
from services.kit.discovery import StaticDiscovery
from services.kit.principal import Principal
from tests.conftest import XINGMING

V = f"/v1/tenants/{XINGMING.replace('/', '-')}"
SCOPES = frozenset(
    {
        "command:write",
        "command:read",
        "events:read",
        "twin:read",
        "credit:consent",
        "events:configure",
    }
)
_TIME_VALIDATOR = typing.get_args(Rfc3339Time)[1]


def _app() -> Any:
    # Nothing listens there: every case below is refused before a component is asked.
    settings = GatewaySettings(**{f"{n}_address": "127.0.0.1:9" for n in NAMES})
    who = Principal(subject="users/secretary", tenant=XINGMING, kind="user", scopes=SCOPES)
    app = create_app(settings, fixed_caller=Caller(who, None))
    app.state.upstreams = Upstreams(StaticDiscovery(settings.addresses()), NAMES, timeout=1.0)
    return app


def _naive_datetimes(annotation: Any, where: str, seen: set[type]) -> list[str]:
    """Where `annotation` takes a datetime without the Rfc3339Time validator."""
    if annotation is datetime:
        return [where]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *metadata = typing.get_args(annotation)
        if inner is datetime and _TIME_VALIDATOR in metadata:
            return []
        return _naive_datetimes(inner, where, seen)
    if origin is not None or isinstance(annotation, types.UnionType):
        return [
            found
            for arg in typing.get_args(annotation)
            for found in _naive_datetimes(arg, where, seen)
        ]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return []
        seen.add(annotation)
        found: list[str] = []
        for name, info in annotation.model_fields.items():
            # pydantic keeps an Annotated field's validators in `metadata`, not the type
            if info.annotation is datetime and _TIME_VALIDATOR in info.metadata:
                continue
            found += _naive_datetimes(info.annotation, f"{where}.{name}", seen)
        return found
    return []


async def test_no_route_reads_a_time_any_other_way() -> None:
    app = _app()
    found: list[str] = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        dependant = route.dependant
        params = [*dependant.query_params, *dependant.body_params, *dependant.header_params]
        for sub in dependant.dependencies:
            params += [*sub.query_params, *sub.body_params]
        for param in params:
            info = param.field_info
            if info.annotation is datetime and _TIME_VALIDATOR in info.metadata:
                continue
            where = f"{route.path} {param.name}"
            found += _naive_datetimes(info.annotation, where, set())
    assert found == []


async def _send(method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.request(method, path, headers={"X-API-Key": "grk_any"}, **kwargs)


PLAN = {
    "display_name": "Weekly visit",
    "recurrence": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9",
    "targets": [{"id": "r-1", "location": {"longitude": 121.1605, "latitude": 31.2905}}],
}
NOT_RFC3339 = ["2026-12-01T09:00:00", "2026-12-01", 1764579600, "2026-12-01 09:00:00+08:00"]


def _names(answer: httpx.Response, field: str) -> None:
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert [v["field"] for v in error["field_violations"]] == [field], error
    assert "RFC 3339" in error["field_violations"][0]["description"]


@pytest.mark.parametrize("value", NOT_RFC3339)
async def test_a_service_plan_start_without_an_offset_is_refused(value: object) -> None:
    _names(
        await _send("POST", f"{V}/servicePlans", json={**PLAN, "start_time": value}), "start_time"
    )
    _names(await _send("PATCH", f"{V}/servicePlans/sp_1", json={"start_time": value}), "start_time")


@pytest.mark.parametrize("value", NOT_RFC3339)
async def test_a_consent_expiry_without_an_offset_is_refused(value: object) -> None:
    body = {
        "household": f"tenants/{XINGMING.replace('/', '-')}/pointsAccounts/h1",
        "consumer": f"tenants/{XINGMING.replace('/', '-')}/apps/bank",
        "purpose": "loan_assessment",
        "expire_time": value,
        "request_id": "c-1",
    }
    _names(await _send("POST", f"{V}/creditConsents", json=body), "expire_time")


@pytest.mark.parametrize("value", [str(v) for v in NOT_RFC3339])
@pytest.mark.parametrize(
    "path, field",
    [
        ("/tasks", "created_from"),
        ("/tasks", "created_before"),
        ("/events", "created_from"),
        ("/events:statistics", "created_before"),
        (":queryHistory", "start_time"),
    ],
)
async def test_a_query_time_without_an_offset_is_refused(path: str, field: str, value: str) -> None:
    _names(await _send("GET", f"{V}{path}", params={field: value}), field)


async def test_an_offset_time_is_read_in_utc() -> None:
    plan = {**PLAN, "start_time": "2026-12-01T09:00:00+08:00"}
    from gateway.schemas.command_plans import ServicePlanCreate

    assert ServicePlanCreate.model_validate(plan).start_time.isoformat() == (
        "2026-12-01T01:00:00+00:00"
    )


async def test_lower_case_t_and_z_are_rfc_3339_too() -> None:
    plan = {**PLAN, "start_time": "2026-12-01t01:00:00z"}
    from gateway.schemas.command_plans import ServicePlanCreate

    assert ServicePlanCreate.model_validate(plan).start_time.isoformat() == (
        "2026-12-01T01:00:00+00:00"
    )
