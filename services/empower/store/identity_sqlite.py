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
    USERNAME_TAKEN,
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
from services.kit.errors import AlreadyExists, FailedPrecondition
from services.kit.sqlite import SqliteDatabase, transaction

T = TypeVar("T")

# A username is unique at its tenant node, not across the platform: a name taken
# elsewhere must not be revealed to whoever creates a user (`migrate_users` moves an
# older file, whose usernames were unique everywhere, to this shape).
# Columns of the first version that nothing read (sign-in is throttled, never locked);
# `migrate_users` drops them from an older file.
UNUSED_USER_COLUMNS = ("failed_logins", "locked_until_us")
USERS_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    username        TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    roles           TEXT NOT NULL,
    password_hash   TEXT,
    disabled        INTEGER NOT NULL DEFAULT 0,
    create_us       INTEGER NOT NULL,
    update_us       INTEGER NOT NULL,
    password_change_required INTEGER NOT NULL DEFAULT 0
);
"""
USERS_INDEXES = (
    "CREATE INDEX IF NOT EXISTS users_tenant ON users (tenant, id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS users_tenant_username ON users (tenant, username)",
    "CREATE INDEX IF NOT EXISTS users_username ON users (username, id)",
)

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
{users}CREATE TABLE IF NOT EXISTS refresh_tokens (
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
""".replace("{users}", USERS_TABLE.format(table="users"))


def _has_global_usernames(conn: sqlite3.Connection) -> bool:
    """Whether `users` still carries the UNIQUE (username) of its first version."""
    for index in conn.execute("PRAGMA index_list(users)").fetchall():
        if index["unique"] and index["origin"] == "u":
            columns = conn.execute(f"PRAGMA index_info({index['name']!r})").fetchall()
            if [c["name"] for c in columns] == ["username"]:
                return True
    return False


def migrate_users(conn: sqlite3.Connection) -> None:
    """Bring an older file's `users` table to the current shape, keeping every row.

    A column constraint cannot be dropped in SQLite, so the table is copied into a new
    one in one transaction, with foreign keys off meanwhile as SQLite prescribes.
    """
    columns = {row["name"] for row in conn.execute("PRAGMA table_info(users)").fetchall()}
    for unused in UNUSED_USER_COLUMNS:
        if unused in columns:  # SQLite >= 3.35 rewrites the table in place
            conn.execute(f"ALTER TABLE users DROP COLUMN {unused}")
    if "password_change_required" not in columns:
        conn.execute(
            "ALTER TABLE users ADD COLUMN password_change_required INTEGER NOT NULL DEFAULT 0"
        )
    if _has_global_usernames(conn):
        kept = ", ".join(r["name"] for r in conn.execute("PRAGMA table_info(users)").fetchall())
        conn.execute("PRAGMA foreign_keys=OFF")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DROP TABLE IF EXISTS users_next")
                conn.execute(USERS_TABLE.format(table="users_next"))
                conn.execute(f"INSERT INTO users_next ({kept}) SELECT {kept} FROM users")
                conn.execute("DROP TABLE users")
                conn.execute("ALTER TABLE users_next RENAME TO users")
                if conn.execute("PRAGMA foreign_key_check").fetchone():
                    raise RuntimeError("migrating users would break a foreign key")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.execute("PRAGMA foreign_keys=ON")
    for statement in USERS_INDEXES:
        conn.execute(statement)


