"""A call described without doing it, so the sync and async clients share every route.

An operation (`grassroots_sdk.ops`) returns a `Call`: method, path, body and how to read
the answer. The clients only execute calls: authenticate, retry, raise errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from grassroots_sdk.models import Page

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Stands for the client's own tenant in a path until the client fills it in.
TENANT = "{tenant}"


@dataclass
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    data: Mapping[str, Any] | None = None
    files: Mapping[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # A create: an Idempotency-Key is generated unless given, and kept across retries.
    create: bool = False
    idempotency_key: str | None = None
    timeout: float | None = None


def tenant_id(tenant: str | None) -> str:
    """A tenant id from an id or a path (`sh/jiading/anting/xingming`); the client's own
    tenant when None."""
    if tenant is None:
        return TENANT
    tenant = tenant.removeprefix("tenants/").strip("/")
    return quote(tenant.replace("/", "-"), safe="-")


def segment(value: str) -> str:
    return quote(value, safe="")


def resource_path(name_or_id: str, collection: str, tenant: str | None) -> str:
    """`/v1/...` of a resource given its full name (`tenants/t/events/ev_1`) or its id."""
    if name_or_id.startswith("tenants/"):
        return "/v1/" + "/".join(segment(part) for part in name_or_id.split("/"))
    return f"/v1/tenants/{tenant_id(tenant)}/{collection}/{segment(name_or_id)}"


def collection_path(collection: str, tenant: str | None) -> str:
    return f"/v1/tenants/{tenant_id(tenant)}/{collection}"


def params(**values: Any) -> dict[str, Any]:
    """Query parameters without the ones left out (None)."""
    return {key: value for key, value in values.items() if value is not None}


def body(**values: Any) -> dict[str, Any]:
    """A JSON body without the fields left out (None): the gateway refuses unknown and
    null fields it does not take."""
    return {key: value for key, value in values.items() if value is not None}


def json_as(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        return model.model_validate(response.json())

    return parse


def page_of(model: type[M], key: str) -> Callable[[httpx.Response], Page[M]]:
    def parse(response: httpx.Response) -> Page[M]:
        data = response.json()
        items = [model.model_validate(item) for item in data.get(key) or ()]
        return Page[M](items=items, next_page_token=data.get("next_page_token") or "")

    return parse


def as_json(response: httpx.Response) -> Any:
    return response.json() if response.content else None


def nothing(response: httpx.Response) -> None:
    return None
