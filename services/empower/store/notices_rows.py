"""The notices tables as both stores write them: columns, statements, row mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from services.empower.domain.notices_model import (
    Audience,
    Channel,
    Delivery,
    DeliveryState,
    Notice,
)
from services.empower.domain.people_model import from_us, to_us

NOTICE_COLUMNS = (
    "id, tenant, title, body, audience_json, channels_json, sender, request_id, create_us"
)
DELIVERY_COLUMNS = (
    "id, notice_id, tenant, recipient, channel, state, attempts, last_error, next_us, "
    "read_us, create_us, update_us"
)
_N = ", ".join("?" * len(NOTICE_COLUMNS.split(",")))
_D = ", ".join("?" * len(DELIVERY_COLUMNS.split(",")))
INSERT_NOTICE = (
    f"INSERT INTO notices ({NOTICE_COLUMNS}) VALUES ({_N}) "
    "ON CONFLICT (tenant, request_id) DO NOTHING"
)
NOTICE_BY_REQUEST = f"SELECT {NOTICE_COLUMNS} FROM notices WHERE tenant = ? AND request_id = ?"
INSERT_DELIVERY = f"INSERT INTO notice_deliveries ({DELIVERY_COLUMNS}) VALUES ({_D})"
GET_NOTICE = f"SELECT {NOTICE_COLUMNS} FROM notices WHERE tenant = ? AND id = ?"
COUNTS = (
    "SELECT state, COUNT(*) AS n, COUNT(read_us) AS r FROM notice_deliveries "
    "WHERE notice_id = ? GROUP BY state"
)
LIST_NOTICES = f"SELECT {NOTICE_COLUMNS} FROM notices WHERE "
LIST_DELIVERIES = f"SELECT {DELIVERY_COLUMNS} FROM notice_deliveries WHERE notice_id = ? AND "
GET_DELIVERY = f"SELECT {DELIVERY_COLUMNS} FROM notice_deliveries WHERE id = ? AND "
_JOINED = (
    ", ".join(f"d.{c.strip()}" for c in DELIVERY_COLUMNS.split(","))
    + ", "
    + ", ".join(f"n.{c.strip()} AS n_{c.strip()}" for c in NOTICE_COLUMNS.split(","))
)
DUE = (
    f"SELECT {_JOINED} FROM notice_deliveries d JOIN notices n ON n.id = d.notice_id "
    "WHERE d.state IN ('pending', 'queued') AND d.next_us <= ? ORDER BY d.next_us, d.id LIMIT ?"
)
TO_RECIPIENT = (
    f"SELECT {_JOINED} FROM notice_deliveries d JOIN notices n ON n.id = d.notice_id "
    "WHERE d.recipient = ? AND d.channel = ? ORDER BY d.create_us DESC, d.id DESC LIMIT ?"
)
UPDATE_DELIVERY = (
    "UPDATE notice_deliveries SET state = ?, attempts = ?, last_error = ?, next_us = ?, "
    "read_us = ?, update_us = ? WHERE id = ?"
)

Row = Mapping[str, Any]


def notice_values(notice: Notice) -> tuple[object, ...]:
    audience = asdict(notice.audience)
    audience["recipients"] = list(notice.audience.recipients)
    return (
        notice.id,
        notice.tenant,
        notice.title,
        notice.body,
        json.dumps(audience),
        json.dumps([c.value for c in notice.channels]),
        notice.sender,
        notice.request_id,
        to_us(notice.create_time),
    )


def row_to_notice(row: Row, prefix: str = "") -> Notice:
    audience = json.loads(row[prefix + "audience_json"])
    return Notice(
        id=row[prefix + "id"],
        tenant=row[prefix + "tenant"],
        title=row[prefix + "title"],
        body=row[prefix + "body"],
        audience=Audience(
            tenant=audience["tenant"],
            grid_cell=audience["grid_cell"],
            role=audience["role"],
            recipients=tuple(audience["recipients"]),
            person_kind=audience.get("person_kind", ""),  # absent from older rows
        ),
        channels=tuple(Channel(c) for c in json.loads(row[prefix + "channels_json"])),
        sender=row[prefix + "sender"],
        request_id=row[prefix + "request_id"],
        create_time=from_us(row[prefix + "create_us"]),
    )


def delivery_values(delivery: Delivery) -> tuple[object, ...]:
    return (
        delivery.id,
        delivery.notice_id,
        delivery.tenant,
        delivery.recipient,
        delivery.channel.value,
        delivery.state.value,
        delivery.attempts,
        delivery.last_error,
        to_us(delivery.next_attempt_time),
        to_us(delivery.read_time) if delivery.read_time else None,
        to_us(delivery.create_time),
        to_us(delivery.update_time),
    )


def update_values(delivery: Delivery) -> tuple[object, ...]:
    return (
        delivery.state.value,
        delivery.attempts,
        delivery.last_error,
        to_us(delivery.next_attempt_time),
        to_us(delivery.read_time) if delivery.read_time else None,
        to_us(delivery.update_time),
        delivery.id,
    )


def row_to_delivery(row: Row) -> Delivery:
    return Delivery(
        id=row["id"],
        notice_id=row["notice_id"],
        tenant=row["tenant"],
        recipient=row["recipient"],
        channel=Channel(row["channel"]),
        state=DeliveryState(row["state"]),
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        next_attempt_time=from_us(row["next_us"]),
        read_time=from_us(row["read_us"]) if row["read_us"] is not None else None,
        create_time=from_us(row["create_us"]),
        update_time=from_us(row["update_us"]),
    )


def counts_of(rows: Sequence[Row]) -> dict[str, int]:
    counts = {state.value: 0 for state in DeliveryState}
    counts["read"] = 0
    for row in rows:
        counts[row["state"]] = int(row["n"])
        counts["read"] += int(row["r"])
    return counts


# A person's WeChat openid, sealed; one binding per person, replaced when bound again.
BIND_WECHAT = (
    "INSERT INTO wechat_bindings (person, tenant, openid_sealed, bind_us) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (person) DO UPDATE SET openid_sealed = excluded.openid_sealed, "
    "bind_us = excluded.bind_us"
)
WECHAT_OF = "SELECT openid_sealed FROM wechat_bindings WHERE person = ?"
