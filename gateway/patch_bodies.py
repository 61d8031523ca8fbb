"""PATCH bodies: the fields a caller sends are the ones that change (AIP-134 over JSON)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from gateway.errors import ApiError
from services.kit.errors import FieldViolation


def fields_sent(body: BaseModel, changeable: Iterable[str]) -> list[str]:
    """The changeable fields present in `body` (null ones too), in `changeable`'s order.

    A body with none of them is a 400 naming `body`: an empty update mask would mean
    "replace every field" to the component, and the caller would be told about the
    first field it left out instead of that it sent nothing to change.
    """
    fields = list(changeable)
    paths = [name for name in fields if name in body.model_fields_set]
    if not paths:
        why = f"send at least one of {', '.join(fields)}"
        raise ApiError(400, f"body: {why}", violations=[FieldViolation("body", why)])
    return paths
