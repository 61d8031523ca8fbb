"""PostgreSQL row-level security under the event store: the wall below the filters.

These talk to the store's own pool (connections in the app role) with raw SQL that
has no tenant filter at all, as a store method with a forgotten WHERE clause would.
PostgreSQL only: the embedded SQLite store has one process and no roles.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.events.domain.categories import Category
from services.events.domain.facts import COMMENTED
from services.events.domain.model import (
    Comment,
    Event,
    GridPlace,
    NewReport,
    Point,
    Source,
    State,
    TimelineEntry,
)
from services.events.store.postgres import PostgresEventStore
from services.kit import rls
from services.kit.tenancy import ALL_TENANTS
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.events.conftest import serialize

TABLES = ["events", "idempotency_keys", "timeline", "comments", "outbox", "categories"]
PER_VILLAGE = 3


def new_item(village: str, n: int) -> tuple[NewReport, Event]:
    """A report made in `village` and the event it becomes there."""
    now = datetime.now(UTC) - timedelta(minutes=n)
    point = Point(121.1 + n * 0.01, 31.3)
    report = NewReport(
        parent=village,
        category="public.facility",
        description=f"broken bench {n}",
        location=point,
        source=Source.RESIDENT,
        request_id=f"{village}-{n}",
        reporter="users/resident",
    )
    event = Event(
        id=f"ev_rls_{village.rsplit('/', 1)[-1]}_{n}",
        tenant=village,
        category=report.category,
        description=report.description,
        location=point,
        source=report.source,
        state=State.REPORTED,
        place=GridPlace(village, f"{village}/cells/1", "users/worker"),
        reporter=report.reporter,
        create_time=now,
        update_time=now,
        timeline=(TimelineEntry(report.reporter, now, None, State.REPORTED, "reported"),),
    )
    return report, event


def keep(_nearby: object, event: Event) -> Event:
    return event


def refuse_taken(report: NewReport, _fingerprint: str, _event_id: str) -> None:
    """These tests never reuse a key: one taken is a fault of the test."""
    raise AssertionError(f"key {report.request_id!r} was already taken")


def commented(event: Event) -> tuple[Event, TimelineEntry | None, Comment | None]:
    now = datetime.now(UTC)
    return replace(event, update_time=now), None, Comment("users/worker", "on my way", now)


@pytest.fixture
async def store(postgis_test_dsn: str) -> AsyncIterator[PostgresEventStore]:
    """Both villages' events, keys, history, comments, outbox entries and categories."""
    store = await PostgresEventStore.open(postgis_test_dsn, serialize=serialize, max_connections=4)
    for village in (XINGMING, XIANGYANG):
        items = [new_item(village, n) for n in range(PER_VILLAGE)]
        stored = await store.create_many(items, keep, refuse_taken)
        assert all(created for _, created in stored)
        await store.update(items[0][1].id, commented, COMMENTED)
        await store.save_category(village, Category("local.well", "Village well", 2, 60))
    yield store
    await store.close()  # type: ignore[misc]


async def tenants(store: PostgresEventStore, scope: str, table: str) -> list[str]:
    async with rls.scoped_transaction(store.pool, scope) as conn:
        cur = await conn.execute(f"SELECT tenant FROM {table}")  # no filter
        return sorted(row[0] for row in await cur.fetchall())


async def count_as_owner(store: PostgresEventStore, table: str) -> int:
    """Rows as the DSN's own user: the schema owner, a superuser in tests."""
    async with await psycopg.AsyncConnection.connect(store.dsn) as conn:
        cur = await conn.execute(f"SELECT count(*) FROM {table}")
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("table", TABLES)
async def test_a_village_scope_sees_none_of_another_villages_rows(store, table):
    xingming = await tenants(store, XINGMING, table)
    xiangyang = await tenants(store, XIANGYANG, table)
    assert xingming and set(xingming) == {XINGMING}
    assert xiangyang and set(xiangyang) == {XIANGYANG}
    assert await tenants(store, TOWN, table) == sorted(xingming + xiangyang)
    assert await tenants(store, ALL_TENANTS, table) == sorted(xingming + xiangyang)
    # A prefix that is not a parent path sees nothing ("sh/jiading/anting/xing").
    assert await tenants(store, XINGMING[:-4], table) == []


@pytest.mark.parametrize("table", TABLES)
async def test_without_a_scope_the_app_role_sees_nothing(store, table):
    async with store.pool.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) FROM {table}")
        assert (await cur.fetchone())[0] == 0
        cur = await conn.execute("SELECT current_user")
        assert (await cur.fetchone())[0] == rls.APP_ROLE
    # The owner (a superuser here) sees every row, so the policy is what hid them.
    assert await count_as_owner(store, table) > 0


async def test_history_takes_the_tenant_of_its_event(store):
    async with rls.scoped_transaction(store.pool, ALL_TENANTS) as conn:
        for table in ("timeline", "comments"):
            cur = await conn.execute(
                f"SELECT count(*) FROM {table} h JOIN events e ON e.id = h.event_id "
                "WHERE h.tenant <> e.tenant"
            )
            assert (await cur.fetchone())[0] == 0


