"""The embedded identity store: one SQLite file in WAL mode.

Every statement runs on the database's single thread, so a read-check-write inside
one `transaction` (a failed-login count, a refresh-token rotation, a key rotation)
cannot interleave with another. Times are microseconds since the epoch, as in the
PostgreSQL store, which shares this module's row mapping.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

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
from services.kit.errors import AlreadyExists, FailedPrecondition
from services.kit.sqlite import SqliteDatabase, transaction
from services.kit.tenancy import ALL_TENANTS

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    path          TEXT PRIMARY KEY,
    parent        TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    level         TEXT NOT NULL,
    admin_code    TEXT NOT NULL,
    create_us     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tenants_parent ON tenants (parent, path);
CREATE TABLE IF NOT EXISTS users (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    username        TEXT NOT NULL UNIQUE,
    display_name    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    roles           TEXT NOT NULL,
    password_hash   TEXT,
    disabled        INTEGER NOT NULL DEFAULT 0,
    failed_logins   INTEGER NOT NULL DEFAULT 0,  -- unused: sign-in is throttled, not locked
    locked_until_us INTEGER,                     -- unused, as above
    create_us       INTEGER NOT NULL,
    update_us       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS users_tenant ON users (tenant, id);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    id            TEXT PRIMARY KEY,
    family_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id),
    tenant        TEXT NOT NULL,
    token_hash    TEXT NOT NULL,
    create_us     INTEGER NOT NULL,
    expire_us     INTEGER NOT NULL,
    use_us        INTEGER,
    revoke_us     INTEGER
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens (user_id);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid           TEXT PRIMARY KEY,
    private_pem   TEXT NOT NULL,
    public_x      TEXT NOT NULL,
    create_us     INTEGER NOT NULL,
    retire_us     INTEGER
);
CREATE TABLE IF NOT EXISTS apps (
    id                TEXT PRIMARY KEY,
    tenant            TEXT NOT NULL,
    display_name      TEXT NOT NULL,
    scopes            TEXT NOT NULL,
    quota_per_minute  INTEGER NOT NULL,
    create_us         INTEGER NOT NULL,
    update_us         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS apps_tenant ON apps (tenant, id);
CREATE TABLE IF NOT EXISTS api_keys (
    id            TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL REFERENCES apps (id),
    tenant        TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    create_us     INTEGER NOT NULL,
    revoke_us     INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_app ON api_keys (app_id, create_us);
"""


ACTIVE_KEY = (
    f"SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys WHERE retire_us IS NULL "
    "ORDER BY create_us DESC, kid DESC LIMIT 1"
)


def _marks(columns: str) -> str:
    return ", ".join("?" * len(columns.split(",")))


def subtree_clause(column: str, scope: str) -> tuple[str, list[str]]:
    """SQL for "column is scope or below it" as an index range; no limit for the system.

    '/' sorts just before '0', so every descendant path lies in [scope + '/', scope + '0').
    """
    if scope == ALL_TENANTS:
        return "1 = 1", []
    return f"({column} = ? OR ({column} >= ? AND {column} < ?))", [scope, scope + "/", scope + "0"]


