"""Request-schema bounds taken from the contract's `(grassroots.type.v1.limits)` option.

A JSON field that stands for a proto field is declared with `limited(Message, "field")`
instead of writing its lengths and ranges a second time: the gateway then refuses
what the service would refuse, with the same numbers, and the OpenAPI document shows
them. `x-contract` names the proto field, so a test can hold every bound of the
document to the contract (tests/contract/test_field_limits.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import Query
from google.protobuf.message import Message
from pydantic import Field
from pydantic.json_schema import JsonDict

from services.kit import limits

CONTRACT_KEY = "x-contract"


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _bounds(found: limits.Limits, *, items: bool) -> dict[str, Any]:
    """pydantic's constraints for the value (`items`: for one item of a repeated field)."""
    bounds: dict[str, Any] = {}
    if found.max_items and not items:
        bounds["max_length"] = found.max_items
        return bounds
    if found.min_length:
        bounds["min_length"] = found.min_length
    if found.max_length:
        bounds["max_length"] = found.max_length
    if found.pattern:
        bounds["pattern"] = f"^(?:{found.pattern})$"
    if found.minimum is not None:
        bounds["ge"] = _number(found.minimum)
    if found.maximum is not None:
        bounds["le"] = _number(found.maximum)
    return bounds


def _name(message: type[Message], field: str) -> str:
    return f"{message.DESCRIPTOR.full_name}.{field}"


def bounds(message: type[Message], field: str) -> dict[str, Any]:
    """The keyword arguments that bound `message.field` in a pydantic or FastAPI field
    (`Field`, `Form`, `Query`); for a repeated field, its item count."""
    found = limits.of(message, field)
    extra: JsonDict = {CONTRACT_KEY: _name(message, field)}
    return {**_bounds(found, items=False), "json_schema_extra": extra}


def limited(message: type[Message], field: str, default: Any = ..., **kwargs: Any) -> Any:
    """A pydantic `Field` with the bounds `message.field` declares (plus `kwargs`).

    For a repeated field the bound is its item count; bound its items with `item`.
    """
    return Field(default, **bounds(message, field), **kwargs)


def query(message: type[Message], field: str, **kwargs: Any) -> Any:
    """A query parameter standing for `message.field`, with the bounds it declares:
    `category: Annotated[str | None, query(pb.Event, "category")] = None`."""
    return Query(**bounds(message, field), **kwargs)


def item(message: type[Message], field: str) -> Any:
    """The bounds of one item of a repeated field: `list[Annotated[str, item(M, "f")]]`."""
    found = limits.of(message, field)
    extra: JsonDict = {CONTRACT_KEY: _name(message, field) + "[]"}
    return Field(**_bounds(found, items=True), json_schema_extra=extra)
