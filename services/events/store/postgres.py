"""The event store in PostgreSQL, for deployments that run more than one events replica.

A drop-in for the embedded SQLite store (tests/unit/events runs every test on both):
same tables, same columns, times as microseconds since the epoch in bigint so cursors,
etags and outbox payloads are identical. SQLite serialises writers on one thread;
here several replicas write at once, so what SQLite gets for free is made explicit:

* a create claims its idempotency key first (`ON CONFLICT DO NOTHING`): concurrent
  retries wait on the winner's uncommitted key and then see it taken;
* creates of one category take a transaction-level advisory lock before the duplicate
  search, so two nearby reports racing each other still see one another;
* updates lock their row (`SELECT ... FOR UPDATE`), so a stale etag cannot win;
* every outbox insert happens under one advisory lock held to commit, so `seq`
  values become visible in increasing order and a watcher resuming after offset N
  never misses an entry that committed late with a smaller seq.

Locks are always taken in the order key -> category -> event row -> outbox, and the
outbox lock is the last thing a transaction waits for, so these locks cannot deadlock.

Row-level security (services/kit/rls.py) is a second wall under the tenant filters in
the SQL: every table carries a `tenant` column with a forced subtree policy, pooled
connections act as the policed app role, and every unit of work is one transaction
scoped to the subtree it is done for. Unlike SQLite, timeline and comments store their
event's tenant, and idempotency_keys derive theirs from the key's parent, so the
policy covers them too. Which subtree each method uses:

* a list, statistics or change feed of a subtree: that subtree;
* creates and key look-ups: the request's parent, which holds every event it makes;
* an update: the whole store to read the row (the store is given no tenant), then the
  event's own tenant for everything it writes;
* `get`, the outbox relay, category loading, the latest offset and the service's own
  sweeps (`ALL_TENANTS`): the `ALL_TENANTS` subtree, since they are not done for one subtree.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from grassroots.events.v1 import events_service_pb2 as events_pb
from services.events.domain.attachments import Attachment
from services.events.domain.categories import Category
from services.events.domain.duplicates import search_window
from services.events.domain.facts import REPORTED
from services.events.domain.intake import IntakeSettings
from services.events.domain.model import (
    Event,
    NewReport,
    OutboxEntry,
    State,
    StatisticsRow,
    TimelineEntry,
)
from services.events.domain.ports import Change, OriginalFinder, TakenKeyCheck
from services.events.store.contacts import ReporterContacts
from services.events.store.rows import (
    ADDED_COLUMNS,
    APPEND_OUTBOX,
    ATTACHMENT_COLUMNS,
    CHANGES,
    COMMENTS,
    COUNT_REPORTS,
    E_COLUMNS,
    GET_EVENT,
    INSERT_ATTACHMENT,
    INSERT_EVENT,
    LATEST_OFFSET,
    NEARBY,
    STATISTICS,
    TIMELINE,
    UNPUBLISHED,
    UPDATE_EVENT,
    attachment_values,
    comment,
    event_values,
    list_query,
    next_cursor,
    outbox_entry,
    prefix_range,
    row_to_attachment,
    row_to_event,
    statistics_row,
    subtree_params,
    timeline_entry,
    update_values,
    us,
    where,
)
from services.kit import limits, rls, tracing
from services.kit.errors import NotFound
from services.kit.sqldialect import POSTGRES
from services.kit.tenancy import ALL_TENANTS

# Advisory lock keys. The one-key (bigint) and two-key (int, int) spaces never overlap.
_SCHEMA_LOCK = 0x4556_5343  # "EVSC": concurrent schema set-up from several replicas
_OUTBOX_LOCK = 0x4556_4F42  # "EVOB": outbox seqs commit in the order they are taken
_NEARBY_LOCK_SPACE = 0x4556_4E42  # "EVNB", paired with hashtext(category)

# Tenant paths and ids compare byte-wise (COLLATE "C") as in SQLite: the subtree range
# [subtree + '/', subtree + '0') relies on '/' sorting just before '0', and keyset paging
# on ids must order the same way on both stores.
_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS events (
        id            text COLLATE "C" PRIMARY KEY,
        tenant        text COLLATE "C" NOT NULL,
        category      text NOT NULL,
        description   text NOT NULL,
        longitude     double precision NOT NULL,
        latitude      double precision NOT NULL,
        reported_crs  text NOT NULL,
        source        text NOT NULL,
        state         text NOT NULL,
        grid_cell     text COLLATE "C" NOT NULL,
        grid_worker   text NOT NULL,
        reporter      text NOT NULL,
        create_us     bigint NOT NULL,
        update_us     bigint NOT NULL,
        version       integer NOT NULL DEFAULT 1,
        duplicate_of  text NOT NULL DEFAULT '',
        eval_score    integer,
        eval_text     text,
        eval_us       bigint)""",
    "CREATE INDEX IF NOT EXISTS events_tenant_time ON events (tenant, create_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS events_grid_time ON events (grid_cell, create_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS events_time ON events (create_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS events_reporter_time ON events (reporter, create_us DESC, id DESC)",
    # Equality on category, range on latitude; longitude and time filter inside the index.
    "CREATE INDEX IF NOT EXISTS events_nearby ON events (category, latitude, longitude, create_us)",
    # The key is claimed before its event row exists, so the reference is checked at
    # commit.
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        parent       text NOT NULL,
        reporter     text NOT NULL,
        request_id   text NOT NULL,
        fingerprint  text NOT NULL,
        event_id     text COLLATE "C" NOT NULL
                     REFERENCES events (id) DEFERRABLE INITIALLY DEFERRED,
        create_us    bigint NOT NULL,
        PRIMARY KEY (parent, reporter, request_id))""",
    # The key's tenant for the row policy: the parent it was used under.
    """ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS
        tenant text COLLATE "C" GENERATED ALWAYS AS (parent) STORED""",
    """CREATE TABLE IF NOT EXISTS timeline (
        event_id     text COLLATE "C" NOT NULL REFERENCES events (id),
        seq          integer NOT NULL,
        tenant       text COLLATE "C" NOT NULL,
        actor        text NOT NULL,
        at_us        bigint NOT NULL,
        from_state   text,
        to_state     text NOT NULL,
        note         text NOT NULL,
        PRIMARY KEY (event_id, seq))""",
    """CREATE TABLE IF NOT EXISTS comments (
        event_id     text COLLATE "C" NOT NULL REFERENCES events (id),
        seq          integer NOT NULL,
        tenant       text COLLATE "C" NOT NULL,
        author       text NOT NULL,
        text         text NOT NULL,
        create_us    bigint NOT NULL,
        PRIMARY KEY (event_id, seq))""",
    """CREATE TABLE IF NOT EXISTS outbox (
        seq           bigserial PRIMARY KEY,
        tenant        text COLLATE "C" NOT NULL,
        type          text NOT NULL,
        event_id      text NOT NULL,
        payload       bytea NOT NULL,
        create_us     bigint NOT NULL,
        published_us  bigint)""",
    # Older schemas gain the column in place; a constant default rewrites no rows.
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS trace_context text NOT NULL DEFAULT ''",
    "CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_us IS NULL",
    "CREATE INDEX IF NOT EXISTS outbox_tenant ON outbox (tenant, seq)",
    """CREATE TABLE IF NOT EXISTS attachments (
        id            text COLLATE "C" PRIMARY KEY,
        tenant        text COLLATE "C" NOT NULL,
        uploader      text NOT NULL,
        content_type  text NOT NULL,
        size_bytes    bigint NOT NULL,
        sha256        text NOT NULL,
        create_us     bigint NOT NULL,
        content       bytea NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS intake_settings (
        tenant       text COLLATE "C" PRIMARY KEY,
        definition   jsonb NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS categories (
        tenant       text COLLATE "C" NOT NULL,
        code         text NOT NULL,
        definition   jsonb NOT NULL,
        PRIMARY KEY (tenant, code))""",
    *(
        f"ALTER TABLE events ADD COLUMN IF NOT EXISTS {name} {definition}"
        for name, definition in ADDED_COLUMNS
    ),
    # The parts of a joint application, found by the application.
    "CREATE INDEX IF NOT EXISTS events_parent ON events (parent_event) WHERE parent_event <> ''",
    # History written before the column existed takes its event's tenant, once.
    *(
        f"""DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM information_schema.columns
                         WHERE table_schema = current_schema() AND table_name = '{table}'
                           AND column_name = 'tenant') THEN
            ALTER TABLE {table} ADD COLUMN tenant text COLLATE "C";
            UPDATE {table} h SET tenant = e.tenant FROM events e WHERE e.id = h.event_id;
            ALTER TABLE {table} ALTER COLUMN tenant SET NOT NULL;
          END IF;
        END $$"""
        for table in ("timeline", "comments")
    ),
)
# Every table holds one tenant's rows. History is only ever appended to.
_TENANT_TABLES = (
    "events",
    "idempotency_keys",
    "timeline",
    "comments",
    "outbox",
    "categories",
    "intake_settings",
    "attachments",
)
_APPEND_ONLY = ("timeline", "comments")
# rls.install grants the public schema; the tables may live in another (search_path).
_GRANT_SCHEMA = f"""DO $$ BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO {rls.APP_ROLE}', current_schema());
  EXECUTE format('GRANT USAGE ON SEQUENCE %s TO {rls.APP_ROLE}',
                 pg_get_serial_sequence('outbox', 'seq'));
END $$"""
_SET_SCOPE = "SELECT set_config(%s, %s, true)"

_FIND_BY_REQUESTS = (
    f"SELECT k.parent AS k_parent, k.reporter AS k_reporter, k.request_id AS k_request_id, "
    f"k.fingerprint AS fingerprint, {E_COLUMNS} "
    "FROM idempotency_keys k JOIN events e ON e.id = k.event_id "
    "WHERE (k.parent, k.reporter, k.request_id) IN "
    "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))"
)
_CLAIM_KEY = (
    "INSERT INTO idempotency_keys "
    "(parent, reporter, request_id, fingerprint, event_id, create_us) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING event_id"
)
_TAKEN_KEY = (
    "SELECT fingerprint, event_id FROM idempotency_keys "
    "WHERE parent = %s AND reporter = %s AND request_id = %s"
)
_LOCK_NEARBY = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_NEARBY = POSTGRES.render(NEARBY)
_INSERT_EVENT = POSTGRES.render(INSERT_EVENT)
_ADD_TIMELINE = (
    "INSERT INTO timeline (event_id, seq, tenant, actor, at_us, from_state, to_state, note) "
    "VALUES (%s, (SELECT coalesce(max(seq), 0) + 1 FROM timeline WHERE event_id = %s), "
    "%s, %s, %s, %s, %s, %s)"
)
_ADD_COMMENT = (
    "INSERT INTO comments (event_id, seq, tenant, author, text, create_us) "
    "VALUES (%s, (SELECT coalesce(max(seq), 0) + 1 FROM comments WHERE event_id = %s), "
    "%s, %s, %s, %s)"
)
_GET = POSTGRES.render(GET_EVENT)
_GET_FOR_UPDATE = _GET + " FOR UPDATE"
_TIMELINE = POSTGRES.render(TIMELINE)
_COMMENTS = POSTGRES.render(COMMENTS)
_UPDATE = POSTGRES.render(UPDATE_EVENT)
# Reads that span several statements see one snapshot, like SQLite's single reader.
_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
_LOCK_OUTBOX = "SELECT pg_advisory_xact_lock(%s)"
_APPEND_OUTBOX = POSTGRES.render(APPEND_OUTBOX)
_UNPUBLISHED = POSTGRES.render(UNPUBLISHED)
_MARK_PUBLISHED = "UPDATE outbox SET published_us = %s WHERE seq = ANY(%s)"
_CHANGES = POSTGRES.render(CHANGES)
_COUNT_REPORTS = POSTGRES.render(COUNT_REPORTS)
_INSERT_ATTACHMENT = POSTGRES.render(INSERT_ATTACHMENT)

Row = dict[str, Any]
Box = tuple[float, float, float, float]

# The contract's bounds of a category's duplicate window (ADR 22).
_WIDEST_RADIUS_M = limits.of(events_pb.Category, "duplicate_radius_meters").maximum or 0.0
_WIDEST_WINDOW_MINUTES = int(limits.of(events_pb.Category, "duplicate_window_minutes").maximum or 0)


def _common_subtree(paths: Iterable[str]) -> str:
    """The smallest subtree holding every path (the `ALL_TENANTS` subtree if they share no root)."""
    segments: list[str] | None = None
    for path in paths:
        parts = path.split("/")
        if segments is None:
            segments = parts
            continue
        shared = 0
        while shared < min(len(segments), len(parts)) and segments[shared] == parts[shared]:
            shared += 1
        segments = segments[:shared]
    return "/".join(segments or ()) or ALL_TENANTS


async def _fetch(
    conn: psycopg.AsyncConnection[Any], query: str, params: Sequence[object]
) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def _add_timeline(
    conn: psycopg.AsyncConnection[Any], tenant: str, event_id: str, entry: TimelineEntry
) -> None:
    await conn.execute(
        _ADD_TIMELINE,
        (
            event_id,
            event_id,
            tenant,
            entry.actor,
            us(entry.time),
            entry.from_state.value if entry.from_state else None,
            entry.to_state.value,
            entry.note,
        ),
    )


async def _with_history(conn: psycopg.AsyncConnection[Any], event: Event) -> Event:
    timeline = tuple(timeline_entry(r) for r in await _fetch(conn, _TIMELINE, (event.id,)))
    comments = tuple(comment(r) for r in await _fetch(conn, _COMMENTS, (event.id,)))
    return replace(event, timeline=timeline, comments=comments)


class _Prefetched:
    """The duplicate search, answered from rows read earlier in the same transaction.

    `find_original` is synchronous and asks its question while deciding, but a query
    here needs `await`. The store reads the category's search window first (under the
    category lock, so the answer stays true until commit) and this answers any question
    inside that window exactly as the SQL would; a question outside it is a bug in the
    finder, reported rather than answered wrongly.
    """

    def __init__(
        self,
        category: str,
        window: tuple[Box, int] | None,
        rows: list[tuple[Event, int]],
    ) -> None:
        self.category = category
        self.window = window
        self.rows = rows

    def __call__(
        self, category: str, box: Box, since: datetime, states: frozenset[State]
    ) -> list[Event]:
        since_us = us(since)
        if not self._covers(category, box, since_us):
            raise RuntimeError(
                f"nearby({category!r}, {box}, {since}) lies outside the search window the "
                "PostgreSQL store read for this event"
            )
        return [
            event
            for event, create_us in self.rows
            if event.state in states
            and box[1] <= event.location.latitude <= box[3]
            and box[0] <= event.location.longitude <= box[2]
            and create_us >= since_us
        ]

    def _covers(self, category: str, box: Box, since_us: int) -> bool:
        if self.window is None or category != self.category:
            return False
        read, read_since_us = self.window
        return (
            read[0] <= box[0]
            and read[1] <= box[1]
            and box[2] <= read[2]
            and box[3] <= read[3]
            and read_since_us <= since_us
        )


class PostgresEventStore:
    """Events, their history and the outbox of domain events, in one PostgreSQL schema.

    Tables live on the DSN's search_path. `serialize` turns an event into the bytes
    published on the bus; they enter the outbox in the same transaction as the change.
    Build it with `await PostgresEventStore.open(...)`, or construct it directly: the
    pool and schema are then set up on first use.
    """

    def __init__(
        self,
        dsn: str,
        *,
        serialize: Callable[[Event], bytes],
        min_connections: int = 1,
        max_connections: int = 10,
        contacts: ReporterContacts | None = None,
    ) -> None:
        self.dsn = dsn
        self.serialize = serialize
        self.contacts = contacts or ReporterContacts()
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=min_connections,
            max_size=max_connections,
            kwargs={"autocommit": True},
            # Superusers and table owners skip row policies: act as the policed role.
            configure=rls.use_app_role,
            # One round trip per checkout buys recovery after a database restart.
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="grassroots-events",
        )
        self._opened = False
        self._open_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        serialize: Callable[[Event], bytes],
        min_connections: int = 1,
        max_connections: int = 10,
        contacts: ReporterContacts | None = None,
    ) -> PostgresEventStore:
        """A store with its schema in place and its pool connected (fails fast on a bad DSN)."""
        store = cls(
            dsn,
            serialize=serialize,
            min_connections=min_connections,
            max_connections=max_connections,
            contacts=contacts,
        )
        await store._ensure_open()
        return store

    async def _ensure_open(self) -> None:
        if self._opened:
            return
        async with self._open_lock:
            if self._opened:
                return
            # A plain connection first, so a wrong DSN fails with the server's own
            # message instead of a pool timeout.
            connect = psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            async with await connect as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                # FORCE polices the owner too: its migrations see every tenant.
                await conn.execute(_SET_SCOPE, (rls.SCOPE_SETTING, ALL_TENANTS))
                for statement in _SCHEMA:
                    await conn.execute(statement)
                await rls.install(conn, _TENANT_TABLES, append_only=_APPEND_ONLY)
                await conn.execute(_GRANT_SCHEMA)
            await self._pool.open(wait=True)
            self._opened = True

    @property
    def pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        """The store's connections, all in the policed app role (for raw SQL in checks)."""
        return self._pool

    @asynccontextmanager
    async def _transaction(
        self, subtree: str, *, snapshot: bool = False
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """One unit of work that sees and writes only the rows of `subtree` (see rls).

        A `snapshot` transaction is read-only and sees one snapshot throughout; its
        isolation level must be set before the subtree, so it is set in the same round
        trip.
        """
        await self._ensure_open()
        if not snapshot:
            async with rls.scoped_transaction(self._pool, subtree) as conn:
                yield conn
            return
        if not subtree:
            raise ValueError(
                "a scoped transaction needs a tenant path or the `ALL_TENANTS` subtree"
            )
        start = sql.SQL(_SNAPSHOT + "; SELECT set_config({}, {}, true)").format(
            sql.Literal(rls.SCOPE_SETTING), sql.Literal(subtree)
        )
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(start)
            yield conn

    async def _append_outbox(
        self, conn: psycopg.AsyncConnection[Any], changes: list[tuple[str, Event]]
    ) -> None:
        """Last statements before commit: the lock is held to commit, so seqs commit in order.

        Nothing else is waited for once it is taken, so it cannot join a deadlock.
        """
        if not changes:
            return
        await conn.execute(_LOCK_OUTBOX, (_OUTBOX_LOCK,))
        async with conn.cursor() as cur:
            await cur.executemany(
                _APPEND_OUTBOX,
                [
                    (
                        event.tenant,
                        kind,
                        event.id,
                        self.serialize(event),
                        us(event.update_time),
                        event.trace_context or tracing.current_traceparent(),
                    )
                    for kind, event in changes
                ],
            )

    async def find_by_requests(
        self, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], tuple[Event, str]]:
        """Earlier creates under these keys, with their fingerprints, in one query."""
        if not keys:
            return {}
        parents, reporters, request_ids = (list(column) for column in zip(*keys, strict=True))
        async with self._transaction(_common_subtree(parents)) as conn:
            rows = await _fetch(
                conn,
                _FIND_BY_REQUESTS,
                (parents, reporters, request_ids),
            )
        return {
            (r["k_parent"], r["k_reporter"], r["k_request_id"]): (
                row_to_event(r, self.contacts),
                r["fingerprint"],
            )
            for r in rows
        }

    async def create_many(
        self,
        items: list[tuple[NewReport, Event]],
        find_original: OriginalFinder,
        check_taken: TakenKeyCheck,
    ) -> list[tuple[Event, bool]]:
        """Store many reports with their keys, history and outbox entries in one transaction.

        A key taken by another create (even one still in flight: the insert waits for
        it) or earlier in the batch gives back the given event and False, as on SQLite;
        a later item's duplicate search sees the items stored before it. Keys are
        claimed and categories locked up front, each in sorted order, so two batches
        touching the same keys or categories in different orders cannot deadlock.
        """
        results: list[tuple[Event, bool]] = [(event, False) for _, event in items]
        if not items:
            return results
        # The parent the caller was allowed to report in: its events must lie inside.
        subtree = _common_subtree(report.parent for report, _ in items)
        async with self._transaction(subtree) as conn:
            claimed = await self._claim_keys(conn, items, check_taken)
            for category in sorted({items[i][1].category for i in claimed}):
                await conn.execute(_LOCK_NEARBY, (_NEARBY_LOCK_SPACE, category))
            for i in sorted(claimed):
                event = items[i][1]
                stored = find_original(await self._read_nearby(conn, event), event)
                await conn.execute(_INSERT_EVENT, event_values(stored, self.contacts))
                for entry in stored.timeline:
                    await _add_timeline(conn, stored.tenant, stored.id, entry)
                results[i] = (stored, True)
            await self._append_outbox(conn, [(REPORTED, results[i][0]) for i in sorted(claimed)])
        return results

    @staticmethod
    async def _claim_keys(
        conn: psycopg.AsyncConnection[Any],
        items: list[tuple[NewReport, Event]],
        check_taken: TakenKeyCheck,
    ) -> set[int]:
        """Indexes of the items whose idempotency key this transaction now owns; a key
        another create holds is shown to `check_taken`, which may refuse the batch.

        The stable sort keeps item order among equal keys, so the first of two items
        with one key wins, as on SQLite.
        """
        claimed: set[int] = set()

        def key_of(i: int) -> tuple[str, str, str]:
            report = items[i][0]
            return report.parent, report.reporter, report.request_id

        for i in sorted(range(len(items)), key=key_of):
            report, event = items[i]
            cur = await conn.execute(
                _CLAIM_KEY, (*key_of(i), report.fingerprint(), event.id, us(event.create_time))
            )
            if await cur.fetchone() is not None:
                claimed.add(i)
                continue
            # The insert waited for the create holding the key; this statement's own
            # snapshot (read committed) sees what it stored.
            holder = await _fetch(conn, _TAKEN_KEY, key_of(i))
            if holder:
                check_taken(report, holder[0]["fingerprint"], holder[0]["event_id"])
        return claimed

    async def _read_nearby(self, conn: psycopg.AsyncConnection[Any], event: Event) -> _Prefetched:
        """Every event in the duplicate search window of `event`, any state.

        The caller holds the category lock, so creates of one category take turns from
        before this read to commit: a report racing a nearby one sees it, as on SQLite's
        single writer.
        """
        # The widest window any category may have: the finder's own (per tenant, per
        # category) question always lies inside it and is answered exactly.
        widest = Category(event.category, "", 1, 0, _WIDEST_RADIUS_M, _WIDEST_WINDOW_MINUTES)
        box, since = search_window(event.location, widest, event.create_time)
        since_us = us(since)
        rows = await _fetch(
            conn, _NEARBY, (event.category, box[1], box[3], box[0], box[2], since_us)
        )
        found = [(row_to_event(r, self.contacts), r["create_us"]) for r in rows]
        return _Prefetched(event.category, (box, since_us), found)

    async def get(self, event_id: str) -> Event | None:
        """The event, read for any tenant: the caller is given no tenant to check it by."""
        async with self._transaction(ALL_TENANTS, snapshot=True) as conn:
            rows = await _fetch(conn, _GET, (event_id,))
            return await _with_history(conn, row_to_event(rows[0], self.contacts)) if rows else None

    async def get_many(self, event_ids: list[str]) -> dict[str, Event]:
        found = await asyncio.gather(*(self.get(i) for i in dict.fromkeys(event_ids)))
        return {event.id: event for event in found if event is not None}

    async def update(self, event_id: str, change: Change, fact: str) -> Event:
        """Apply `change` to the current event atomically; the change does the checks.

        The row lock makes a second writer wait and then read the new version, so of
        two updates sent with the same etag exactly one wins.
        """
        async with self._transaction(ALL_TENANTS) as conn:
            rows = await _fetch(conn, _GET_FOR_UPDATE, (event_id,))
            if not rows:
                raise NotFound(f"event {event_id!r} not found")
            # From here on the transaction sees and writes only the event's own tenant.
            await conn.execute(_SET_SCOPE, (rls.SCOPE_SETTING, rows[0]["tenant"]))
            current = await _with_history(conn, row_to_event(rows[0], self.contacts))
            changed, entry, comment = change(current)
            changed = replace(changed, version=current.version + 1)
            await conn.execute(
                _UPDATE, (*update_values(changed, self.contacts), event_id, current.version)
            )
            if entry is not None:
                await _add_timeline(conn, current.tenant, event_id, entry)
            if comment is not None:
                await conn.execute(
                    _ADD_COMMENT,
                    (
                        event_id,
                        event_id,
                        current.tenant,
                        comment.author,
                        comment.text,
                        us(comment.create_time),
                    ),
                )
            result = await _with_history(conn, changed)
            await self._append_outbox(conn, [(fact, result)])
        return result

    async def unpublished(self, limit: int) -> list[OutboxEntry]:
        """Outbox entries not yet on the bus, oldest first."""
        async with self._transaction(ALL_TENANTS) as conn:
            cur = await conn.execute(_UNPUBLISHED, (limit,))
            return [outbox_entry(row) for row in await cur.fetchall()]

    async def mark_published(self, seqs: list[int]) -> None:
        if not seqs:
            return
        async with self._transaction(ALL_TENANTS) as conn:
            await conn.execute(_MARK_PUBLISHED, (us(datetime.now(UTC)), seqs))

    async def save_category(self, tenant: str, category: Category) -> None:
        async with self._transaction(tenant) as conn:
            await conn.execute(
                "INSERT INTO categories (tenant, code, definition) VALUES (%s, %s, %s) "
                "ON CONFLICT (tenant, code) DO UPDATE SET definition = excluded.definition",
                (tenant, category.code, Jsonb(dataclasses.asdict(category))),
            )

    async def list_categories(self) -> list[tuple[str, Category]]:
        """Every tenant's definitions (the catalog is built at start, for all of them)."""
        async with self._transaction(ALL_TENANTS) as conn:
            rows = await _fetch(conn, "SELECT tenant, definition FROM categories", ())
        return [(r["tenant"], Category(**r["definition"])) for r in rows]

    async def save_attachment(self, attachment: Attachment, content: bytes) -> None:
        async with self._transaction(attachment.tenant) as conn:
            await conn.execute(_INSERT_ATTACHMENT, attachment_values(attachment, content))

    async def get_attachment(
        self, attachment_id: str, *, content: bool
    ) -> tuple[Attachment, bytes] | None:
        """By id in any tenant, as `get` reads events: the domain checks who may see it."""
        columns = ATTACHMENT_COLUMNS + (", content" if content else "")
        async with self._transaction(ALL_TENANTS) as conn:
            rows = await _fetch(
                conn, f"SELECT {columns} FROM attachments WHERE id = %s", (attachment_id,)
            )
        if not rows:
            return None
        return row_to_attachment(rows[0]), bytes(rows[0]["content"]) if content else b""

    async def save_intake_settings(self, tenant: str, settings: IntakeSettings) -> None:
        async with self._transaction(tenant) as conn:
            await conn.execute(
                "INSERT INTO intake_settings (tenant, definition) VALUES (%s, %s) "
                "ON CONFLICT (tenant) DO UPDATE SET definition = excluded.definition",
                (tenant, Jsonb(dataclasses.asdict(settings))),
            )

    async def intake_settings(self, tenants: list[str]) -> dict[str, IntakeSettings]:
        """The definitions of these levels (ancestors of the asking tenant: every tenant)."""
        async with self._transaction(ALL_TENANTS) as conn:
            rows = await _fetch(
                conn,
                "SELECT tenant, definition FROM intake_settings WHERE tenant = ANY(%s)",
                (tenants,),
            )
        return {r["tenant"]: IntakeSettings(**r["definition"]) for r in rows}

    async def count_reports(self, tenant: str, reporter_prefix: str, since: datetime) -> int:
        async with self._transaction(tenant) as conn:
            cur = await conn.execute(
                _COUNT_REPORTS, (tenant, *prefix_range(reporter_prefix), us(since))
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def latest_offset(self) -> int:
        """The newest committed seq: safe as a "from now" offset because seqs commit in order.

        Across every tenant, since offsets are one sequence for all of them.
        """
        async with self._transaction(ALL_TENANTS) as conn:
            cur = await conn.execute(LATEST_OFFSET)
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def changes(self, subtree: str, after: int, limit: int) -> list[OutboxEntry]:
        """Domain events of a tenant subtree after an offset, for watchers."""
        async with self._transaction(subtree) as conn:
            cur = await conn.execute(_CHANGES, (after, *subtree_params(subtree), limit))
            return [outbox_entry(row) for row in await cur.fetchall()]

    async def statistics_rows(
        self, subtree: str, filters: Mapping[str, object]
    ) -> list[StatisticsRow]:
        """Per event: what the dashboards count, with when it was first resolved."""
        condition, args = where(subtree, filters)
        async with self._transaction(subtree) as conn:
            rows = await _fetch(conn, POSTGRES.render(STATISTICS.format(where=condition)), args)
        return [statistics_row(r) for r in rows]

    async def list(
        self,
        subtree: str,
        filters: Mapping[str, object],
        limit: int,
        cursor: Mapping[str, object] | None,
    ) -> tuple[list[Event], dict[str, object] | None]:
        """Events in the subtree, newest first (or oldest with `order: asc`), keyset-paged."""
        query, args = list_query(subtree, filters, limit, cursor)
        async with self._transaction(subtree) as conn:
            rows = await _fetch(conn, POSTGRES.render(query), args)
        return [row_to_event(r, self.contacts) for r in rows[:limit]], next_cursor(rows, limit)

    def close(self) -> asyncio.Task[None] | None:
        """Close the pool; await the returned task, or just call it.

        The SQLite store closes synchronously and callers may treat both alike: inside
        an event loop the close runs as a task (awaitable, and it runs even if nobody
        awaits it). Outside a loop only a store that never connected can be closed: an
        async pool's connections and workers belong to the loop that opened them.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._opened:
                raise RuntimeError(
                    "close the PostgreSQL event store inside the event loop that used it"
                ) from None
            return None
        return loop.create_task(self._pool.close())