class SqliteIdentityStore:
    """Tenants, users, tokens' state, signing keys and apps, in one SQLite file."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(lambda conn: conn.executescript(SCHEMA))
        self.db.run_sync(migrate_users)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.db.run(fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.db.run(lambda conn: transaction(conn, fn))

    # Tenants.

    async def create_tenant(self, tenant: Tenant) -> None:
        def write(conn: sqlite3.Connection) -> None:
            if conn.execute(GET_TENANT, (tenant.path,)).fetchone():
                raise AlreadyExists(f"tenant {tenant.name!r} already exists")
            conn.execute(INSERT_TENANT, tenant_values(tenant))

        await self._write(write)

    async def get_tenant(self, path: str) -> Tenant | None:
        def read(conn: sqlite3.Connection) -> Tenant | None:
            row = conn.execute(GET_TENANT, (path,)).fetchone()
            return row_to_tenant(row) if row else None

        return await self._read(read)

    async def update_tenant(self, tenant: Tenant) -> Tenant | None:
        def write(conn: sqlite3.Connection) -> Tenant | None:
            row = conn.execute(
                UPDATE_TENANT, (tenant.display_name, tenant.admin_code, tenant.path)
            ).fetchone()
            return row_to_tenant(row) if row else None

        return await self._write(write)

    async def delete_tenant(self, path: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            for what, query in TENANT_IN_USE:
                if conn.execute(query, (path,)).fetchone():
                    raise FailedPrecondition(tenant_in_use(path, what))
            return conn.execute(DELETE_TENANT, (path,)).rowcount == 1

        return await self._write(write)

    async def list_child_tenants(
        self,
        parent: str,
        subtree: str,
        ancestors: Sequence[str],
        limit: int,
        after: str | None,
    ) -> list[Tenant]:
        clause, args = in_subtree("path", subtree)
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

    async def create_user(self, subtree: str, user: User, password_hash: str | None) -> None:
        def write(conn: sqlite3.Connection) -> None:
            if conn.execute(USERNAME_TAKEN, (user.tenant, user.username)).fetchone():
                raise AlreadyExists(username_taken(user))
            conn.execute(INSERT_USER, user_values(user, password_hash))

        await self._write(write)

    async def get_user(self, subtree: str, user_id: str) -> User | None:
        clause, args = in_subtree("tenant", subtree)

        def read(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(GET_USER.format(subtree=clause), (user_id, *args)).fetchone()
            return row_to_user(row) if row else None

        return await self._read(read)

    async def list_users(
        self, subtree: str, root: str, limit: int, after: str | None
    ) -> list[User]:
        sql, params = list_query(USER_COLUMNS, "users", subtree, root, limit, after)
        return await self._read(lambda conn: [row_to_user(r) for r in conn.execute(sql, params)])

    async def set_user_disabled(
        self, subtree: str, user_id: str, disabled: bool, now: datetime
    ) -> User | None:
        clause, args = in_subtree("tenant", subtree)

        def write(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                SET_USER_DISABLED.format(subtree=clause), (disabled, us(now), user_id, *args)
            ).fetchone()
            return row_to_user(row) if row else None

        return await self._write(write)

    async def update_user(self, subtree: str, user: User) -> User | None:
        clause, args = in_subtree("tenant", subtree)

        def write(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                UPDATE_USER.format(subtree=clause), (*update_user_values(user), *args)
            ).fetchone()
            return row_to_user(row) if row else None

        return await self._write(write)

    async def delete_user(self, subtree: str, user_id: str) -> bool:
        clause, args = in_subtree("tenant", subtree)

        def write(conn: sqlite3.Connection) -> bool:
            found = conn.execute(
                f"SELECT 1 FROM users WHERE id = ? AND {clause}", (user_id, *args)
            ).fetchone()
            if not found:
                return False
            conn.execute(DELETE_USER_TOKENS, (user_id,))
            return conn.execute(DELETE_USER, (user_id,)).rowcount == 1

        return await self._write(write)

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

        def write(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                REPLACE_HASH.format(subtree=clause),
                (password_hash, change_required, us(now), user_id, *args),
            ).fetchone()
            return row_to_user(row) if row else None

        return await self._write(write)

    async def credentials(
        self, subtree: str, username: str, tenant: str | None = None
    ) -> list[Credentials]:
        sql, params = credentials_query(subtree, username, tenant)

        def read(conn: sqlite3.Connection) -> list[Credentials]:
            return [row_to_credentials(r) for r in conn.execute(sql, params).fetchall()]

        return await self._read(read)

    async def record_login(self, subtree: str, user_id: str, new_hash: str | None) -> None:
        clause, args = in_subtree("tenant", subtree)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(RECORD_LOGIN.format(subtree=clause), (new_hash, user_id, *args))

        await self._write(write)

    # Refresh tokens.

    async def create_refresh_token(self, token: RefreshToken) -> None:
        await self._write(lambda conn: conn.execute(INSERT_REFRESH, refresh_values(token)))

    async def get_refresh_token(self, token_id: str) -> RefreshToken | None:
        def read(conn: sqlite3.Connection) -> RefreshToken | None:
            row = conn.execute(GET_REFRESH, (token_id,)).fetchone()
            return row_to_refresh(row) if row else None

        return await self._read(read)

    async def rotate_refresh_token(
        self, used_id: str, now: datetime, successor: RefreshToken
    ) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            if conn.execute(USE_REFRESH, (us(now), used_id)).rowcount != 1:
                return False
            conn.execute(INSERT_REFRESH, refresh_values(successor))
            return True

        return await self._write(write)

    async def revoke_refresh_family(self, family_id: str, now: datetime) -> None:
        await self._write(lambda conn: conn.execute(REVOKE_FAMILY, (us(now), family_id)))

    async def revoke_user_refresh_tokens(self, user_id: str, now: datetime) -> None:
        await self._write(lambda conn: conn.execute(REVOKE_USER_TOKENS, (us(now), user_id)))

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
            conn.execute(RETIRE_KEYS, (us(now),))
            conn.execute(INSERT_SIGNING_KEY, signing_key_values(candidate))
            conn.execute(FORGET_KEYS, (us(forget_before),))
            return candidate

        return await self._write(write)

    async def signing_keys(self, retired_after: datetime) -> list[SigningKey]:
        def read(conn: sqlite3.Connection) -> list[SigningKey]:
            rows = conn.execute(SIGNING_KEYS, (us(retired_after),))
            return [row_to_signing_key(r) for r in rows]

        return await self._read(read)

    # Apps and API keys.

    async def create_app(self, subtree: str, app: App, key: ApiKey) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(INSERT_APP, app_values(app))
            conn.execute(INSERT_KEY, key_values(key))

        await self._write(write)

    async def get_app(self, subtree: str, app_id: str) -> App | None:
        clause, args = in_subtree("tenant", subtree)

        def read(conn: sqlite3.Connection) -> App | None:
            row = conn.execute(GET_APP.format(subtree=clause), (app_id, *args)).fetchone()
            return row_to_app(row) if row else None

        return await self._read(read)

    async def list_apps(self, subtree: str, root: str, limit: int, after: str | None) -> list[App]:
        sql, params = list_query(APP_COLUMNS, "apps", subtree, root, limit, after)
        return await self._read(lambda conn: [row_to_app(r) for r in conn.execute(sql, params)])

    async def update_app(self, subtree: str, app: App) -> App | None:
        clause, args = in_subtree("tenant", subtree)

        def write(conn: sqlite3.Connection) -> App | None:
            row = conn.execute(
                UPDATE_APP.format(subtree=clause), (*update_app_values(app), *args)
            ).fetchone()
            return row_to_app(row) if row else None

        return await self._write(write)

    async def delete_app(self, subtree: str, app_id: str) -> bool:
        clause, args = in_subtree("tenant", subtree)

        def write(conn: sqlite3.Connection) -> bool:
            found = conn.execute(
                f"SELECT 1 FROM apps WHERE id = ? AND {clause}", (app_id, *args)
            ).fetchone()
            if not found:
                return False
            conn.execute(DELETE_APP_KEYS, (app_id,))
            return conn.execute(DELETE_APP, (app_id,)).rowcount == 1

        return await self._write(write)

    async def add_api_key(self, subtree: str, key: ApiKey, max_active: int) -> bool:
        clause, args = in_subtree("tenant", subtree)

        def write(conn: sqlite3.Connection) -> bool:
            active = conn.execute(
                f"SELECT count(*) FROM api_keys WHERE app_id = ? AND revoke_us IS NULL "
                f"AND {clause}",
                (key.app_id, *args),
            ).fetchone()[0]
            if active >= max_active:
                return False
            conn.execute(INSERT_KEY, key_values(key))
            return True

        return await self._write(write)

    async def list_api_keys(self, subtree: str, app_id: str) -> list[ApiKey]:
        clause, args = in_subtree("tenant", subtree)

        def read(conn: sqlite3.Connection) -> list[ApiKey]:
            rows = conn.execute(LIST_KEYS.format(subtree=clause), (app_id, *args))
            return [row_to_key(r) for r in rows]

        return await self._read(read)

    async def revoke_api_key(
        self, subtree: str, app_id: str, key_id: str, now: datetime
    ) -> ApiKey | None:
        clause, args = in_subtree("tenant", subtree)

        def write(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(
                REVOKE_KEY.format(subtree=clause), (us(now), key_id, app_id, *args)
            ).fetchone()
            return row_to_key(row) if row else None

        return await self._write(write)

    async def api_key(self, subtree: str, key_id: str) -> tuple[ApiKey, App] | None:
        clause, args = in_subtree("k.tenant", subtree)

        def read(conn: sqlite3.Connection) -> tuple[ApiKey, App] | None:
            row = conn.execute(KEY_WITH_APP.format(subtree=clause), (key_id, *args)).fetchone()
            return (row_to_key(row, "k_"), row_to_app(row)) if row else None

        return await self._read(read)

    def close(self) -> None:
        self.db.close()
