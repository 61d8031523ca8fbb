"""A scratch PostgreSQL schema for a benchmark's store, dropped afterwards."""

from __future__ import annotations

import os
import uuid

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

DSN = os.environ.get(
    "GRASSROOTS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def scratch_schema(prefix: str) -> tuple[str, str]:
    """A new schema named `{prefix}_...` and a DSN that puts it first on search_path."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return schema, make_conninfo(DSN, options=f"-csearch_path={schema},public")


def drop_schema(schema: str) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
