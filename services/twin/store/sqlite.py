"""The twin store in one SQLite file (WAL), for `make run`, tests and one-replica sites.

A batch of readings goes in as one logged row (store.chunks) inside the same
transaction as the rule states and alarms it caused; `compact` regroups logged batches
into per-series chunks, indexed by (series, first time).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from services.kit.errors import AlreadyExists
from services.kit.sqlite import SqliteDatabase
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

SCHEMA = """
CREATE TABLE IF NOT EXISTS twin_models (
  tenant TEXT NOT NULL, model_id TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (tenant, model_id));
CREATE TABLE IF NOT EXISTS twin_entities (
  tenant TEXT NOT NULL, entity_id TEXT NOT NULL, entity_type TEXT NOT NULL,
  longitude REAL, latitude REAL, building TEXT NOT NULL, display_name TEXT NOT NULL,
  create_ms INTEGER NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (tenant, entity_id));
CREATE TABLE IF NOT EXISTS twin_relationships (
  tenant TEXT NOT NULL, entity_id TEXT NOT NULL, type TEXT NOT NULL,
  target_tenant TEXT NOT NULL, target_id TEXT NOT NULL,
  PRIMARY KEY (tenant, entity_id, type, target_tenant, target_id));
CREATE INDEX IF NOT EXISTS twin_relationships_target
  ON twin_relationships (target_tenant, target_id, type);
CREATE TABLE IF NOT EXISTS twin_rules (
  tenant TEXT NOT NULL, rule_id TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (tenant, rule_id));
CREATE TABLE IF NOT EXISTS twin_series (
  id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, entity_id TEXT NOT NULL,
  property TEXT NOT NULL, UNIQUE (tenant, entity_id, property));
CREATE TABLE IF NOT EXISTS twin_chunks (
  series_id INTEGER NOT NULL, t_min INTEGER NOT NULL, t_max INTEGER NOT NULL,
  n INTEGER NOT NULL, times BLOB NOT NULL, vals BLOB NOT NULL, lons BLOB, lats BLOB);
CREATE INDEX IF NOT EXISTS twin_chunks_series_time ON twin_chunks (series_id, t_min);
CREATE TABLE IF NOT EXISTS twin_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT, t_min INTEGER NOT NULL, t_max INTEGER NOT NULL,
  n INTEGER NOT NULL, series BLOB NOT NULL, times BLOB NOT NULL, vals BLOB NOT NULL,
  lons BLOB, lats BLOB);
CREATE TABLE IF NOT EXISTS twin_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS twin_rule_states (
  rule_tenant TEXT NOT NULL, rule_id TEXT NOT NULL, tenant TEXT NOT NULL,
  entity_id TEXT NOT NULL, phase INTEGER NOT NULL, since_ms INTEGER NOT NULL,
  level INTEGER NOT NULL, episode TEXT NOT NULL,
  PRIMARY KEY (rule_tenant, rule_id, tenant, entity_id));
