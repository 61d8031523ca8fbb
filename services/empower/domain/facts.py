"""The facts empower tells others about, built where the change is decided.

Points and notices write each fact into an outbox in the same transaction as the
change it reports (ADR 6), and the relay publishes them on the `empower` stream, so a
crash between the change and the publication loses nothing: the relay finds the row
after a restart. A fact carries names and numbers, never a memo or a notice's words.
Its key is unique per fact, so a consumer drops the repeat a relay retry may cause.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from services.empower.domain.notices_model import Delivery
from services.empower.domain.points_model import ENTRIES, Entry, EntryKind

STREAM = "empower"
POINTS_CREDITED = "points.credited"
POINTS_REDEEMED = "points.redeemed"
NOTICE_SENT = "notice.sent"
NOTICE_DELIVERED = "notice.delivered"
NOTICE_FAILED = "notice.failed"
NOTICE_READ = "notice.read"


@dataclass(frozen=True)
class Fact:
    type: str
    key: str
    tenant: str
    payload: bytes
    time: datetime


def _json(values: Mapping[str, object]) -> bytes:
    return json.dumps(values, ensure_ascii=False, sort_keys=True).encode()


def points_fact(entry: Entry) -> Fact:
    """`points.credited` or `points.redeemed` for one ledger entry."""
    kind = POINTS_REDEEMED if entry.kind is EntryKind.REDEMPTION else POINTS_CREDITED
    payload = {
        "account": entry.resource_name.rsplit(f"/{ENTRIES}/", 1)[0],
        "entry": entry.resource_name,
        "kind": entry.kind.value,
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "rule": entry.rule_id,
        "idempotency_key": entry.idempotency_key,
        "time": entry.create_time.isoformat(),
    }
    return Fact(
        kind,
        f"{entry.account_id}:{entry.sequence}",
        entry.tenant,
        _json(payload),
        entry.create_time,
    )


def delivery_fact(fact_type: str, delivery: Delivery) -> Fact:
    """A delivery's move (sent, delivered, failed) or its read receipt: who and when."""
    payload = {
        "delivery": delivery.resource_name,
        "notice": delivery.resource_name.rsplit("/deliveries/", 1)[0],
        "recipient": delivery.recipient,
        "channel": delivery.channel.value,
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "time": delivery.update_time.isoformat(),
    }
    return Fact(
        fact_type,
        f"{delivery.id}:{fact_type}",
        delivery.tenant,
        _json(payload),
        delivery.update_time,
    )