class SqliteIdentityStore:
    """Tenants, users, tokens' state, signing keys and apps, in one SQLite file."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(lambda conn: conn.executescript(SCHEMA))

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.db.run(fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.db.run(lambda conn: transaction(conn, fn))

    # Tenants.

    async def create_tenant(self, tenant: Tenant) -> None:
        def write(conn: sqlite3.Connection) -> None:
            taken = conn.execute("SELECT 1 FROM tenants WHERE path = ?", (tenant.path,))
            if taken.fetchone():
                raise AlreadyExists(f"tenant {tenant.name!r} already exists")
            conn.execute(
                f"INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ({_marks(TENANT_COLUMNS)})",
                tenant_values(tenant),
            )

        await self._write(write)

    async def get_tenant(self, path: str) -> Tenant | None:
        def read(conn: sqlite3.Connection) -> Tenant | None:
            row = conn.execute(
                f"SELECT {TENANT_COLUMNS} FROM tenants WHERE path = ?", (path,)
            ).fetchone()
            return row_to_tenant(row) if row else None

        return await self._read(read)

    async def update_tenant(self, tenant: Tenant) -> Tenant | None:
        def write(conn: sqlite3.Connection) -> Tenant | None:
            row = conn.execute(
                "UPDATE tenants SET display_name = ?, admin_code = ? WHERE path = ? "
                f"RETURNING {TENANT_COLUMNS}",
                (tenant.display_name, tenant.admin_code, tenant.path),
            ).fetchone()
            return row_to_tenant(row) if row else None

        return await self._write(write)

    async def delete_tenant(self, path: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            for what, query in TENANT_IN_USE:
                if conn.execute(query.format(mark="?"), (path,)).fetchone():
                    raise FailedPrecondition(tenant_in_use(path, what))
            return conn.execute("DELETE FROM tenants WHERE path = ?", (path,)).rowcount == 1

        return await self._write(write)

    async def list_child_tenants(
        self,
        parent: str,
        scope: str,
        ancestors: Sequence[str],
        limit: int,
        after: str | None,
    ) -> list[Tenant]:
        clause, args = subtree_clause("path", scope)
        marks = ", ".join("?" * len(ancestors)) or "NULL"
        sql = (
            f"SELECT {TENANT_COLUMNS} FROM tenants WHERE parent = ? "
            f"AND ({clause} OR path IN ({marks}))"
        )
        params: list[object] = [parent, *args, *ancestors]
        if after is not None:
            sql += " AND path > ?"
            params.append(after)
        sql += " ORDER BY path LIMIT ?"
        params.append(limit)
        return await self._read(lambda conn: [row_to_tenant(r) for r in conn.execute(sql, params)])

    # Users.

    async def create_user(self, scope: str, user: User, password_hash: str | None) -> None:
        def write(conn: sqlite3.Connection) -> None:
            taken = conn.execute("SELECT 1 FROM users WHERE username = ?", (user.username,))
            if taken.fetchone():
                raise AlreadyExists(f"the username {user.username!r} is taken")
            columns = USER_COLUMNS + ", password_hash"
            conn.execute(
                f"INSERT INTO users ({columns}) VALUES ({_marks(columns)})",
                user_values(user, password_hash),
            )

        await self._write(write)

    async def get_user(self, scope: str, user_id: str) -> User | None:
        clause, args = subtree_clause("tenant", scope)

        def read(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                f"SELECT {USER_COLUMNS} FROM users WHERE id = ? AND {clause}", (user_id, *args)
            ).fetchone()
            return row_to_user(row) if row else None

        return await self._read(read)

    async def list_users(
        self, scope: str, subtree: str, limit: int, after: str | None
    ) -> list[User]:
        sql, params = self._list_sql(USER_COLUMNS, "users", scope, subtree, limit, after)
        return await self._read(lambda conn: [row_to_user(r) for r in conn.execute(sql, params)])

    @staticmethod
    def _list_sql(
        columns: str, table: str, scope: str, subtree: str, limit: int, after: str | None
    ) -> tuple[str, list[object]]:
        scoped, scope_args = subtree_clause("tenant", scope)
        below, below_args = subtree_clause("tenant", subtree)
        sql = f"SELECT {columns} FROM {table} WHERE {scoped} AND {below}"
        params: list[object] = [*scope_args, *below_args]
        if after is not None:
            sql += " AND id > ?"
            params.append(after)
        return sql + " ORDER BY id LIMIT ?", [*params, limit]

    async def set_user_disabled(
        self, scope: str, user_id: str, disabled: bool, now: datetime
    ) -> User | None:
        clause, args = subtree_clause("tenant", scope)

        def write(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                f"UPDATE users SET disabled = ?, update_us = ? WHERE id = ? AND {clause} "
                f"RETURNING {USER_COLUMNS}",
                (disabled, us(now), user_id, *args),
            ).fetchone()
            return row_to_user(row) if row else None

        return await self._write(write)

    async def update_user(self, scope: str, user: User) -> User | None:
        clause, args = subtree_clause("tenant", scope)

        def write(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                f"{UPDATE_USER.format(mark='?')} AND {clause} RETURNING {USER_COLUMNS}",
                (*update_user_values(user), *args),
            ).fetchone()
            return row_to_user(row) if row else None

        return await self._write(write)

    async def delete_user(self, scope: str, user_id: str) -> bool:
        clause, args = subtree_clause("tenant", scope)

        def write(conn: sqlite3.Connection) -> bool:
            found = conn.execute(
                f"SELECT 1 FROM users WHERE id = ? AND {clause}", (user_id, *args)
            ).fetchone()
            if not found:
                return False
            conn.execute("DELETE FROM refresh_tokens WHERE user_id = ?", (user_id,))
            return conn.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount == 1

        return await self._write(write)

    async def set_password(
        self, scope: str, user_id: str, password_hash: str, now: datetime
    ) -> User | None:
        clause, args = subtree_clause("tenant", scope)

        def write(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                f"{REPLACE_HASH.format(mark='?')} AND {clause} RETURNING {USER_COLUMNS}",
                (password_hash, us(now), user_id, *args),
            ).fetchone()
            return row_to_user(row) if row else None

        return await self._write(write)

    async def credentials(self, scope: str, username: str) -> Credentials | None:
        clause, args = subtree_clause("tenant", scope)

        def read(conn: sqlite3.Connection) -> Credentials | None:
            row = conn.execute(
                f"SELECT {CREDENTIAL_COLUMNS} FROM users WHERE username = ? AND {clause}",
                (username, *args),
            ).fetchone()
            return row_to_credentials(row) if row else None

        return await self._read(read)

    async def record_login(self, scope: str, user_id: str, new_hash: str | None) -> None:
        clause, args = subtree_clause("tenant", scope)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE users SET "
                f"password_hash = coalesce(?, password_hash) WHERE id = ? AND {clause}",
                (new_hash, user_id, *args),
            )

        await self._write(write)

    # Refresh tokens.

    async def create_refresh_token(self, token: RefreshToken) -> None:
        await self._write(
            lambda conn: conn.execute(
                f"INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) "
                f"VALUES ({_marks(REFRESH_COLUMNS)})",
                refresh_values(token),
            )
        )

    async def get_refresh_token(self, token_id: str) -> RefreshToken | None:
        def read(conn: sqlite3.Connection) -> RefreshToken | None:
            row = conn.execute(
                f"SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE id = ?", (token_id,)
            ).fetchone()
            return row_to_refresh(row) if row else None

        return await self._read(read)

    async def rotate_refresh_token(
        self, used_id: str, now: datetime, successor: RefreshToken
    ) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE refresh_tokens SET use_us = ? "
                "WHERE id = ? AND use_us IS NULL AND revoke_us IS NULL",
                (us(now), used_id),
            )
            if cur.rowcount != 1:
                return False
            conn.execute(
                f"INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) "
                f"VALUES ({_marks(REFRESH_COLUMNS)})",
                refresh_values(successor),
            )
            return True

        return await self._write(write)

    async def revoke_refresh_family(self, family_id: str, now: datetime) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE refresh_tokens SET revoke_us = ? WHERE family_id = ? AND revoke_us IS NULL",
                (us(now), family_id),
            )
        )

    async def revoke_user_refresh_tokens(self, user_id: str, now: datetime) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE refresh_tokens SET revoke_us = ? WHERE user_id = ? AND revoke_us IS NULL",
                (us(now), user_id),
            )
        )

    # Signing keys.

    async def active_signing_key(self) -> SigningKey | None:
        def read(conn: sqlite3.Connection) -> SigningKey | None:
            row = conn.execute(ACTIVE_KEY).fetchone()
            return row_to_signing_key(row) if row else None

        return await self._read(read)

    async def rotate_signing_key(
        self,
        candidate: SigningKey,
        now: datetime,
        *,
        stale_before: datetime | None,
        forget_before: datetime,
    ) -> SigningKey:
        def write(conn: sqlite3.Connection) -> SigningKey:
            row = conn.execute(ACTIVE_KEY).fetchone()
            if row is not None and stale_before is not None and row["create_us"] > us(stale_before):
                return row_to_signing_key(row)
            conn.execute(
                "UPDATE signing_keys SET retire_us = ? WHERE retire_us IS NULL", (us(now),)
            )
            conn.execute(
                f"INSERT INTO signing_keys ({SIGNING_KEY_COLUMNS}) "
                f"VALUES ({_marks(SIGNING_KEY_COLUMNS)})",
                signing_key_values(candidate),
            )
            conn.execute("DELETE FROM signing_keys WHERE retire_us < ?", (us(forget_before),))
            return candidate

        return await self._write(write)

    async def signing_keys(self, retired_after: datetime) -> list[SigningKey]:
        def read(conn: sqlite3.Connection) -> list[SigningKey]:
            rows = conn.execute(
                f"SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys "
                "WHERE retire_us IS NULL OR retire_us > ? ORDER BY create_us DESC, kid DESC",
                (us(retired_after),),
            )
            return [row_to_signing_key(r) for r in rows]

        return await self._read(read)

    # Apps and API keys.

    async def create_app(self, scope: str, app: App, key: ApiKey) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO apps ({APP_COLUMNS}) VALUES ({_marks(APP_COLUMNS)})",
                app_values(app),
            )
            conn.execute(
                f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ({_marks(KEY_COLUMNS)})",
                key_values(key),
            )

        await self._write(write)

    async def get_app(self, scope: str, app_id: str) -> App | None:
        clause, args = subtree_clause("tenant", scope)

        def read(conn: sqlite3.Connection) -> App | None:
            row = conn.execute(
                f"SELECT {APP_COLUMNS} FROM apps WHERE id = ? AND {clause}", (app_id, *args)
            ).fetchone()
            return row_to_app(row) if row else None

        return await self._read(read)

    async def list_apps(self, scope: str, subtree: str, limit: int, after: str | None) -> list[App]:
        sql, params = self._list_sql(APP_COLUMNS, "apps", scope, subtree, limit, after)
        return await self._read(lambda conn: [row_to_app(r) for r in conn.execute(sql, params)])

    async def update_app(self, scope: str, app: App) -> App | None:
        clause, args = subtree_clause("tenant", scope)

        def write(conn: sqlite3.Connection) -> App | None:
            row = conn.execute(
                f"{UPDATE_APP.format(mark='?')} AND {clause} RETURNING {APP_COLUMNS}",
                (*update_app_values(app), *args),
            ).fetchone()
            return row_to_app(row) if row else None

        return await self._write(write)

    async def delete_app(self, scope: str, app_id: str) -> bool:
        clause, args = subtree_clause("tenant", scope)

        def write(conn: sqlite3.Connection) -> bool:
            found = conn.execute(
                f"SELECT 1 FROM apps WHERE id = ? AND {clause}", (app_id, *args)
            ).fetchone()
            if not found:
                return False
            conn.execute("DELETE FROM api_keys WHERE app_id = ?", (app_id,))
            return conn.execute("DELETE FROM apps WHERE id = ?", (app_id,)).rowcount == 1

        return await self._write(write)

    async def add_api_key(self, scope: str, key: ApiKey, max_active: int) -> bool:
        clause, args = subtree_clause("tenant", scope)

        def write(conn: sqlite3.Connection) -> bool:
            active = conn.execute(
                f"SELECT count(*) FROM api_keys WHERE app_id = ? AND revoke_us IS NULL "
                f"AND {clause}",
                (key.app_id, *args),
            ).fetchone()[0]
            if active >= max_active:
                return False
            conn.execute(
                f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ({_marks(KEY_COLUMNS)})",
                key_values(key),
            )
            return True

        return await self._write(write)

    async def list_api_keys(self, scope: str, app_id: str) -> list[ApiKey]:
        clause, args = subtree_clause("tenant", scope)

        def read(conn: sqlite3.Connection) -> list[ApiKey]:
            rows = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE app_id = ? AND {clause} "
                "ORDER BY create_us, id",
                (app_id, *args),
            )
            return [row_to_key(r) for r in rows]

        return await self._read(read)

    async def revoke_api_key(
        self, scope: str, app_id: str, key_id: str, now: datetime
    ) -> ApiKey | None:
        clause, args = subtree_clause("tenant", scope)

        def write(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(
                "UPDATE api_keys SET revoke_us = coalesce(revoke_us, ?) "
                f"WHERE id = ? AND app_id = ? AND {clause} RETURNING {KEY_COLUMNS}",
                (us(now), key_id, app_id, *args),
            ).fetchone()
            return row_to_key(row) if row else None

        return await self._write(write)

    async def api_key(self, scope: str, key_id: str) -> tuple[ApiKey, App] | None:
        clause, args = subtree_clause("k.tenant", scope)

        def read(conn: sqlite3.Connection) -> tuple[ApiKey, App] | None:
            row = conn.execute(
                f"SELECT {KEY_WITH_APP_COLUMNS} FROM api_keys k JOIN apps a ON a.id = k.app_id "
                f"WHERE k.id = ? AND {clause}",
                (key_id, *args),
            ).fetchone()
            return (row_to_key(row, "k_"), row_to_app(row)) if row else None

        return await self._read(read)

    def close(self) -> None:
        self.db.close()
