"""The identity store in PostgreSQL, for deployments that run more than one replica.

A drop-in for the embedded SQLite store (tests/unit/empower/identity runs every test
on both), sharing its columns and row mapping. Two walls keep tenants apart:

* every query filters by the scope's subtree itself, as on SQLite;
* row-level security (services.kit.rls): tables with a `tenant` column get the
  subtree policy, connections act as the policed app role, and every unit of work
  runs in `rls.scoped_transaction` under the caller's tenant, or the system scope
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
    APP_COLUMNS,
    CREDENTIAL_COLUMNS,
    KEY_COLUMNS,
    KEY_WITH_APP_COLUMNS,
    REFRESH_COLUMNS,
    REPLACE_HASH,
    SIGNING_KEY_COLUMNS,
    TENANT_COLUMNS,
    TENANT_IN_USE,
    UPDATE_APP,
    UPDATE_USER,
    USER_COLUMNS,
    app_values,
    key_values,
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
)
from services.kit import rls
from services.kit.errors import AlreadyExists, FailedPrecondition
from services.kit.tenancy import ALL_TENANTS

_SCHEMA_LOCK = 0x4944_5343  # "IDSC": concurrent schema set-up from several replicas
_SIGNING_KEY_LOCK = 0x4944_534B  # "IDSK": one key rotation at a time

TENANT_TABLES = ("users", "refresh_tokens", "apps", "api_keys")
OTHER_TABLES = ("tenants", "signing_keys")

# Paths and ids compare byte-wise (COLLATE "C") as in SQLite: the subtree range
# [scope + '/', scope + '0') relies on '/' sorting just before '0'.
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
        username        text NOT NULL UNIQUE,
        display_name    text NOT NULL,
        kind            text NOT NULL,
        roles           text NOT NULL,
        password_hash   text,
        disabled        boolean NOT NULL DEFAULT false,
        failed_logins   integer NOT NULL DEFAULT 0,
        locked_until_us bigint,
        create_us       bigint NOT NULL,
        update_us       bigint NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS users_tenant ON users (tenant, id)",
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


def _marks(columns: str) -> str:
    return ", ".join(["%s"] * len(columns.split(",")))


def _subtree(column: str, scope: str) -> tuple[str, list[str]]:
    """`column` is `scope` or below it, as an index range (no limit for the system)."""
    if scope == ALL_TENANTS:
        return "TRUE", []
    return (
        f"({column} = %s OR ({column} >= %s AND {column} < %s))",
        [scope, scope + "/", scope + "0"],
    )


_ACTIVE_KEY = (
    f"SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys WHERE retire_us IS NULL "
    "ORDER BY create_us DESC, kid DESC LIMIT 1"
)


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
    async def _tx(self, scope: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """One transaction limited by row-level security to `scope`."""
        await self._ensure_open()
        async with rls.scoped_transaction(self.pool, scope) as conn:
            yield conn

    # Tenants.

    async def create_tenant(self, tenant: Tenant) -> None:
        async with self._tx(ALL_TENANTS) as conn:
            row = await _fetch_one(
                conn,
                f"INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ({_marks(TENANT_COLUMNS)}) "
                "ON CONFLICT DO NOTHING RETURNING path",
                tenant_values(tenant),
            )
        if row is None:
            raise AlreadyExists(f"tenant {tenant.name!r} already exists")

    async def get_tenant(self, path: str) -> Tenant | None:
        async with self._tx(ALL_TENANTS) as conn:
            row = await _fetch_one(
                conn, f"SELECT {TENANT_COLUMNS} FROM tenants WHERE path = %s", (path,)
            )
        return row_to_tenant(row) if row else None

    async def update_tenant(self, tenant: Tenant) -> Tenant | None:
        async with self._tx(ALL_TENANTS) as conn:
            row = await _fetch_one(
                conn,
                "UPDATE tenants SET display_name = %s, admin_code = %s WHERE path = %s "
                f"RETURNING {TENANT_COLUMNS}",
                (tenant.display_name, tenant.admin_code, tenant.path),
            )
        return row_to_tenant(row) if row else None

    async def delete_tenant(self, path: str) -> bool:
        """The node's row lock keeps a child, user or app from arriving meanwhile
        (their inserts check nothing, so the check and delete share one lock)."""
        async with self._tx(ALL_TENANTS) as conn:
            await conn.execute("LOCK TABLE tenants, users, apps IN SHARE ROW EXCLUSIVE MODE")
            for what, query in TENANT_IN_USE:
                if await _fetch_one(conn, query.format(mark="%s"), (path,)):
                    raise FailedPrecondition(tenant_in_use(path, what))
            cur = await conn.execute("DELETE FROM tenants WHERE path = %s", (path,))
            return cur.rowcount == 1

    async def list_child_tenants(
        self,
        parent: str,
        scope: str,
        ancestors: Sequence[str],
        limit: int,
        after: str | None,
    ) -> list[Tenant]:
        clause, args = _subtree("path", scope)
        query = (
            f"SELECT {TENANT_COLUMNS} FROM tenants WHERE parent = %s "
            f"AND ({clause} OR path = ANY(%s))"
        )
        params: list[object] = [parent, *args, list(ancestors)]
        if after is not None:
            query += " AND path > %s"
            params.append(after)
        query += " ORDER BY path LIMIT %s"
        params.append(limit)
        async with self._tx(scope) as conn:
            rows = await _fetch(conn, query, params)
        return [row_to_tenant(r) for r in rows]

    # Users.

    async def create_user(self, scope: str, user: User, password_hash: str | None) -> None:
        columns = USER_COLUMNS + ", password_hash"
        async with self._tx(scope) as conn:
            # Unique indexes see every row, whatever the policy shows: usernames are
            # unique across tenants.
            row = await _fetch_one(
                conn,
                f"INSERT INTO users ({columns}) VALUES ({_marks(columns)}) "
                "ON CONFLICT DO NOTHING RETURNING id",
                user_values(user, password_hash),
            )
        if row is None:
            raise AlreadyExists(f"the username {user.username!r} is taken")

    async def get_user(self, scope: str, user_id: str) -> User | None:
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            row = await _fetch_one(
                conn,
                f"SELECT {USER_COLUMNS} FROM users WHERE id = %s AND {clause}",
                (user_id, *args),
            )
        return row_to_user(row) if row else None

    @staticmethod
    def _list_sql(
        columns: str, table: str, scope: str, subtree: str, limit: int, after: str | None
    ) -> tuple[str, list[object]]:
        scoped, scope_args = _subtree("tenant", scope)
        below, below_args = _subtree("tenant", subtree)
        query = f"SELECT {columns} FROM {table} WHERE {scoped} AND {below}"
        params: list[object] = [*scope_args, *below_args]
        if after is not None:
            query += " AND id > %s"
            params.append(after)
        return query + " ORDER BY id LIMIT %s", [*params, limit]

    async def list_users(
        self, scope: str, subtree: str, limit: int, after: str | None
    ) -> list[User]:
        query, params = self._list_sql(USER_COLUMNS, "users", scope, subtree, limit, after)
        async with self._tx(scope) as conn:
            rows = await _fetch(conn, query, params)
        return [row_to_user(r) for r in rows]

    async def set_user_disabled(
        self, scope: str, user_id: str, disabled: bool, now: datetime
    ) -> User | None:
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            row = await _fetch_one(
                conn,
                f"UPDATE users SET disabled = %s, update_us = %s WHERE id = %s AND {clause} "
                f"RETURNING {USER_COLUMNS}",
                (disabled, us(now), user_id, *args),
            )
        return row_to_user(row) if row else None

    async def update_user(self, scope: str, user: User) -> User | None:
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            row = await _fetch_one(
                conn,
                f"{UPDATE_USER.format(mark='%s')} AND {clause} RETURNING {USER_COLUMNS}",
                (*update_user_values(user), *args),
            )
        return row_to_user(row) if row else None

    async def delete_user(self, scope: str, user_id: str) -> bool:
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            found = await _fetch_one(
                conn, f"SELECT 1 FROM users WHERE id = %s AND {clause} FOR UPDATE", (user_id, *args)
            )
            if found is None:
                return False
            await conn.execute("DELETE FROM refresh_tokens WHERE user_id = %s", (user_id,))
            cur = await conn.execute("DELETE FROM users WHERE id = %s", (user_id,))
            return cur.rowcount == 1

    async def set_password(
        self, scope: str, user_id: str, password_hash: str, now: datetime
    ) -> User | None:
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            row = await _fetch_one(
                conn,
                f"{REPLACE_HASH.format(mark='%s')} AND {clause} RETURNING {USER_COLUMNS}",
                (password_hash, us(now), user_id, *args),
            )
        return row_to_user(row) if row else None

    async def credentials(self, scope: str, username: str) -> Credentials | None:
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            row = await _fetch_one(
                conn,
                f"SELECT {CREDENTIAL_COLUMNS} FROM users WHERE username = %s AND {clause}",
                (username, *args),
            )
        return row_to_credentials(row) if row else None

    async def record_login(self, scope: str, user_id: str, new_hash: str | None) -> None:
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            await conn.execute(
                "UPDATE users SET "
                f"password_hash = coalesce(%s, password_hash) WHERE id = %s AND {clause}",
                (new_hash, user_id, *args),
            )

    # Refresh tokens.

    async def create_refresh_token(self, token: RefreshToken) -> None:
        async with self._tx(ALL_TENANTS) as conn:
            await conn.execute(
                f"INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) "
                f"VALUES ({_marks(REFRESH_COLUMNS)})",
                refresh_values(token),
            )

    async def get_refresh_token(self, token_id: str) -> RefreshToken | None:
        async with self._tx(ALL_TENANTS) as conn:
            row = await _fetch_one(
                conn, f"SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE id = %s", (token_id,)
            )
        return row_to_refresh(row) if row else None

    async def rotate_refresh_token(
        self, used_id: str, now: datetime, successor: RefreshToken
    ) -> bool:
        """The UPDATE's row lock makes a concurrent use wait, re-read and find it used."""
        async with self._tx(ALL_TENANTS) as conn:
            cur = await conn.execute(
                "UPDATE refresh_tokens SET use_us = %s "
                "WHERE id = %s AND use_us IS NULL AND revoke_us IS NULL",
                (us(now), used_id),
            )
            if cur.rowcount != 1:
                return False
            await conn.execute(
                f"INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) "
                f"VALUES ({_marks(REFRESH_COLUMNS)})",
                refresh_values(successor),
            )
        return True

    async def revoke_refresh_family(self, family_id: str, now: datetime) -> None:
        async with self._tx(ALL_TENANTS) as conn:
            await conn.execute(
                "UPDATE refresh_tokens SET revoke_us = %s "
                "WHERE family_id = %s AND revoke_us IS NULL",
                (us(now), family_id),
            )

    async def revoke_user_refresh_tokens(self, user_id: str, now: datetime) -> None:
        async with self._tx(ALL_TENANTS) as conn:
            await conn.execute(
                "UPDATE refresh_tokens SET revoke_us = %s WHERE user_id = %s AND revoke_us IS NULL",
                (us(now), user_id),
            )

    # Signing keys.

    async def active_signing_key(self) -> SigningKey | None:
        async with self._tx(ALL_TENANTS) as conn:
            row = await _fetch_one(conn, _ACTIVE_KEY)
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
            row = await _fetch_one(conn, _ACTIVE_KEY)
            if row is not None and stale_before is not None and row["create_us"] > us(stale_before):
                return row_to_signing_key(row)
            await conn.execute(
                "UPDATE signing_keys SET retire_us = %s WHERE retire_us IS NULL", (us(now),)
            )
            await conn.execute(
                f"INSERT INTO signing_keys ({SIGNING_KEY_COLUMNS}) "
                f"VALUES ({_marks(SIGNING_KEY_COLUMNS)})",
                signing_key_values(candidate),
            )
            await conn.execute(
                "DELETE FROM signing_keys WHERE retire_us < %s", (us(forget_before),)
            )
        return candidate

    async def signing_keys(self, retired_after: datetime) -> list[SigningKey]:
        async with self._tx(ALL_TENANTS) as conn:
            rows = await _fetch(
                conn,
                f"SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys "
                "WHERE retire_us IS NULL OR retire_us > %s ORDER BY create_us DESC, kid DESC",
                (us(retired_after),),
            )
        return [row_to_signing_key(r) for r in rows]

    # Apps and API keys.

    async def create_app(self, scope: str, app: App, key: ApiKey) -> None:
        async with self._tx(scope) as conn:
            await conn.execute(
                f"INSERT INTO apps ({APP_COLUMNS}) VALUES ({_marks(APP_COLUMNS)})",
                app_values(app),
            )
            await conn.execute(
                f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ({_marks(KEY_COLUMNS)})",
                key_values(key),
            )

    async def get_app(self, scope: str, app_id: str) -> App | None:
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            row = await _fetch_one(
                conn,
                f"SELECT {APP_COLUMNS} FROM apps WHERE id = %s AND {clause}",
                (app_id, *args),
            )
        return row_to_app(row) if row else None

    async def list_apps(self, scope: str, subtree: str, limit: int, after: str | None) -> list[App]:
        query, params = self._list_sql(APP_COLUMNS, "apps", scope, subtree, limit, after)
        async with self._tx(scope) as conn:
            rows = await _fetch(conn, query, params)
        return [row_to_app(r) for r in rows]

    async def update_app(self, scope: str, app: App) -> App | None:
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            row = await _fetch_one(
                conn,
                f"{UPDATE_APP.format(mark='%s')} AND {clause} RETURNING {APP_COLUMNS}",
                (*update_app_values(app), *args),
            )
        return row_to_app(row) if row else None

    async def delete_app(self, scope: str, app_id: str) -> bool:
        """The app's row lock keeps a key from being added while its keys go."""
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            found = await _fetch_one(
                conn, f"SELECT 1 FROM apps WHERE id = %s AND {clause} FOR UPDATE", (app_id, *args)
            )
            if found is None:
                return False
            await conn.execute("DELETE FROM api_keys WHERE app_id = %s", (app_id,))
            cur = await conn.execute("DELETE FROM apps WHERE id = %s", (app_id,))
            return cur.rowcount == 1

    async def add_api_key(self, scope: str, key: ApiKey, max_active: int) -> bool:
        """The app's row lock makes two adds count one after the other."""
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            app = await _fetch_one(
                conn,
                f"SELECT id FROM apps WHERE id = %s AND {clause} FOR UPDATE",
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
            await conn.execute(
                f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ({_marks(KEY_COLUMNS)})",
                key_values(key),
            )
        return True

    async def list_api_keys(self, scope: str, app_id: str) -> list[ApiKey]:
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            rows = await _fetch(
                conn,
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE app_id = %s AND {clause} "
                "ORDER BY create_us, id",
                (app_id, *args),
            )
        return [row_to_key(r) for r in rows]

    async def revoke_api_key(
        self, scope: str, app_id: str, key_id: str, now: datetime
    ) -> ApiKey | None:
        clause, args = _subtree("tenant", scope)
        async with self._tx(scope) as conn:
            row = await _fetch_one(
                conn,
                "UPDATE api_keys SET revoke_us = coalesce(revoke_us, %s) "
                f"WHERE id = %s AND app_id = %s AND {clause} RETURNING {KEY_COLUMNS}",
                (us(now), key_id, app_id, *args),
            )
        return row_to_key(row) if row else None

    async def api_key(self, scope: str, key_id: str) -> tuple[ApiKey, App] | None:
        clause, args = _subtree("k.tenant", scope)
        async with self._tx(scope) as conn:
            row = await _fetch_one(
                conn,
                f"SELECT {KEY_WITH_APP_COLUMNS} FROM api_keys k JOIN apps a ON a.id = k.app_id "
                f"WHERE k.id = %s AND {clause}",
                (key_id, *args),
            )
        return (row_to_key(row, "k_"), row_to_app(row)) if row else None

    async def close(self) -> None:
        await self.pool.close()
