"""A value none of a union's branches accept is one violation naming the caller's field."""

from __future__ import annotations

from typing import Literal

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from gateway.errors import install_handlers
from gateway.schemas.scenarios import ScenarioIn


class Circle(BaseModel):
    radius: float


class Shaped(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shape: Circle | Literal["everywhere"]
    counts: dict[str, int] = {}
    name: str


def _app() -> FastAPI:
    app = FastAPI()
    install_handlers(app)

    @app.post("/scenarios")
    async def scenarios(body: ScenarioIn) -> dict[str, str]:
        return {}

    @app.post("/shapes")
    async def shapes(body: Shaped) -> dict[str, str]:
        return {}

    return app


async def _post(path: str, body: object) -> dict:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        answer = await client.post(path, json=body)
    assert answer.status_code == 400
    return answer.json()["error"]


async def test_a_null_override_is_one_violation_of_the_override():
    error = await _post(
        "/scenarios", {"scenario": "fire-smoke", "overrides": {"points_per_deed": None}}
    )
    assert error["field_violations"] == [
        {
            "field": "overrides.points_per_deed",
            "description": "must be one of: int, float, bool, str",
        }
    ]
    assert error["message"] == "overrides.points_per_deed: must be one of: int, float, bool, str"


async def test_model_branches_collapse_and_plain_fields_keep_their_names():
    error = await _post("/shapes", {"shape": {"radius": "wide"}, "counts": {"int": "x"}})
    fields = [v["field"] for v in error["field_violations"]]
    assert fields == ["shape", "counts.int", "name"]  # a key that is called like a type
    assert "Circle" in error["field_violations"][0]["description"]
    assert error["field_violations"][2]["description"] == "Field required"
