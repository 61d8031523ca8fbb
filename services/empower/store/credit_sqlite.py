"""Village credit's policies and consents in one SQLite file (WAL, one writer thread)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from services.empower.domain.credit_model import Consent, Policy
from services.empower.domain.people_model import to_us
from services.empower.store import credit_rows as rows
from services.kit.sqldialect import SQLITE
from services.kit.sqlite import SqliteDatabase, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS credit_policies (
    id             TEXT NOT NULL,
    tenant         TEXT NOT NULL PRIMARY KEY,
    display_name   TEXT NOT NULL,
    window_days    INTEGER NOT NULL,
    base_score     INTEGER NOT NULL,
    points_weight  INTEGER NOT NULL,
    deed_weight    INTEGER NOT NULL,
    bands_json     TEXT NOT NULL,
    create_us      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS credit_consents (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    household   TEXT NOT NULL,
    consumer    TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    expire_us   INTEGER NOT NULL,
    granted_by  TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    create_us   INTEGER NOT NULL,
    revoke_us   INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS credit_consents_request ON credit_consents (tenant, request_id);
CREATE INDEX IF NOT EXISTS credit_consents_tenant ON credit_consents (tenant, id);
CREATE INDEX IF NOT EXISTS credit_consents_reader
    ON credit_consents (household, consumer, purpose);
"""


def _q(statement: str) -> str:
    return SQLITE.render(statement)


class SqliteCreditStore:
    """CreditStore on one SQLite file."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(lambda conn: conn.executescript(SCHEMA))

    async def insert_policy(self, subtree: str, policy: Policy) -> tuple[Policy, bool]:
        def run(conn: sqlite3.Connection) -> tuple[Policy, bool]:
            added = conn.execute(_q(rows.INSERT_POLICY), rows.policy_values(policy)).rowcount
            row = conn.execute(_q(rows.POLICY_OF_TENANT), (policy.tenant,)).fetchone()
            return rows.row_to_policy(row), added > 0

        return await self.db.run(lambda conn: transaction(conn, run))

    async def get_policy(self, subtree: str, tenant: str, policy_id: str) -> Policy | None:
        where, args = rows.in_subtree(subtree)
        query = _q(f"{rows.GET_POLICY} AND {where}")

        def run(conn: sqlite3.Connection) -> Policy | None:
            row = conn.execute(query, (tenant, policy_id, *args)).fetchone()
            return rows.row_to_policy(row) if row else None

        return await self.db.run(run)

    async def policies_of(self, subtree: str, tenants: Sequence[str]) -> list[Policy]:
        if not tenants:
            return []
        where, args = rows.in_subtree(subtree)
        query = _q(f"{rows.POLICIES_OF.format(marks=SQLITE.marks(len(tenants)))} AND {where}")

        def run(conn: sqlite3.Connection) -> list[Policy]:
            return [rows.row_to_policy(r) for r in conn.execute(query, (*tenants, *args))]

        return await self.db.run(run)

    async def delete_policy(self, subtree: str, tenant: str, policy_id: str) -> bool:
        where, args = rows.in_subtree(subtree)
        query = _q(f"{rows.DELETE_POLICY} AND {where}")
        return await self.db.run(
            lambda conn: conn.execute(query, (tenant, policy_id, *args)).rowcount > 0
        )

    async def insert_consent(self, subtree: str, consent: Consent) -> Consent:
        def run(conn: sqlite3.Connection) -> Consent:
            conn.execute(_q(rows.INSERT_CONSENT), rows.consent_values(consent))
            row = conn.execute(
                _q(rows.CONSENT_OF_REQUEST), (consent.tenant, consent.request_id)
            ).fetchone()
            return rows.row_to_consent(row)

        return await self.db.run(lambda conn: transaction(conn, run))

    async def get_consent(self, subtree: str, consent_id: str) -> Consent | None:
        where, args = rows.in_subtree(subtree)
        query = _q(f"{rows.GET_CONSENT} AND {where}")

        def run(conn: sqlite3.Connection) -> Consent | None:
            row = conn.execute(query, (consent_id, *args)).fetchone()
            return rows.row_to_consent(row) if row else None

        return await self.db.run(run)

    async def list_consents(
        self, subtree: str, household: str, consumer: str, limit: int, after_id: str | None
    ) -> list[Consent]:
        query, params = rows.list_clauses(subtree, household, consumer, after_id)

        def run(conn: sqlite3.Connection) -> list[Consent]:
            return [rows.row_to_consent(r) for r in conn.execute(_q(query), (*params, limit))]

        return await self.db.run(run)

    async def revoke_consent(self, subtree: str, consent_id: str, at: datetime) -> Consent | None:
        where, args = rows.in_subtree(subtree)

        def run(conn: sqlite3.Connection) -> Consent | None:
            conn.execute(_q(f"{rows.REVOKE_CONSENT} AND {where}"), (to_us(at), consent_id, *args))
            row = conn.execute(
                _q(f"{rows.GET_CONSENT} AND {where}"), (consent_id, *args)
            ).fetchone()
            return rows.row_to_consent(row) if row else None

        return await self.db.run(lambda conn: transaction(conn, run))

    async def consent_in_force(
        self, subtree: str, household: str, consumer: str, purpose: str, now: datetime
    ) -> Consent | None:
        where, args = rows.in_subtree(subtree)
        query = _q(f"{rows.CONSENT_IN_FORCE} AND {where} ORDER BY expire_us DESC LIMIT 1")

        def run(conn: sqlite3.Connection) -> Consent | None:
            row = conn.execute(query, (household, consumer, purpose, to_us(now), *args)).fetchone()
            return rows.row_to_consent(row) if row else None

        return await self.db.run(run)

    def close(self) -> None:
        self.db.close()
