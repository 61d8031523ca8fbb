"""What a device sends, read without trusting a byte of it: topic, size, JSON shape.

A message is one JSON object:

    {"key": "<device key>", "time": "2026-12-03T07:00:00Z", "values": {"level_cm": 31.5}}

`time` is optional (the bridge's receive time when absent); `values` maps attribute
names to JSON numbers, booleans, strings or small objects (a position). The twin's
domain checks each value against the entity's model; this module only refuses what no
model could accept.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.kit import tenancy

DEFAULT_ROOT = "grassroots"
TELEMETRY = "telemetry"
REJECTED = "rejected"
MAX_PAYLOAD_BYTES = 4096
MAX_VALUES = 64
_ENTITY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_TENANT_ID = re.compile(r"^[a-z0-9]{1,40}(-[a-z0-9]{1,40}){0,5}\Z")
# Readings more than this far in the future are a device clock gone wrong.
MAX_CLOCK_AHEAD_SECONDS = 300.0


@dataclass
class Refusal(Exception):
    """Why a message is not taken: `reason` is a short label (counted per label in
    metrics), `field` the part of the message at fault, `message` words for the sender."""

    reason: str
    field: str
    message: str

    def as_json(self) -> bytes:
        return json.dumps(
            {"reason": self.reason, "field": self.field, "message": self.message}
        ).encode()


@dataclass(frozen=True)
class TopicAddress:
    """The tenant and entity a topic names."""

    tenant_id: str
    entity_id: str

    @property
    def tenant_path(self) -> str:
        return tenancy.id_to_path(self.tenant_id)

    @property
    def entity_name(self) -> str:
        return f"tenants/{self.tenant_id}/entities/{self.entity_id}"


@dataclass(frozen=True)
class DeviceMessage:
    """A well-formed message: the key it presents and its readings."""

    key: str
    observe_time: datetime
    values: dict[str, Any]


def subscription(root: str = DEFAULT_ROOT) -> str:
    """The filter the bridge subscribes with: every tenant's every entity."""
    return f"{root}/+/+/{TELEMETRY}"


def rejection_topic(topic: str) -> str:
    """Where the sender hears why its message was refused."""
    return f"{topic}/{REJECTED}"


def parse_topic(topic: str, root: str = DEFAULT_ROOT) -> TopicAddress:
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != root or parts[3] != TELEMETRY:
        raise Refusal("topic", "topic", f"publish to {root}/<tenant>/<entity>/{TELEMETRY}")
    tenant_id, entity_id = parts[1], parts[2]
    if not _TENANT_ID.match(tenant_id):
        raise Refusal("topic", "topic", f"{tenant_id!r} is not a tenant id")
    if not _ENTITY_ID.match(entity_id):
        raise Refusal("topic", "topic", f"{entity_id!r} is not an entity id")
    return TopicAddress(tenant_id, entity_id)


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def parse_payload(
    payload: bytes | bytearray, received: datetime, max_bytes: int = MAX_PAYLOAD_BYTES
) -> DeviceMessage:
    """The message, or a Refusal naming what is wrong with it."""
    if len(payload) > max_bytes:
        raise Refusal("oversized", "payload", f"{len(payload)} bytes; at most {max_bytes}")
    try:
        document = json.loads(payload, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refusal("malformed", "payload", f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise Refusal("malformed", "payload", "must be a JSON object")
    unknown = set(document) - {"key", "time", "values"}
    if unknown:
        raise Refusal("malformed", sorted(unknown)[0], "unknown field; send key, time, values")
    key = document.get("key")
    if not isinstance(key, str) or not key:
        raise Refusal("unauthenticated", "key", "a device key is required")
    values = document.get("values")
    if not isinstance(values, dict) or not values:
        raise Refusal("malformed", "values", "must be an object of attribute: value")
    if len(values) > MAX_VALUES:
        raise Refusal("malformed", "values", f"at most {MAX_VALUES} attributes per message")
    for name, value in values.items():
        if not _ATTRIBUTE.match(name):
            raise Refusal("malformed", f"values.{name}"[:80], "not an attribute name")
        if value is None or isinstance(value, list):
            raise Refusal(
                "malformed", f"values.{name}", "must be a number, boolean, text or object"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise Refusal("malformed", f"values.{name}", "must be finite")
    return DeviceMessage(key, _observe_time(document.get("time"), received), values)


def _observe_time(value: object, received: datetime) -> datetime:
    if value is None:
        return received
    if not isinstance(value, str) or len(value) > 40:
        raise Refusal("malformed", "time", "must be an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Refusal("malformed", "time", "must be an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise Refusal("malformed", "time", "needs a UTC offset (Z or +08:00)")
    moment = moment.astimezone(UTC)
    if (moment - received).total_seconds() > MAX_CLOCK_AHEAD_SECONDS:
        raise Refusal("malformed", "time", "is in the future")
    return moment
