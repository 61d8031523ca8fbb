"""The identity store in PostgreSQL, for deployments that run more than one replica.

A drop-in for the embedded SQLite store (tests/unit/empower/identity runs every test
on both), sharing its columns and row mapping. Two walls keep tenants apart:

* every query filters by the subtree itself, as on SQLite;
* row-level security (services.kit.rls): tables with a `tenant` column get the
  subtree policy, connections act as the policed app role, and every unit of work
  runs in `rls.scoped_transaction` under the caller's tenant, or the `ALL_TENANTS` subtree
  for work done for the platform (login by username, refresh tokens, API key
  lookups by the gateway, signing keys).

The tenant tree itself has no `tenant` column and no policy: a node is visible from
above and from below (a village sees its town), which a subtree policy cannot
express, so the domain decides and the queries filter.

What SQLite's single writer gives for free is made explicit here: a failed login is
counted in one UPDATE, a refresh token is used by a conditional UPDATE whose row
lock makes a racing second use see it used, key rotations take an advisory lock,
and adding an API key locks its app's row while counting the app's active keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.empower.domain.model import (
    ApiKey,
    App,
    Credentials,
    RefreshToken,
    SigningKey,
    Tenant,
    User,
)
from services.empower.store.identity_rows import (
    ACTIVE_KEY,
    APP_COLUMNS,
    DELETE_APP,
    DELETE_APP_KEYS,
    DELETE_TENANT,
    DELETE_USER,
    DELETE_USER_TOKENS,
    FORGET_KEYS,
    GET_APP,
    GET_REFRESH,
    GET_TENANT,
    GET_USER,
    INSERT_APP,
    INSERT_KEY,
    INSERT_REFRESH,
    INSERT_SIGNING_KEY,
    INSERT_TENANT,
    INSERT_USER,
    KEY_WITH_APP,
    LIST_KEYS,
    RECORD_LOGIN,
    REPLACE_HASH,
    RETIRE_KEYS,
    REVOKE_FAMILY,
    REVOKE_KEY,
    REVOKE_USER_TOKENS,
    SET_USER_DISABLED,
    SIGNING_KEYS,
    TENANT_COLUMNS,
    TENANT_IN_USE,
    UPDATE_APP,
    UPDATE_TENANT,
    UPDATE_USER,
    USE_REFRESH,
    USER_COLUMNS,
    app_values,
    credentials_query,
    in_subtree,
    key_values,
    list_query,
    refresh_values,
    row_to_app,
    row_to_credentials,
    row_to_key,
    row_to_refresh,
    row_to_signing_key,
    row_to_tenant,
    row_to_user,
    signing_key_values,
    tenant_in_use,
    tenant_values,
    update_app_values,
    update_user_values,
    us,
    user_values,
    username_taken,
)
from services.kit import rls
from services.kit.errors import AlreadyExists, FailedPrecondition
from services.kit.sqldialect import POSTGRES
from services.kit.tenancy import ALL_TENANTS

_SCHEMA_LOCK = 0x4944_5343  # "IDSC": concurrent schema set-up from several replicas
_SIGNING_KEY_LOCK = 0x4944_534B  # "IDSK": one key rotation at a time

TENANT_TABLES = ("users", "refresh_tokens", "apps", "api_keys")
OTHER_TABLES = ("tenants", "signing_keys")

# Paths and ids compare byte-wise (COLLATE "C") as in SQLite: the subtree range
# [subtree + '/', subtree + '0') relies on '/' sorting just before '0'.
_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS tenants (
        path          text COLLATE "C" PRIMARY KEY,
        parent        text COLLATE "C" NOT NULL,
        display_name  text NOT NULL,
        level         text NOT NULL,
        admin_code    text NOT NULL,
        create_us     bigint NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS tenants_parent ON tenants (parent, path)",
    """CREATE TABLE IF NOT EXISTS users (
        id              text COLLATE "C" PRIMARY KEY,
        tenant          text COLLATE "C" NOT NULL,
        username        text NOT NULL,
        display_name    text NOT NULL,
        kind            text NOT NULL,
        roles           text NOT NULL,
        password_hash   text,
        disabled        boolean NOT NULL DEFAULT false,
        create_us       bigint NOT NULL,
        update_us       bigint NOT NULL,
        password_change_required boolean NOT NULL DEFAULT false)""",
    "CREATE INDEX IF NOT EXISTS users_tenant ON users (tenant, id)",
    # A username is unique at its tenant node, not across the platform: a name taken
    # elsewhere must not be revealed to whoever creates a user. An older database
    # loses its platform-wide constraint and gains the column here.
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS "
    "password_change_required boolean NOT NULL DEFAULT false",
    "ALTER TABLE users DROP CONSTRAINT IF EXISTS users_username_key",
    # Columns of the first version that nothing read (sign-in is throttled, never locked).
    "ALTER TABLE users DROP COLUMN IF EXISTS failed_logins, DROP COLUMN IF EXISTS locked_until_us",
    "CREATE UNIQUE INDEX IF NOT EXISTS users_tenant_username ON users (tenant, username)",
    "CREATE INDEX IF NOT EXISTS users_username ON users (username, id)",
    """CREATE TABLE IF NOT EXISTS refresh_tokens (
        id            text COLLATE "C" PRIMARY KEY,
        family_id     text COLLATE "C" NOT NULL,
        user_id       text COLLATE "C" NOT NULL REFERENCES users (id),
        tenant        text COLLATE "C" NOT NULL,
        token_hash    text NOT NULL,
        create_us     bigint NOT NULL,
        expire_us     bigint NOT NULL,
        use_us        bigint,
        revoke_us     bigint)""",
    "CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id)",
    "CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens (user_id)",
    """CREATE TABLE IF NOT EXISTS signing_keys (
        kid           text COLLATE "C" PRIMARY KEY,
        private_pem   text NOT NULL,
        public_x      text NOT NULL,
        create_us     bigint NOT NULL,
        retire_us     bigint)""",
    """CREATE TABLE IF NOT EXISTS apps (
        id                text COLLATE "C" PRIMARY KEY,
        tenant            text COLLATE "C" NOT NULL,
        display_name      text NOT NULL,
        scopes            text NOT NULL,
        quota_per_minute  integer NOT NULL,
        create_us         bigint NOT NULL,
        update_us         bigint NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS apps_tenant ON apps (tenant, id)",
    """CREATE TABLE IF NOT EXISTS api_keys (
        id            text COLLATE "C" PRIMARY KEY,
        app_id        text COLLATE "C" NOT NULL REFERENCES apps (id),
        tenant        text COLLATE "C" NOT NULL,
        secret_hash   text NOT NULL,
        create_us     bigint NOT NULL,
        revoke_us     bigint)""",
    "CREATE INDEX IF NOT EXISTS api_keys_app ON api_keys (app_id, create_us)",
)

