"""The twin store in PostgreSQL, for deployments with more than one twin replica.

A drop-in for the SQLite store (tests/unit/twin runs on both). History is the same
rows as there (store.chunks: one logged row per batch, compacted into one chunk row per
series), with a BRIN index on the chunks' time range: chunks arrive roughly in time
order, so a BRIN index of a few pages narrows a time range (across a model or an area)
as well as a B-tree would, at a fraction of the cost on every insert; a B-tree on
(series, first time) serves one series. Reads run in one REPEATABLE READ snapshot, so a
compaction committing meanwhile cannot make a reading appear twice or not at all.

Row-level security (services/kit/rls.py) polices every table with a tenant column
(entities, relationships, models, rules, series, rule states, alarms, episodes). The
log and chunk tables have no tenant column: they are reached only through series ids,
which come from the policed series table. Scopes used:

* lists, relationship walks and series searches for a caller: the caller's subtree;
* the service's own work (ingest writes, alarm relay, start-up loading): the system
  subtree, since a batch may touch entities anywhere below its parent.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.kit import rls
from services.kit.errors import AlreadyExists
from services.kit.sqldialect import POSTGRES
from services.kit.tenancy import ALL_TENANTS
from services.twin.domain.entities import Entity, Latest
from services.twin.domain.models import Model
from services.twin.domain.ports import (
    Alarm,
    EntityKey,
    ReadingRows,
    RuleKey,
    SeriesKey,
    SeriesReadings,
    SeriesRef,
)
from services.twin.domain.rules import Rule, RuleState
from services.twin.store import rows as r
from services.twin.store.chunks import chunks_of, from_log, log_row, newest_of, readings_of

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS twin_models (
      tenant text COLLATE "C" NOT NULL, model_id text NOT NULL, body text NOT NULL,
      PRIMARY KEY (tenant, model_id))""",
    """CREATE TABLE IF NOT EXISTS twin_entities (
      tenant text COLLATE "C" NOT NULL, entity_id text NOT NULL, entity_type text NOT NULL,
      longitude double precision, latitude double precision, building text NOT NULL,
      display_name text NOT NULL, create_ms bigint NOT NULL, seq bigint NOT NULL,
      PRIMARY KEY (tenant, entity_id))""",
    """CREATE TABLE IF NOT EXISTS twin_relationships (
      tenant text COLLATE "C" NOT NULL, entity_id text NOT NULL, type text NOT NULL,
      target_tenant text COLLATE "C" NOT NULL, target_id text NOT NULL,
      PRIMARY KEY (tenant, entity_id, type, target_tenant, target_id))""",
    """CREATE INDEX IF NOT EXISTS twin_relationships_target
      ON twin_relationships (target_tenant, target_id, type)""",
    """CREATE TABLE IF NOT EXISTS twin_rules (
      tenant text COLLATE "C" NOT NULL, rule_id text NOT NULL, body text NOT NULL,
      PRIMARY KEY (tenant, rule_id))""",
    """CREATE TABLE IF NOT EXISTS twin_series (
      id bigserial PRIMARY KEY, tenant text COLLATE "C" NOT NULL, entity_id text NOT NULL,
      property text NOT NULL, UNIQUE (tenant, entity_id, property))""",
    """CREATE TABLE IF NOT EXISTS twin_chunks (
      series_id bigint NOT NULL, t_min bigint NOT NULL, t_max bigint NOT NULL, n int NOT NULL,
      times bytea NOT NULL, vals bytea NOT NULL, lons bytea, lats bytea)""",
    """CREATE INDEX IF NOT EXISTS twin_chunks_time_brin ON twin_chunks
      USING brin (t_min, t_max) WITH (pages_per_range = 16)""",
    """CREATE INDEX IF NOT EXISTS twin_chunks_series_time ON twin_chunks (series_id, t_min)""",
    """CREATE TABLE IF NOT EXISTS twin_log (
      id bigserial PRIMARY KEY, t_min bigint NOT NULL, t_max bigint NOT NULL, n int NOT NULL,
      series bytea NOT NULL, times bytea NOT NULL, vals bytea NOT NULL, lons bytea, lats bytea)""",
    """CREATE TABLE IF NOT EXISTS twin_meta (name text PRIMARY KEY, value bigint NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS twin_rule_states (
      rule_tenant text COLLATE "C" NOT NULL, rule_id text NOT NULL,
      tenant text COLLATE "C" NOT NULL, entity_id text NOT NULL, phase int NOT NULL,
      since_ms bigint NOT NULL, level int NOT NULL, episode text NOT NULL,
      PRIMARY KEY (rule_tenant, rule_id, tenant, entity_id))""",
    """CREATE TABLE IF NOT EXISTS twin_alarms (
      seq bigserial PRIMARY KEY, kind text NOT NULL, episode text NOT NULL,
      rule_tenant text COLLATE "C" NOT NULL, rule_id text NOT NULL,
      tenant text COLLATE "C" NOT NULL, entity_id text NOT NULL, at_ms bigint NOT NULL,
      value double precision, level int NOT NULL, old_level int NOT NULL,
      delivered int NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS twin_alarms_pending ON twin_alarms (seq) WHERE delivered = 0""",
    """CREATE TABLE IF NOT EXISTS twin_episodes (
      episode text PRIMARY KEY, tenant text COLLATE "C" NOT NULL, event text NOT NULL)""",
)
_TENANT_TABLES = (
    "twin_models",
    "twin_entities",
    "twin_relationships",
    "twin_rules",
    "twin_series",
    "twin_rule_states",
    "twin_alarms",
    "twin_episodes",
)
_OTHER_TABLES = ("twin_chunks", "twin_log", "twin_meta")
_SCHEMA_LOCK = 7_400_013
_SET_SCOPE = "SELECT set_config(%s, %s, true)"
_GRANT_SEQUENCES = f"""DO $$ BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO {rls.APP_ROLE}', current_schema());
  EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO {rls.APP_ROLE}',
                 pg_get_serial_sequence('twin_series', 'id'));
  EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO {rls.APP_ROLE}',
                 pg_get_serial_sequence('twin_alarms', 'seq'));
  EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO {rls.APP_ROLE}',
                 pg_get_serial_sequence('twin_log', 'id'));
END $$"""


