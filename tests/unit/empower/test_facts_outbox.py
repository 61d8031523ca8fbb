"""Points and notice facts leave through an outbox (ADR 6), on both stores.

Each fact is written in the transaction of its change: a refused posting writes none,
a store closed before the relay ran (a crash) still holds every fact when opened again,
and the relay then puts them on the `empower` stream, each once, with its key.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.empower.domain import facts
from services.empower.domain.audit import AuditLog
from services.empower.domain.notices import NoticeBoard
from services.empower.domain.notices_model import (
    Audience,
    Channel,
    Contact,
    DeliveryState,
    Recipient,
    RecipientKind,
)
from services.empower.domain.points import PointsLedger
from services.empower.domain.points_model import HolderKind
from services.empower.notice_channels import InAppChannel
from services.empower.store.notices_postgres import PostgresNoticesStore
from services.empower.store.notices_sqlite import SqliteNoticesStore
from services.empower.store.people_sqlite import SqlitePeopleStore
from services.empower.store.points_postgres import PostgresPointsStore
from services.empower.store.points_sqlite import SqlitePointsStore
from services.kit.bus import open_bus
from services.kit.errors import InvalidArgument
from services.kit.outbox_relay import OutboxRelay
from services.kit.principal import Principal
from tests.conftest import XINGMING

STAFF = Principal(
    "users/clerk", XINGMING, scopes=frozenset({"points:write", "empower:read", "notices:send"})
)
READER = Principal("users/reader", XINGMING)
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

Opener = Callable[[], Awaitable[Any]]


async def _close(store: Any) -> None:
    closed = store.close()
    if inspect.isawaitable(closed):
        await closed


@pytest.fixture(params=["sqlite", "postgres"])
def openers(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Opener, Opener]:
    """(points store, notices store) openers: opening again finds what was committed."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgis_test_dsn")

        async def points_pg() -> Any:
            return await PostgresPointsStore.open(dsn)

        async def notices_pg() -> Any:
            return await PostgresNoticesStore.open(dsn)

        return points_pg, notices_pg

    async def points_lite() -> Any:
        return SqlitePointsStore(tmp_path / "points.sqlite3")

    async def notices_lite() -> Any:
        return SqliteNoticesStore(tmp_path / "notices.sqlite3")

    return points_lite, notices_lite


async def _relay_all(store: Any, bus_path: Path) -> list[Any]:
    """Relay what is pending onto a local bus and read the stream back."""
    bus = open_bus(str(bus_path))
    try:
        relay = OutboxRelay(store.unpublished, store.mark_published, bus, facts.STREAM)
        while await relay.publish_pending():
            pass
        await bus.ensure_group(facts.STREAM, "reader", "0")
        return [d.message for d in await bus.read(facts.STREAM, "reader", "r1", count=100)]
    finally:
        await bus.close()


async def test_points_facts_survive_a_crash_and_are_relayed_once(
    openers: tuple[Opener, Opener], tmp_path: Path
) -> None:
    open_points, _ = openers
    store = await open_points()
    ledger = PointsLedger(store)
    account = await ledger.open_account(STAFF, XINGMING, HolderKind.HOUSEHOLD, "household/7-101")
    await ledger.credit(STAFF, XINGMING, account.id, 30, "River bank", "award-1")
    await ledger.credit(STAFF, XINGMING, account.id, 30, "River bank", "award-1")  # a retry
    with pytest.raises(InvalidArgument):
        await ledger.redeem(STAFF, XINGMING, account.id, 31, "Shop", "buy-1")  # refused
    await ledger.redeem(STAFF, XINGMING, account.id, 25, "Shop: rice", "buy-2")
    await _close(store)  # the process dies before the relay ran

    store = await open_points()
    try:
        pending = await store.unpublished(100)
        assert [m.type for m in pending] == [facts.POINTS_CREDITED, facts.POINTS_REDEEMED]
        published = await _relay_all(store, tmp_path / "bus.sqlite3")
        assert await store.unpublished(100) == []
    finally:
        await _close(store)
    assert [(m.type, m.tenant) for m in published] == [
        (facts.POINTS_CREDITED, XINGMING),
        (facts.POINTS_REDEEMED, XINGMING),
    ]
    assert len({m.key for m in published}) == 2
    credited, redeemed = (json.loads(m.payload) for m in published)
    assert credited["amount"] == 30 and credited["balance_after"] == 30
    assert redeemed["amount"] == -25 and redeemed["balance_after"] == 5
    assert credited["account"] == account.resource_name
    assert all("River" not in m.payload.decode() for m in published)  # no memo


class OneResident:
    """Stands in for the registry: one person and one user of the village."""

    async def resolve(self, tenant: str, audience: Audience) -> list[Recipient]:
        return [Recipient("users/reader", RecipientKind.USER)]

    async def contact(self, recipient: Recipient) -> Contact:
        return Contact(recipient.name)

    async def bind_wechat(self, tenant: str, person: str, openid: str) -> bool:
        return False


async def test_notice_facts_sent_delivered_and_read_are_relayed(
    openers: tuple[Opener, Opener], tmp_path: Path
) -> None:
    _, open_notices = openers
    store = await open_notices()
    people = SqlitePeopleStore(tmp_path / "audit.sqlite3")
    board = NoticeBoard(
        store, OneResident(), {Channel.IN_APP: InAppChannel()}, AuditLog(people), clock=lambda: NOW
    )
    try:
        notice = await board.send(
            STAFF,
            XINGMING,
            title="Water off",
            body="Mains work 9 to 12",
            audience=Audience(tenant="tenants/sh-jiading-anting-xingming"),
            channels=[Channel.IN_APP],
            request_id="n-1",
        )
        await board.dispatch_due()
        ((delivery, _),) = await board.my_notices(READER, 10)
        assert delivery.state is DeliveryState.DELIVERED
        await board.mark_read(READER, XINGMING, delivery.id, notice.id)
        await _close(store)  # a crash before the relay ran
        store = await open_notices()
        published = await _relay_all(store, tmp_path / "bus.sqlite3")
    finally:
        await _close(store)
        people.close()
    assert [m.type for m in published] == [
        facts.NOTICE_SENT,
        facts.NOTICE_DELIVERED,
        facts.NOTICE_READ,
    ]
    bodies = [json.loads(m.payload) for m in published]
    assert {b["delivery"] for b in bodies} == {delivery.resource_name}
    assert {b["notice"] for b in bodies} == {notice.resource_name}
    assert all("Water" not in m.payload.decode() for m in published)  # never the words
