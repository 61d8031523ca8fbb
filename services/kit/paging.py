"""AIP-158 pagination: page sizes and opaque page tokens bound to their query."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from services.kit.errors import InvalidArgument


def page_size(requested: int, *, default: int = 50, maximum: int = 1000) -> int:
    """Zero means the default; above the maximum is coerced down, as AIP-158 asks."""
    if requested < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def _fingerprint(query: Any) -> str:
    raw = json.dumps(query, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def encode_token(cursor: dict[str, Any], query: Any) -> str:
    """A token names where the next page starts and which query it belongs to."""
    body = json.dumps({"c": cursor, "q": _fingerprint(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_token(token: str, query: Any) -> dict[str, Any] | None:
    """Empty token: first page. A token from another query is INVALID_ARGUMENT."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
        cursor = body["c"]
        fingerprint = body["q"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument.field("page_token", "is not a token this service issued") from exc
    if fingerprint != _fingerprint(query) or not isinstance(cursor, dict):
        raise InvalidArgument.field(
            "page_token", "belongs to a different query (filter or parent changed)"
        )
    return cursor


def decode_offset(token: str, query: Any) -> int:
    """For lists paged by position: where this page starts (0 without a token)."""
    cursor = decode_token(token, query)
    if cursor is None:
        return 0
    offset = cursor.get("o")
    if not isinstance(offset, int) or offset < 0:
        raise InvalidArgument.field("page_token", "is not a token this service issued")
    return offset


def encode_offset(next_offset: int | None, query: Any) -> str:
    """The token for the page starting at `next_offset`; empty when there is none."""
    return encode_token({"o": next_offset}, query) if next_offset is not None else ""
