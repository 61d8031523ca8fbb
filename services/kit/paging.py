"""AIP-158 pagination: page sizes and opaque page tokens bound to their query.

A token is its cursor and query fingerprint, signed with HMAC-SHA256 under a key
derived from the platform's key ring (`signing.KeyRing.derive`), so every replica
accepts another's tokens and a token the service did not issue is refused before
any of its fields is read: a forged cursor (wrong types, numbers past int64) never
reaches a store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from services.kit import signing
from services.kit.errors import InvalidArgument

_PURPOSE = b"grassroots page token v1"
_derived: tuple[signing.KeyRing, signing.KeyRing] | None = None


def page_size(requested: int, *, default: int = 50, maximum: int = 1000) -> int:
    """Zero means the default; above the maximum is coerced down, as AIP-158 asks."""
    if requested < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def _ring() -> signing.KeyRing:
    """The page-token keys, derived once per key ring."""
    global _derived
    ring = signing.keyring()
    if _derived is None or _derived[0] is not ring:
        _derived = (ring, ring.derive(_PURPOSE))
    return _derived[1]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


def _fingerprint(query: Any) -> str:
    raw = json.dumps(query, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def encode_token(cursor: dict[str, Any], query: Any) -> str:
    """A token names where the next page starts and which query it belongs to."""
    body = json.dumps({"c": cursor, "q": _fingerprint(query)}, separators=(",", ":")).encode()
    return f"{_b64(body)}.{_b64(_ring().sign(body))}"


def _not_issued() -> InvalidArgument:
    return InvalidArgument.field("page_token", "is not a token this service issued")


def decode_token(token: str, query: Any) -> dict[str, Any] | None:
    """Empty token: first page. A forged token or one from another query is INVALID_ARGUMENT."""
    if not token:
        return None
    encoded_body, dot, encoded_mac = token.partition(".")
    try:
        body, mac = _unb64(encoded_body), _unb64(encoded_mac)
    except (binascii.Error, ValueError):
        raise _not_issued() from None
    if not dot or not _ring().verify(body, mac):
        raise _not_issued()
    try:
        fields = json.loads(body)
        cursor, fingerprint = fields["c"], fields["q"]
    except (ValueError, KeyError, TypeError):
        raise _not_issued() from None
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
        raise _not_issued()
    return offset


def encode_offset(next_offset: int | None, query: Any) -> str:
    """The token for the page starting at `next_offset`; empty when there is none."""
    return encode_token({"o": next_offset}, query) if next_offset is not None else ""