@pytest.mark.parametrize(
    ("table", "insert", "values"),
    [
        (
            "outbox",
            "INSERT INTO outbox (tenant, type, event_id, payload, create_us) "
            "VALUES (%s, 'event.reported', 'ev_x', '', 0)",
            (XIANGYANG,),
        ),
        (
            "categories",
            "INSERT INTO categories (tenant, code, definition) VALUES (%s, 'x.y', '{}')",
            (XIANGYANG,),
        ),
        (
            "timeline",
            "INSERT INTO timeline (event_id, seq, tenant, actor, at_us, to_state, note) "
            "VALUES ('ev_rls_xiangyang_1', 9, %s, 'users/x', 0, 'closed', '')",
            (XIANGYANG,),
        ),
        (
            "idempotency_keys",
            "INSERT INTO idempotency_keys "
            "(parent, reporter, request_id, fingerprint, event_id, create_us) "
            "VALUES (%s, 'users/x', 'r', '', 'ev_rls_xiangyang_1', 0)",
            (XIANGYANG,),
        ),
    ],
)
async def test_rows_cannot_be_written_into_another_village(store, table, insert, values):
    before = await count_as_owner(store, table)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        async with rls.scoped_transaction(store.pool, XINGMING) as conn:
            await conn.execute(insert, values)
    assert await count_as_owner(store, table) == before


async def test_rows_cannot_be_moved_into_another_village(store):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        async with rls.scoped_transaction(store.pool, XINGMING) as conn:
            await conn.execute("UPDATE events SET tenant = %s", (XIANGYANG,))
    assert set(await tenants(store, ALL_TENANTS, "events")) == {XINGMING, XIANGYANG}


@pytest.mark.parametrize("table", ["timeline", "comments"])
async def test_history_is_append_only_even_for_the_app(store, table):
    for statement in (f"UPDATE {table} SET seq = seq + 100", f"DELETE FROM {table}"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            async with rls.scoped_transaction(store.pool, ALL_TENANTS) as conn:
                await conn.execute(statement)


async def test_a_create_cannot_store_an_event_outside_its_parent(store):
    report, event = new_item(XINGMING, 7)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        await store.create_many([(report, replace(event, tenant=XIANGYANG))], keep, refuse_taken)
    assert await store.find_by_requests([(XINGMING, report.reporter, report.request_id)]) == {}


async def test_an_update_writes_only_into_its_events_village(store):
    """A change that hands back another village's event cannot reach its watchers."""

    def moved(event: Event) -> tuple[Event, TimelineEntry | None, Comment | None]:
        changed, entry, comment = commented(event)
        return replace(changed, tenant=XIANGYANG), entry, comment

    outbox = await count_as_owner(store, "outbox")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        await store.update(f"ev_rls_xingming_{PER_VILLAGE - 1}", moved, COMMENTED)
    assert await count_as_owner(store, "outbox") == outbox


async def test_the_store_reads_through_the_policy(store):
    """The store's own queries run scoped: what it lists is what the scope shows."""
    events, _ = await store.list(XINGMING, {}, 50, None)
    assert len(events) == PER_VILLAGE and {e.tenant for e in events} == {XINGMING}
    everything, _ = await store.list(ALL_TENANTS, {}, 50, None)
    assert len(everything) == 2 * PER_VILLAGE
    changes = await store.changes(XIANGYANG, 0, 50)
    assert changes and {c.tenant for c in changes} == {XIANGYANG}
    assert len(await store.unpublished(50)) == len(await store.changes(TOWN, 0, 50))
    assert {tenant for tenant, _ in await store.list_categories()} == {XINGMING, XIANGYANG}
    got = await store.get("ev_rls_xiangyang_0")
    assert got is not None and got.comments and got.tenant == XIANGYANG


async def test_history_written_before_the_tenant_column_takes_its_events_tenant(store):
    """Opening the store on a schema from before row-level security fills the columns."""
    async with await psycopg.AsyncConnection.connect(store.dsn, autocommit=True) as conn:
        for table in ("timeline", "comments", "idempotency_keys"):
            # CASCADE drops the policy on the column; the table stays forced, hiding all.
            await conn.execute(f"ALTER TABLE {table} DROP COLUMN tenant CASCADE")
    reopened = await PostgresEventStore.open(store.dsn, serialize=serialize)
    try:
        for table in ("timeline", "comments", "idempotency_keys"):
            assert set(await tenants(reopened, XINGMING, table)) == {XINGMING}
        async with rls.scoped_transaction(reopened.pool, ALL_TENANTS) as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM timeline h JOIN events e ON e.id = h.event_id "
                "WHERE h.tenant <> e.tenant"
            )
            assert (await cur.fetchone())[0] == 0
    finally:
        await reopened.close()  # type: ignore[misc]