Row = dict[str, Any]


def _sql(statement: str, clause: str = "") -> str:
    """A shared statement (identity_rows) for psycopg, with the subtree clause in place."""
    return POSTGRES.render(statement.format(subtree=clause) if clause else statement)


async def _fetch(
    conn: psycopg.AsyncConnection[Any], query: str, params: Sequence[object] = ()
) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def _fetch_one(
    conn: psycopg.AsyncConnection[Any], query: str, params: Sequence[object] = ()
) -> Row | None:
    rows = await _fetch(conn, query, params)
    return rows[0] if rows else None


class PostgresIdentityStore:
    """Tenants, users, tokens' state, signing keys and apps in one PostgreSQL schema.

    Tables live on the DSN's search_path. Build it with
    `await PostgresIdentityStore.open(dsn)`, or construct it directly: the pool and
    schema are then set up on first use. Signing keys' private halves are stored as
    PEM in `signing_keys`; restrict who can read that table's backups.
    """

    def __init__(self, dsn: str, *, min_connections: int = 1, max_connections: int = 10) -> None:
        self.dsn = dsn
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=min_connections,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=rls.use_app_role,
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="grassroots-identity",
        )
        self._opened = False
        self._open_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, dsn: str, *, min_connections: int = 1, max_connections: int = 10
    ) -> PostgresIdentityStore:
        """A store with its schema and policies in place and its pool connected."""
        store = cls(dsn, min_connections=min_connections, max_connections=max_connections)
        await store._ensure_open()
        return store

    async def _ensure_open(self) -> None:
        if self._opened:
            return
        async with self._open_lock:
            if self._opened:
                return
            # As the schema owner, before any connection switches to the app role.
            connect = psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            async with await connect as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    await conn.execute(statement)
                await rls.install(conn, tenant_tables=TENANT_TABLES, other_tables=OTHER_TABLES)
                # rls.install grants the schema `public`; the tables may live in another
                # schema of the search_path (one per test, one per deployment).
                cur = await conn.execute("SELECT current_schema()")
                row = await cur.fetchone()
                if row and row[0] and row[0] != "public":
                    await conn.execute(
                        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                            sql.Identifier(row[0]), sql.Identifier(rls.APP_ROLE)
                        )
                    )
            await self.pool.open(wait=True)
            self._opened = True

    @asynccontextmanager
    async def _tx(self, subtree: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """One transaction limited by row-level security to `subtree`."""
        await self._ensure_open()
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            yield conn

    # Tenants.

    async def create_tenant(self, tenant: Tenant) -> None:
        async with self._tx(ALL_TENANTS) as conn:
            row = await _fetch_one(
                conn,
                _sql(INSERT_TENANT) + " ON CONFLICT DO NOTHING RETURNING path",
                tenant_values(tenant),
            )
        if row is None:
            raise AlreadyExists(f"tenant {tenant.name!r} already exists")

    async def get_tenant(self, path: str) -> Tenant | None:
        async with self._tx(ALL_TENANTS) as conn:
            row = await _fetch_one(conn, _sql(GET_TENANT), (path,))
        return row_to_tenant(row) if row else None

    async def update_tenant(self, tenant: Tenant) -> Tenant | None:
        async with self._tx(ALL_TENANTS) as conn:
            row = await _fetch_one(
                conn, _sql(UPDATE_TENANT), (tenant.display_name, tenant.admin_code, tenant.path)
            )
        return row_to_tenant(row) if row else None

    async def delete_tenant(self, path: str) -> bool:
        """The node's row lock keeps a child, user or app from arriving meanwhile
        (their inserts check nothing, so the check and delete share one lock)."""
        async with self._tx(ALL_TENANTS) as conn:
            await conn.execute("LOCK TABLE tenants, users, apps IN SHARE ROW EXCLUSIVE MODE")
            for what, query in TENANT_IN_USE:
                if await _fetch_one(conn, _sql(query), (path,)):
                    raise FailedPrecondition(tenant_in_use(path, what))
            cur = await conn.execute(_sql(DELETE_TENANT), (path,))
            return cur.rowcount == 1

    async def list_child_tenants(
        self,
        parent: str,
        subtree: str,
        ancestors: Sequence[str],
        limit: int,
        after: str | None,
    ) -> list[Tenant]:
        clause, args = in_subtree("path", subtree)
        query = (
            f"SELECT {TENANT_COLUMNS} FROM tenants WHERE parent = %s "
            f"AND ({_sql(clause)} OR path = ANY(%s))"
        )
        params: list[object] = [parent, *args, list(ancestors)]
        if after is not None:
            query += " AND path > %s"
            params.append(after)
        query += " ORDER BY path LIMIT %s"
        params.append(limit)
        async with self._tx(subtree) as conn:
            rows = await _fetch(conn, query, params)
        return [row_to_tenant(r) for r in rows]

    # Users.

    async def create_user(self, subtree: str, user: User, password_hash: str | None) -> None:
        async with self._tx(subtree) as conn:
            # Unique indexes see every row, whatever the policy shows: a username is
            # unique at its node, which the caller can see anyway.
            row = await _fetch_one(
                conn,
                _sql(INSERT_USER) + " ON CONFLICT DO NOTHING RETURNING id",
                user_values(user, password_hash),
            )
        if row is None:
            raise AlreadyExists(username_taken(user))

    async def get_user(self, subtree: str, user_id: str) -> User | None:
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            row = await _fetch_one(conn, _sql(GET_USER, clause), (user_id, *args))
        return row_to_user(row) if row else None

    async def list_users(
        self, subtree: str, root: str, limit: int, after: str | None
    ) -> list[User]:
        query, params = list_query(USER_COLUMNS, "users", subtree, root, limit, after)
        async with self._tx(subtree) as conn:
            rows = await _fetch(conn, _sql(query), params)
        return [row_to_user(r) for r in rows]

    async def set_user_disabled(
        self, subtree: str, user_id: str, disabled: bool, now: datetime
    ) -> User | None:
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            row = await _fetch_one(
                conn, _sql(SET_USER_DISABLED, clause), (disabled, us(now), user_id, *args)
            )
        return row_to_user(row) if row else None

    async def update_user(self, subtree: str, user: User) -> User | None:
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            row = await _fetch_one(
                conn, _sql(UPDATE_USER, clause), (*update_user_values(user), *args)
            )
        return row_to_user(row) if row else None

    async def delete_user(self, subtree: str, user_id: str) -> bool:
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            found = await _fetch_one(
                conn,
                _sql(f"SELECT 1 FROM users WHERE id = ? AND {clause} FOR UPDATE"),
                (user_id, *args),
            )
            if found is None:
                return False
            await conn.execute(_sql(DELETE_USER_TOKENS), (user_id,))
            cur = await conn.execute(_sql(DELETE_USER), (user_id,))
            return cur.rowcount == 1

    async def set_password(
        self,
        subtree: str,
        user_id: str,
        password_hash: str,
        now: datetime,
        *,
        change_required: bool = False,
    ) -> User | None:
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            row = await _fetch_one(
                conn,
                _sql(REPLACE_HASH, clause),
                (password_hash, change_required, us(now), user_id, *args),
            )
        return row_to_user(row) if row else None

    async def credentials(
        self, subtree: str, username: str, tenant: str | None = None
    ) -> list[Credentials]:
        query, params = credentials_query(subtree, username, tenant)
        async with self._tx(subtree) as conn:
            rows = await _fetch(conn, _sql(query), params)
        return [row_to_credentials(r) for r in rows]

    async def record_login(self, subtree: str, user_id: str, new_hash: str | None) -> None:
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            await conn.execute(_sql(RECORD_LOGIN, clause), (new_hash, user_id, *args))

    # Refresh tokens.

    async def create_refresh_token(self, token: RefreshToken) -> None:
        async with self._tx(ALL_TENANTS) as conn:
            await conn.execute(_sql(INSERT_REFRESH), refresh_values(token))

    async def get_refresh_token(self, token_id: str) -> RefreshToken | None:
        async with self._tx(ALL_TENANTS) as conn:
            row = await _fetch_one(conn, _sql(GET_REFRESH), (token_id,))
        return row_to_refresh(row) if row else None

    async def rotate_refresh_token(
        self, used_id: str, now: datetime, successor: RefreshToken
    ) -> bool:
        """The UPDATE's row lock makes a concurrent use wait, re-read and find it used."""
        async with self._tx(ALL_TENANTS) as conn:
            cur = await conn.execute(_sql(USE_REFRESH), (us(now), used_id))
            if cur.rowcount != 1:
                return False
            await conn.execute(_sql(INSERT_REFRESH), refresh_values(successor))
        return True

    async def revoke_refresh_family(self, family_id: str, now: datetime) -> None:
        async with self._tx(ALL_TENANTS) as conn:
            await conn.execute(_sql(REVOKE_FAMILY), (us(now), family_id))

    async def revoke_user_refresh_tokens(self, user_id: str, now: datetime) -> None:
        async with self._tx(ALL_TENANTS) as conn:
            await conn.execute(_sql(REVOKE_USER_TOKENS), (us(now), user_id))

    # Signing keys.

    async def active_signing_key(self) -> SigningKey | None:
        async with self._tx(ALL_TENANTS) as conn:
            row = await _fetch_one(conn, ACTIVE_KEY)
        return row_to_signing_key(row) if row else None

    async def rotate_signing_key(
        self,
        candidate: SigningKey,
        now: datetime,
        *,
        stale_before: datetime | None,
        forget_before: datetime,
    ) -> SigningKey:
        """Under an advisory lock, so replicas rotating at once make one new key."""
        async with self._tx(ALL_TENANTS) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SIGNING_KEY_LOCK,))
            row = await _fetch_one(conn, ACTIVE_KEY)
            if row is not None and stale_before is not None and row["create_us"] > us(stale_before):
                return row_to_signing_key(row)
            await conn.execute(_sql(RETIRE_KEYS), (us(now),))
            await conn.execute(_sql(INSERT_SIGNING_KEY), signing_key_values(candidate))
            await conn.execute(_sql(FORGET_KEYS), (us(forget_before),))
        return candidate

    async def signing_keys(self, retired_after: datetime) -> list[SigningKey]:
        async with self._tx(ALL_TENANTS) as conn:
            rows = await _fetch(conn, _sql(SIGNING_KEYS), (us(retired_after),))
        return [row_to_signing_key(r) for r in rows]

    # Apps and API keys.

    async def create_app(self, subtree: str, app: App, key: ApiKey) -> None:
        async with self._tx(subtree) as conn:
            await conn.execute(_sql(INSERT_APP), app_values(app))
            await conn.execute(_sql(INSERT_KEY), key_values(key))

    async def get_app(self, subtree: str, app_id: str) -> App | None:
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            row = await _fetch_one(conn, _sql(GET_APP, clause), (app_id, *args))
        return row_to_app(row) if row else None

    async def list_apps(self, subtree: str, root: str, limit: int, after: str | None) -> list[App]:
        query, params = list_query(APP_COLUMNS, "apps", subtree, root, limit, after)
        async with self._tx(subtree) as conn:
            rows = await _fetch(conn, _sql(query), params)
        return [row_to_app(r) for r in rows]

    async def update_app(self, subtree: str, app: App) -> App | None:
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            row = await _fetch_one(conn, _sql(UPDATE_APP, clause), (*update_app_values(app), *args))
        return row_to_app(row) if row else None

    async def delete_app(self, subtree: str, app_id: str) -> bool:
        """The app's row lock keeps a key from being added while its keys go."""
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            found = await _fetch_one(
                conn,
                _sql(f"SELECT 1 FROM apps WHERE id = ? AND {clause} FOR UPDATE"),
                (app_id, *args),
            )
            if found is None:
                return False
            await conn.execute(_sql(DELETE_APP_KEYS), (app_id,))
            cur = await conn.execute(_sql(DELETE_APP), (app_id,))
            return cur.rowcount == 1

    async def add_api_key(self, subtree: str, key: ApiKey, max_active: int) -> bool:
        """The app's row lock makes two adds count one after the other."""
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            app = await _fetch_one(
                conn,
                _sql(f"SELECT id FROM apps WHERE id = ? AND {clause} FOR UPDATE"),
                (key.app_id, *args),
            )
            if app is None:
                return False
            counted = await _fetch_one(
                conn,
                "SELECT count(*) AS active FROM api_keys WHERE app_id = %s AND revoke_us IS NULL",
                (key.app_id,),
            )
            if counted is not None and counted["active"] >= max_active:
                return False
            await conn.execute(_sql(INSERT_KEY), key_values(key))
        return True

    async def list_api_keys(self, subtree: str, app_id: str) -> list[ApiKey]:
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            rows = await _fetch(conn, _sql(LIST_KEYS, clause), (app_id, *args))
        return [row_to_key(r) for r in rows]

    async def revoke_api_key(
        self, subtree: str, app_id: str, key_id: str, now: datetime
    ) -> ApiKey | None:
        clause, args = in_subtree("tenant", subtree)
        async with self._tx(subtree) as conn:
            row = await _fetch_one(conn, _sql(REVOKE_KEY, clause), (us(now), key_id, app_id, *args))
        return row_to_key(row) if row else None

    async def api_key(self, subtree: str, key_id: str) -> tuple[ApiKey, App] | None:
        clause, args = in_subtree("k.tenant", subtree)
        async with self._tx(subtree) as conn:
            row = await _fetch_one(conn, _sql(KEY_WITH_APP, clause), (key_id, *args))
        return (row_to_key(row, "k_"), row_to_app(row)) if row else None

    async def close(self) -> None:
        await self.pool.close()