CREATE TABLE IF NOT EXISTS twin_alarms (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, episode TEXT NOT NULL,
  rule_tenant TEXT NOT NULL, rule_id TEXT NOT NULL, tenant TEXT NOT NULL,
  entity_id TEXT NOT NULL, at_ms INTEGER NOT NULL, value REAL, level INTEGER NOT NULL,
  old_level INTEGER NOT NULL, delivered INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS twin_alarms_pending ON twin_alarms (delivered, seq);
CREATE TABLE IF NOT EXISTS twin_episodes (episode TEXT PRIMARY KEY, event TEXT NOT NULL);
"""


def _alarm(row: sqlite3.Row) -> Alarm:
    return Alarm(
        kind=row[1],
        episode=row[2],
        rule=(row[3], row[4]),
        entity=(row[5], row[6]),
        at_ms=int(row[7]),
        value=float("nan") if row[8] is None else float(row[8]),
        level=int(row[9]),
        old_level=int(row[10]),
        seq=int(row[0]),
    )


def _nan_to_none(value: float) -> float | None:
    return None if value != value else value


class SqliteTwinStore:
    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(lambda c: c.executescript(SCHEMA))

    async def close(self) -> None:
        self.db.close()

    # ---- entities ----------------------------------------------------------------

    async def create_entity(self, entity: Entity) -> None:
        def tx(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(r.INSERT_ENTITY, r.entity_values(entity))
                c.executemany(
                    r.INSERT_RELATIONSHIP,
                    [
                        (entity.tenant, entity.entity_id, x.type, *x.target)
                        for x in entity.relationships
                    ],
                )
            except sqlite3.IntegrityError:
                c.execute("ROLLBACK")
                raise AlreadyExists(f"entity {entity.name!r} already exists") from None
            c.execute("COMMIT")

        await self.db.run(tx)

    async def delete_entity(self, key: EntityKey) -> bool:
        def tx(c: sqlite3.Connection) -> bool:
            c.execute("BEGIN IMMEDIATE")
            n = c.execute(
                "DELETE FROM twin_entities WHERE tenant = ? AND entity_id = ?", key
            ).rowcount
            c.execute("DELETE FROM twin_relationships WHERE tenant = ? AND entity_id = ?", key)
            c.execute("DELETE FROM twin_rule_states WHERE tenant = ? AND entity_id = ?", key)
            c.execute("COMMIT")
            return n > 0

        return await self.db.run(tx)

    async def get_entities(self, keys: list[EntityKey]) -> list[Entity]:
        def q(c: sqlite3.Connection) -> list[Entity]:
            out = []
            for key in keys:
                row = c.execute(
                    r.GET_ENTITY,
                    key,
                ).fetchone()
                if row is not None:
                    rels = c.execute(r.SELECT_RELATIONSHIPS, key).fetchall()
                    out.append(r.row_to_entity(row, rels))
            return out

        return await self.db.run(q)

    async def list_entities(
        self, subtree: str, entity_type: str, limit: int, after: EntityKey | None
    ) -> list[Entity]:
        a_tenant, a_id = after or ("", "")

        def q(c: sqlite3.Connection) -> list[Entity]:
            found = c.execute(
                r.LIST_ENTITIES,
                (
                    *r.subtree_args(subtree),
                    entity_type,
                    entity_type,
                    a_tenant,
                    a_tenant,
                    a_id,
                    limit,
                ),
            ).fetchall()
            return [
                r.row_to_entity(row, c.execute(r.SELECT_RELATIONSHIPS, (row[0], row[1])).fetchall())
                for row in found
            ]

        return await self.db.run(q)

    async def related(
        self, key: EntityKey, incoming: bool, relationship_type: str
    ) -> list[tuple[str, EntityKey]]:
        sql = r.INCOMING if incoming else r.OUTGOING
        found = await self.db.run(
            lambda c: c.execute(sql, (*key, relationship_type, relationship_type)).fetchall()
        )
        return [(row[0], (row[1], row[2])) for row in found]

    # ---- models and rules --------------------------------------------------------

    async def save_model(self, model: Model) -> None:
        await self.db.run(
            lambda c: c.execute(
                r.UPSERT_MODEL, (model.tenant, model.model_id, r.model_to_json(model))
            )
        )

    async def list_models(self) -> list[Model]:
        found = await self.db.run(
            lambda c: c.execute("SELECT tenant, model_id, body FROM twin_models").fetchall()
        )
        return [r.model_from_json(*row) for row in found]

    async def save_rule(self, rule: Rule) -> None:
        def tx(c: sqlite3.Connection) -> None:
            try:
                c.execute(r.INSERT_RULE, (rule.tenant, rule.rule_id, r.rule_to_json(rule)))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"rule {rule.rule_id!r} already exists") from None

        await self.db.run(tx)

    async def delete_rule(self, key: tuple[str, str]) -> bool:
        def tx(c: sqlite3.Connection) -> bool:
            c.execute("BEGIN IMMEDIATE")
            n = c.execute("DELETE FROM twin_rules WHERE tenant = ? AND rule_id = ?", key).rowcount
            c.execute("DELETE FROM twin_rule_states WHERE rule_tenant = ? AND rule_id = ?", key)
            c.execute("COMMIT")
            return n > 0

        return await self.db.run(tx)

    async def list_rules(self) -> list[Rule]:
        found = await self.db.run(
            lambda c: c.execute("SELECT tenant, rule_id, body FROM twin_rules").fetchall()
        )
        return [r.rule_from_json(*row) for row in found]

    # ---- readings ----------------------------------------------------------------

    async def series_ids(self, keys: list[SeriesKey]) -> list[int]:
        def tx(c: sqlite3.Connection) -> list[int]:
            c.execute("BEGIN IMMEDIATE")
            c.executemany(
                r.INSERT_SERIES,
                keys,
            )
            out = [
                c.execute(
                    r.SERIES_ID,
                    k,
                ).fetchone()[0]
                for k in keys
            ]
            c.execute("COMMIT")
            return out

        return await self.db.run(tx)

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
        found = await self.db.run(lambda c: c.execute(r.FIND_SERIES, args).fetchall())
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
        logged = log_row(rows) if len(rows) else None

        def tx(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                if logged is not None:
                    c.execute(r.INSERT_LOG, logged)
                if states:
                    c.executemany(
                        r.UPSERT_STATE,
                        [
                            (*rk, *ek, int(s.phase), s.since_ms, s.level, s.episode)
                            for (rk, ek), s in states.items()
                        ],
                    )
                if alarms:
                    c.executemany(
                        r.INSERT_ALARM,
                        [
                            (
                                a.kind,
                                a.episode,
                                *a.rule,
                                *a.entity,
                                a.at_ms,
                                _nan_to_none(a.value),
                                a.level,
                                a.old_level,
                            )
                            for a in alarms
                        ],
                    )
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

        await self.db.run(tx)

    async def compact(self, limit: int) -> int:
        def tx(c: sqlite3.Connection) -> int:
            c.execute("BEGIN IMMEDIATE")
            found = c.execute(r.OLDEST_LOGGED, (limit,)).fetchall()
            if found:
                rows = from_log([tuple(x[1:]) for x in found])
                c.executemany(r.INSERT_CHUNK, [chunk.row() for chunk in chunks_of(rows)])
                c.execute(r.DROP_LOGGED, (found[-1][0],))
            c.execute("COMMIT")
            return len(found)

        return await self.db.run(tx)

    async def next_epoch(self) -> int:
        def tx(c: sqlite3.Connection) -> int:
            c.execute("BEGIN IMMEDIATE")
            c.execute(r.BUMP_EPOCH)
            value = int(c.execute(r.GET_EPOCH).fetchone()[0])
            c.execute("COMMIT")
            return value

        return await self.db.run(tx)

    async def latest_of(self, series_ids: list[int] | None) -> dict[int, Latest]:
        def q(c: sqlite3.Connection) -> dict[int, Latest]:
            log = from_log([tuple(x) for x in c.execute(r.ALL_LOGGED).fetchall()])
            if series_ids is None:
                ids = [row[0] for row in c.execute("SELECT id FROM twin_series")]
            else:
                ids = series_ids
            out: dict[int, Latest] = {}
            for sid in ids:
                latest = newest_of(sid, c.execute(r.NEWEST_CHUNKS, (sid, sid)).fetchall(), log)
                if latest is not None:
                    out[sid] = latest
            return out

        return await self.db.run(q)

    async def readings(self, series: list[int], start_ms: int, end_ms: int) -> list[SeriesReadings]:
        def q(c: sqlite3.Connection) -> list[SeriesReadings]:
            logged = c.execute(r.LOGGED_IN_RANGE, (end_ms, start_ms)).fetchall()
            log = from_log([tuple(x) for x in logged])
            return [
                readings_of(
                    sid,
                    c.execute(r.CHUNKS_IN_RANGE, (sid, end_ms, start_ms)).fetchall(),
                    log,
                    start_ms,
                    end_ms,
                )
                for sid in sorted(series)
            ]

        return await self.db.run(q)

    # ---- rule states and alarms ----------------------------------------------------

    async def rule_states(self) -> dict[tuple[RuleKey, EntityKey], RuleState]:
        found = await self.db.run(
            lambda c: c.execute(
                "SELECT rule_tenant, rule_id, tenant, entity_id, phase, since_ms, level, episode "
                "FROM twin_rule_states"
            ).fetchall()
        )
        return {((x[0], x[1]), (x[2], x[3])): r.state_from_row(x) for x in found}

    async def pending_alarms(self, limit: int) -> list[Alarm]:
        found = await self.db.run(lambda c: c.execute(r.PENDING_ALARMS, (limit,)).fetchall())
        return [_alarm(x) for x in found]

    async def alarm_delivered(self, seq: int, episode: str, event: str) -> None:
        def tx(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            c.execute("UPDATE twin_alarms SET delivered = 1 WHERE seq = ?", (seq,))
            if event:
                c.execute(
                    "INSERT OR IGNORE INTO twin_episodes (episode, event) VALUES (?, ?)",
                    (episode, event),
                )
            c.execute("COMMIT")

        await self.db.run(tx)

    async def event_of(self, episode: str) -> str:
        row = await self.db.run(
            lambda c: c.execute(
                "SELECT event FROM twin_episodes WHERE episode = ?", (episode,)
            ).fetchone()
        )
        return str(row[0]) if row else ""
