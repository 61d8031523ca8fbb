"""The plans tables, written once for both stores, and the WHERE terms they share.

`{text}` is a byte-wise compared text column (tenant paths and ids must sort the same
on both stores), `{seq}` an increasing key, `{blob}` bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

TABLES: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS plans_keys (
        tenant       {text} NOT NULL,
        actor        {text} NOT NULL,
        request_id   {text} NOT NULL,
        resource_id  {text} NOT NULL,
        fingerprint  {text} NOT NULL,
        create_us    BIGINT NOT NULL,
        PRIMARY KEY (tenant, actor, request_id))""",
    """CREATE TABLE IF NOT EXISTS emergency_plans (
        id         {text} PRIMARY KEY,
        tenant     {text} NOT NULL,
        signal     {text} NOT NULL,
        version    INTEGER NOT NULL,
        create_us  BIGINT NOT NULL,
        body       {text} NOT NULL,
        delete_us  BIGINT)""",
    "CREATE INDEX IF NOT EXISTS emergency_plans_tenant ON emergency_plans (tenant, id)",
    "CREATE INDEX IF NOT EXISTS emergency_plans_signal ON emergency_plans (signal)",
    """CREATE TABLE IF NOT EXISTS command_log (
        seq        {seq},
        tenant     {text} NOT NULL,
        at_us      BIGINT NOT NULL,
        actor      {text} NOT NULL,
        action     {text} NOT NULL,
        resource   {text} NOT NULL,
        reason     {text} NOT NULL,
        detail     {text} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS command_log_tenant ON command_log (tenant, seq)",
    "CREATE INDEX IF NOT EXISTS command_log_resource ON command_log (resource, seq)",
    """CREATE TABLE IF NOT EXISTS service_plans (
        id         {text} PRIMARY KEY,
        tenant     {text} NOT NULL,
        next_us    BIGINT,
        version    INTEGER NOT NULL,
        create_us  BIGINT NOT NULL,
        body       {text} NOT NULL,
        delete_us  BIGINT)""",
    "CREATE INDEX IF NOT EXISTS service_plans_tenant ON service_plans (tenant, id)",
    "CREATE INDEX IF NOT EXISTS service_plans_next ON service_plans (next_us)",
    """CREATE TABLE IF NOT EXISTS service_orders (
        id            {text} PRIMARY KEY,
        tenant        {text} NOT NULL,
        plan_id       {text} NOT NULL,
        target_id     {text} NOT NULL,
        scheduled_us  BIGINT NOT NULL,
        handler       {text} NOT NULL,
        state         {text} NOT NULL,
        version       INTEGER NOT NULL,
        body          {text} NOT NULL,
        last_us       BIGINT,
        last_lon      DOUBLE PRECISION,
        last_lat      DOUBLE PRECISION,
        UNIQUE (plan_id, target_id, scheduled_us))""",
    "CREATE INDEX IF NOT EXISTS service_orders_tenant ON service_orders (tenant, scheduled_us)",
    "CREATE INDEX IF NOT EXISTS service_orders_handler ON service_orders (handler, state)",
    """CREATE TABLE IF NOT EXISTS plans_outbox (
        seq           {seq},
        tenant        {text} NOT NULL,
        type          {text} NOT NULL,
        key           {text} NOT NULL,
        payload       {blob} NOT NULL,
        create_us     BIGINT NOT NULL,
        published_us  BIGINT)""",
    "CREATE INDEX IF NOT EXISTS plans_outbox_unpublished ON plans_outbox (seq) "
    "WHERE published_us IS NULL",
)
# Columns added since the tables were first made: (table, column, type), added to a
# database made before them. A deleted plan is kept (its tasks, orders and log name it)
# with the time it was deleted; reads, lists and the loops skip it.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("emergency_plans", "delete_us", "BIGINT"),
    ("service_plans", "delete_us", "BIGINT"),
)
LIVE = "delete_us IS NULL"

# Every table holds one tenant's rows; the log is only ever appended to.
TENANT_TABLES = (
    "plans_keys",
    "emergency_plans",
    "command_log",
    "service_plans",
    "service_orders",
    "plans_outbox",
)
APPEND_ONLY = ("command_log",)


def in_subtree(column: str, subtree: str) -> tuple[str, tuple[str, str, str]]:
    """ "column is subtree or below it", as a range an index can scan ('/' sorts before '0')."""
    return f"({column} = ? OR ({column} >= ? AND {column} < ?))", (
        subtree,
        subtree + "/",
        subtree + "0",
    )


def order_filters(
    filters: Mapping[str, str], after: tuple[int, str] | None
) -> tuple[list[str], list[object]]:
    """WHERE terms (dialect notation) for an order listing's filters and keyset cursor."""
    terms: list[str] = []
    values: list[object] = []
    for name in ("handler", "plan_id"):
        if filters.get(name):
            terms.append(f"{name} = ?")
            values.append(filters[name])
    if after is not None:
        terms.append("(scheduled_us > ? OR (scheduled_us = ? AND id > ?))")
        values.extend([after[0], after[0], after[1]])
    return terms, values