def _q(statement: str) -> str:
    return POSTGRES.render(statement)


class PostgresTwinStore:
    def __init__(self, dsn: str, *, max_connections: int = 10) -> None:
        self.dsn = dsn
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=rls.use_app_role,
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="grassroots-twin",
        )

    @classmethod
    async def open(cls, dsn: str) -> PostgresTwinStore:
        """A store with its schema in place and its pool connected (fails fast on a bad DSN)."""
        store = cls(dsn)
        connect = psycopg.AsyncConnection.connect(dsn, autocommit=True)
        async with await connect as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            await conn.execute(_SET_SCOPE, (rls.SCOPE_SETTING, ALL_TENANTS))
            for statement in _SCHEMA:
                await conn.execute(statement)
            await rls.install(conn, _TENANT_TABLES, other_tables=_OTHER_TABLES)
            await conn.execute(_GRANT_SEQUENCES)
        await store._pool.open(wait=True)
        return store

    @asynccontextmanager
    async def _tx(self, subtree: str = ALL_TENANTS) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with rls.scoped_transaction(self._pool, subtree) as conn:
            yield conn

    async def _all(
        self, statement: str, args: tuple[Any, ...] = (), subtree: str = ALL_TENANTS
    ) -> list[Any]:
        async with self._tx(subtree) as conn:
            cur = await conn.execute(_q(statement), args)
            return await cur.fetchall()

    async def close(self) -> None:
        await self._pool.close()

    # ---- entities ----------------------------------------------------------------

    async def create_entity(self, entity: Entity) -> None:
        try:
            async with self._tx(entity.tenant) as conn:
                await conn.execute(_q(r.INSERT_ENTITY), r.entity_values(entity))
                async with conn.cursor() as cur:
                    await cur.executemany(
                        _q(r.INSERT_RELATIONSHIP),
                        [
                            (entity.tenant, entity.entity_id, x.type, *x.target)
                            for x in entity.relationships
                        ],
                    )
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"entity {entity.name!r} already exists") from None

    async def delete_entity(self, key: EntityKey) -> bool:
        async with self._tx(key[0]) as conn:
            cur = await conn.execute(
                "DELETE FROM twin_entities WHERE tenant = %s AND entity_id = %s", key
            )
            await conn.execute(
                "DELETE FROM twin_relationships WHERE tenant = %s AND entity_id = %s", key
            )
            await conn.execute(
                "DELETE FROM twin_rule_states WHERE tenant = %s AND entity_id = %s", key
            )
            return cur.rowcount > 0

    async def get_entities(self, keys: list[EntityKey]) -> list[Entity]:
        out: list[Entity] = []
        async with self._tx() as conn:
            for key in keys:
                row = await (await conn.execute(_q(r.GET_ENTITY), key)).fetchone()
                if row is not None:
                    rels = await (await conn.execute(_q(r.SELECT_RELATIONSHIPS), key)).fetchall()
                    out.append(r.row_to_entity(row, rels))
        return out

    async def list_entities(
        self, subtree: str, entity_type: str, limit: int, after: EntityKey | None
    ) -> list[Entity]:
        a_tenant, a_id = after or ("", "")
        out: list[Entity] = []
        async with self._tx(subtree) as conn:
            found = await (
                await conn.execute(
                    _q(r.LIST_ENTITIES),
                    (
                        *r.subtree_args(subtree),
                        entity_type,
                        entity_type,
                        a_tenant,
                        a_tenant,
                        a_id,
                        limit,
                    ),
                )
            ).fetchall()
            for row in found:
                rels = await (
                    await conn.execute(_q(r.SELECT_RELATIONSHIPS), (row[0], row[1]))
                ).fetchall()
                out.append(r.row_to_entity(row, rels))
        return out

    async def related(
        self, key: EntityKey, incoming: bool, relationship_type: str
    ) -> list[tuple[str, EntityKey]]:
        found = await self._all(
            r.INCOMING if incoming else r.OUTGOING, (*key, relationship_type, relationship_type)
        )
        return [(row[0], (row[1], row[2])) for row in found]

    # ---- models and rules --------------------------------------------------------

    async def save_model(self, model: Model) -> None:
        async with self._tx(model.tenant) as conn:
            await conn.execute(
                _q(r.UPSERT_MODEL), (model.tenant, model.model_id, r.model_to_json(model))
            )

    async def list_models(self) -> list[Model]:
        return [
            r.model_from_json(*row)
            for row in await self._all("SELECT tenant, model_id, body FROM twin_models")
        ]

    async def save_rule(self, rule: Rule) -> None:
        try:
            async with self._tx(rule.tenant) as conn:
                await conn.execute(
                    _q(r.INSERT_RULE), (rule.tenant, rule.rule_id, r.rule_to_json(rule))
                )
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"rule {rule.rule_id!r} already exists") from None

    async def delete_rule(self, key: tuple[str, str]) -> bool:
        async with self._tx(key[0]) as conn:
            cur = await conn.execute(
                "DELETE FROM twin_rules WHERE tenant = %s AND rule_id = %s", key
            )
            await conn.execute(
                "DELETE FROM twin_rule_states WHERE rule_tenant = %s AND rule_id = %s", key
            )
            return cur.rowcount > 0

    async def list_rules(self) -> list[Rule]:
        return [
            r.rule_from_json(*row)
            for row in await self._all("SELECT tenant, rule_id, body FROM twin_rules")
        ]

    # ---- readings ----------------------------------------------------------------

    async def series_ids(self, keys: list[SeriesKey]) -> list[int]:
        out: list[int] = []
        async with self._tx() as conn:
            async with conn.cursor() as cur:
                await cur.executemany(_q(r.INSERT_SERIES), keys)
            for key in keys:
                row = await (await conn.execute(_q(r.SERIES_ID), key)).fetchone()
                assert row is not None
                out.append(int(row[0]))
        return out

    async def find_series(
        self,
        subtree: str,
        prop: str,
        entities: list[EntityKey],
        entity_type: str,
        box: tuple[float, float, float, float] | None,
    ) -> list[SeriesRef]:
        b = box or (0.0, 0.0, 0.0, 0.0)
        args = (
            prop,
            *r.subtree_args(subtree),
            entity_type,
            entity_type,
            1 if box else 0,
            b[0],
            b[2],
            b[1],
            b[3],
        )
        found = await self._all(r.FIND_SERIES, args, subtree)
        wanted = set(entities)
        return [
            SeriesRef(int(row[0]), row[1], row[2])
            for row in found
            if not wanted or (row[1], row[2]) in wanted
        ]

    async def record(
        self,
        rows: ReadingRows,
        states: dict[tuple[RuleKey, EntityKey], RuleState],
        alarms: list[Alarm],
    ) -> None:
        async with self._tx() as conn:
            if len(rows):
                await conn.execute(_q(r.INSERT_LOG), log_row(rows))
            async with conn.cursor() as cur:
                if states:
                    await cur.executemany(
                        _q(r.UPSERT_STATE),
                        [
                            (*rk, *ek, int(s.phase), s.since_ms, s.level, s.episode)
                            for (rk, ek), s in states.items()
                        ],
                    )
                if alarms:
                    await cur.executemany(
                        _q(r.INSERT_ALARM),
                        [
                            (
                                a.kind,
                                a.episode,
                                *a.rule,
                                *a.entity,
                                a.at_ms,
                                None if math.isnan(a.value) else a.value,
                                a.level,
                                a.old_level,
                            )
                            for a in alarms
                        ],
                    )

    async def compact(self, limit: int) -> int:
        async with self._tx() as conn:
            found = await (
                await conn.execute(_q(r.OLDEST_LOGGED + " FOR UPDATE SKIP LOCKED"), (limit,))
            ).fetchall()
            if not found:
                return 0
            rows = from_log([_bytes(x[1:]) for x in found])
            async with conn.cursor() as cur:
                await cur.executemany(_q(r.INSERT_CHUNK), [c.row() for c in chunks_of(rows)])
            await conn.execute(
                "DELETE FROM twin_log WHERE id = ANY(%s)", ([int(x[0]) for x in found],)
            )
            return len(found)

    async def next_epoch(self) -> int:
        async with self._tx() as conn:
            await conn.execute(_q(r.BUMP_EPOCH))
            row = await (await conn.execute(_q(r.GET_EPOCH))).fetchone()
            assert row is not None
            return int(row[0])

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A read-only transaction that sees one snapshot throughout."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
                f"SELECT set_config('{rls.SCOPE_SETTING}', '{ALL_TENANTS}', true)"
            )
            yield conn

    async def latest_of(self, series_ids: list[int] | None) -> dict[int, Latest]:
        out: dict[int, Latest] = {}
        async with self._snapshot() as conn:
            logged = await (await conn.execute(_q(r.ALL_LOGGED))).fetchall()
            log = from_log([_bytes(x) for x in logged])
            if series_ids is None:
                found = await (await conn.execute("SELECT id FROM twin_series")).fetchall()
                series_ids = [int(row[0]) for row in found]
            for sid in series_ids:
                blobs = await (await conn.execute(_q(r.NEWEST_CHUNKS), (sid, sid))).fetchall()
                latest = newest_of(sid, [_bytes(b) for b in blobs], log)
                if latest is not None:
                    out[sid] = latest
        return out

    async def readings(self, series: list[int], start_ms: int, end_ms: int) -> list[SeriesReadings]:
        out = []
        async with self._snapshot() as conn:
            logged = await (
                await conn.execute(_q(r.LOGGED_IN_RANGE), (end_ms, start_ms))
            ).fetchall()
            log = from_log([_bytes(x) for x in logged])
            for sid in sorted(series):
                blobs = await (
                    await conn.execute(_q(r.CHUNKS_IN_RANGE), (sid, end_ms, start_ms))
                ).fetchall()
                out.append(readings_of(sid, [_bytes(b) for b in blobs], log, start_ms, end_ms))
        return out

    # ---- rule states and alarms ----------------------------------------------------

    async def rule_states(self) -> dict[tuple[RuleKey, EntityKey], RuleState]:
        found = await self._all(
            "SELECT rule_tenant, rule_id, tenant, entity_id, phase, since_ms, level, episode "
            "FROM twin_rule_states"
        )
        return {((x[0], x[1]), (x[2], x[3])): r.state_from_row(x) for x in found}

    async def pending_alarms(self, limit: int) -> list[Alarm]:
        found = await self._all(r.PENDING_ALARMS, (limit,))
        return [
            Alarm(
                kind=x[1],
                episode=x[2],
                rule=(x[3], x[4]),
                entity=(x[5], x[6]),
                at_ms=int(x[7]),
                value=math.nan if x[8] is None else float(x[8]),
                level=int(x[9]),
                old_level=int(x[10]),
                seq=int(x[0]),
            )
            for x in found
        ]

    async def alarm_delivered(self, seq: int, episode: str, event: str) -> None:
        async with self._tx() as conn:
            row = await (
                await conn.execute(
                    "UPDATE twin_alarms SET delivered = 1 WHERE seq = %s RETURNING tenant", (seq,)
                )
            ).fetchone()
            if event and row is not None:
                await conn.execute(
                    "INSERT INTO twin_episodes (episode, tenant, event) VALUES (%s, %s, %s) "
                    "ON CONFLICT (episode) DO NOTHING",
                    (episode, row[0], event),
                )

    async def event_of(self, episode: str) -> str:
        found = await self._all("SELECT event FROM twin_episodes WHERE episode = ?", (episode,))
        return str(found[0][0]) if found else ""


def _bytes(row: Any) -> tuple[bytes | None, ...]:
    """psycopg returns bytea as bytes (or memoryview): the chunk decoder takes bytes."""
    return tuple(None if x is None else bytes(x) for x in row)  # type: ignore[return-value]
