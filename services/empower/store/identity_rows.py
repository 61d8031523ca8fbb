"""How identity objects map to rows, and the statements both stores run: one
definition each, so the SQLite and PostgreSQL stores cannot drift (ADR 12)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from services.empower.domain.model import (
    ApiKey,
    App,
    Credentials,
    Level,
    RefreshToken,
    SigningKey,
    Tenant,
    User,
    UserKind,
)
from services.kit import tenancy
from services.kit.tenancy import ALL_TENANTS

TENANT_COLUMNS = "path, parent, display_name, level, admin_code, create_us"

USER_COLUMNS = (
    "id, tenant, username, display_name, kind, roles, disabled, create_us, update_us, "
    "password_change_required"
)

CREDENTIAL_COLUMNS = USER_COLUMNS + ", password_hash"

REFRESH_COLUMNS = (
    "id, family_id, user_id, tenant, token_hash, create_us, expire_us, use_us, revoke_us"
)

SIGNING_KEY_COLUMNS = "kid, private_pem, public_x, create_us, retire_us"

APP_COLUMNS = "id, tenant, display_name, scopes, quota_per_minute, create_us, update_us"

KEY_COLUMNS = "id, app_id, tenant, secret_hash, create_us, revoke_us"

# A key joined with its app: the key's columns carry a k_ prefix.
KEY_WITH_APP_COLUMNS = (
    ", ".join(f"k.{c} AS k_{c}" for c in KEY_COLUMNS.split(", "))
    + ", "
    + ", ".join(f"a.{c}" for c in APP_COLUMNS.split(", "))
)


def us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    return (moment - _EPOCH) // _MICROSECOND


def row_to_tenant(row: Row) -> Tenant:
    return Tenant(
        path=row["path"],
        display_name=row["display_name"],
        level=Level(row["level"]),
        admin_code=row["admin_code"],
        create_time=from_us(row["create_us"]),
    )


def tenant_values(tenant: Tenant) -> tuple[object, ...]:
    return (
        tenant.path,
        tenant.parent,
        tenant.display_name,
        tenant.level.value,
        tenant.admin_code,
        us(tenant.create_time),
    )


def row_to_user(row: Row) -> User:
    return User(
        id=row["id"],
        tenant=row["tenant"],
        username=row["username"],
        display_name=row["display_name"],
        kind=UserKind(row["kind"]),
        roles=tuple(json.loads(row["roles"])),
        create_time=from_us(row["create_us"]),
        update_time=from_us(row["update_us"]),
        disabled=bool(row["disabled"]),
        password_change_required=bool(row["password_change_required"]),
    )


def user_values(user: User, password_hash: str | None) -> tuple[object, ...]:
    """Values for `USER_COLUMNS` followed by the password hash."""
    return (
        user.id,
        user.tenant,
        user.username,
        user.display_name,
        user.kind.value,
        json.dumps(list(user.roles)),
        user.disabled,
        us(user.create_time),
        us(user.update_time),
        user.password_change_required,
        password_hash,
    )


def row_to_credentials(row: Row) -> Credentials:
    return Credentials(
        user=row_to_user(row),
        password_hash=row["password_hash"],
    )


def row_to_refresh(row: Row) -> RefreshToken:
    return RefreshToken(
        id=row["id"],
        family_id=row["family_id"],
        user_id=row["user_id"],
        tenant=row["tenant"],
        token_hash=row["token_hash"],
        create_time=from_us(row["create_us"]),
        expire_time=from_us(row["expire_us"]),
        use_time=maybe_from_us(row["use_us"]),
        revoke_time=maybe_from_us(row["revoke_us"]),
    )


def refresh_values(token: RefreshToken) -> tuple[object, ...]:
    return (
        token.id,
        token.family_id,
        token.user_id,
        token.tenant,
        token.token_hash,
        us(token.create_time),
        us(token.expire_time),
        maybe_us(token.use_time),
        maybe_us(token.revoke_time),
    )


def row_to_signing_key(row: Row) -> SigningKey:
    return SigningKey(
        kid=row["kid"],
        private_pem=row["private_pem"],
        public_x=row["public_x"],
        create_time=from_us(row["create_us"]),
        retire_time=maybe_from_us(row["retire_us"]),
    )


def signing_key_values(key: SigningKey) -> tuple[object, ...]:
    return (
        key.kid,
        key.private_pem,
        key.public_x,
        us(key.create_time),
        maybe_us(key.retire_time),
    )


def row_to_app(row: Row) -> App:
    return App(
        id=row["id"],
        tenant=row["tenant"],
        display_name=row["display_name"],
        scopes=frozenset(row["scopes"].split()),
        quota_per_minute=row["quota_per_minute"],
        create_time=from_us(row["create_us"]),
        update_time=from_us(row["update_us"]),
    )


def app_values(app: App) -> tuple[object, ...]:
    return (
        app.id,
        app.tenant,
        app.display_name,
        " ".join(sorted(app.scopes)),
        app.quota_per_minute,
        us(app.create_time),
        us(app.update_time),
    )


def row_to_key(row: Row, prefix: str = "") -> ApiKey:
    return ApiKey(
        id=row[prefix + "id"],
        app_id=row[prefix + "app_id"],
        tenant=row[prefix + "tenant"],
        secret_hash=row[prefix + "secret_hash"],
        create_time=from_us(row[prefix + "create_us"]),
        revoke_time=maybe_from_us(row[prefix + "revoke_us"]),
    )


def key_values(key: ApiKey) -> tuple[object, ...]:
    return (
        key.id,
        key.app_id,
        key.tenant,
        key.secret_hash,
        us(key.create_time),
        maybe_us(key.revoke_time),
    )


Row = Mapping[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_MICROSECOND = timedelta(microseconds=1)


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def maybe_us(moment: datetime | None) -> int | None:
    return None if moment is None else us(moment)


def maybe_from_us(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


# Statements both stores run, in the kit's dialect notation (`?`, ADR 12); each
# store renders them with `services.kit.sqldialect`. `{subtree}` takes `subtree()`.


def _marks(columns: str) -> str:
    return ", ".join("?" * len(columns.split(",")))


def in_subtree(column: str, subtree: str) -> tuple[str, list[object]]:
    """ "`column` is `subtree` or below it" and its values, as a range an index can scan
    ('/' sorts just before '0'); every row for ALL_TENANTS."""
    if subtree == ALL_TENANTS:
        return "1 = 1", []
    return f"({column} = ? OR ({column} >= ? AND {column} < ?))", [
        subtree,
        subtree + "/",
        subtree + "0",
    ]


INSERT_TENANT = f"INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ({_marks(TENANT_COLUMNS)})"
GET_TENANT = f"SELECT {TENANT_COLUMNS} FROM tenants WHERE path = ?"
UPDATE_TENANT = (
    f"UPDATE tenants SET display_name = ?, admin_code = ? WHERE path = ? RETURNING {TENANT_COLUMNS}"
)
DELETE_TENANT = "DELETE FROM tenants WHERE path = ?"
INSERT_USER = f"INSERT INTO users ({CREDENTIAL_COLUMNS}) VALUES ({_marks(CREDENTIAL_COLUMNS)})"
GET_USER = f"SELECT {USER_COLUMNS} FROM users WHERE id = ? AND {{subtree}}"
SET_USER_DISABLED = (
    "UPDATE users SET disabled = ?, update_us = ? WHERE id = ? AND {subtree} "
    f"RETURNING {USER_COLUMNS}"
)
UPDATE_USER = (
    "UPDATE users SET display_name = ?, kind = ?, roles = ?, update_us = ? "
    f"WHERE id = ? AND {{subtree}} RETURNING {USER_COLUMNS}"
)
REPLACE_HASH = (
    "UPDATE users SET password_hash = ?, password_change_required = ?, update_us = ? "
    f"WHERE id = ? AND {{subtree}} RETURNING {USER_COLUMNS}"
)
USERNAME_TAKEN = "SELECT 1 FROM users WHERE tenant = ? AND username = ?"
RECORD_LOGIN = (
    "UPDATE users SET password_hash = coalesce(?, password_hash) WHERE id = ? AND {subtree}"
)
DELETE_USER_TOKENS = "DELETE FROM refresh_tokens WHERE user_id = ?"
DELETE_USER = "DELETE FROM users WHERE id = ?"
INSERT_REFRESH = (
    f"INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES ({_marks(REFRESH_COLUMNS)})"
)
GET_REFRESH = f"SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE id = ?"
# A refresh token works once: only an unused, unrevoked one is marked used.
USE_REFRESH = (
    "UPDATE refresh_tokens SET use_us = ? WHERE id = ? AND use_us IS NULL AND revoke_us IS NULL"
)
REVOKE_FAMILY = "UPDATE refresh_tokens SET revoke_us = ? WHERE family_id = ? AND revoke_us IS NULL"
REVOKE_USER_TOKENS = (
    "UPDATE refresh_tokens SET revoke_us = ? WHERE user_id = ? AND revoke_us IS NULL"
)
ACTIVE_KEY = (
    f"SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys WHERE retire_us IS NULL "
    "ORDER BY create_us DESC, kid DESC LIMIT 1"
)
RETIRE_KEYS = "UPDATE signing_keys SET retire_us = ? WHERE retire_us IS NULL"
INSERT_SIGNING_KEY = (
    f"INSERT INTO signing_keys ({SIGNING_KEY_COLUMNS}) VALUES ({_marks(SIGNING_KEY_COLUMNS)})"
)
FORGET_KEYS = "DELETE FROM signing_keys WHERE retire_us < ?"
SIGNING_KEYS = (
    f"SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys "
    "WHERE retire_us IS NULL OR retire_us > ? ORDER BY create_us DESC, kid DESC"
)
INSERT_APP = f"INSERT INTO apps ({APP_COLUMNS}) VALUES ({_marks(APP_COLUMNS)})"
INSERT_KEY = f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ({_marks(KEY_COLUMNS)})"
GET_APP = f"SELECT {APP_COLUMNS} FROM apps WHERE id = ? AND {{subtree}}"
UPDATE_APP = (
    "UPDATE apps SET display_name = ?, scopes = ?, quota_per_minute = ?, update_us = ? "
    f"WHERE id = ? AND {{subtree}} RETURNING {APP_COLUMNS}"
)
DELETE_APP_KEYS = "DELETE FROM api_keys WHERE app_id = ?"
DELETE_APP = "DELETE FROM apps WHERE id = ?"
LIST_KEYS = (
    f"SELECT {KEY_COLUMNS} FROM api_keys WHERE app_id = ? AND {{subtree}} ORDER BY create_us, id"
)
REVOKE_KEY = (
    "UPDATE api_keys SET revoke_us = coalesce(revoke_us, ?) "
    f"WHERE id = ? AND app_id = ? AND {{subtree}} RETURNING {KEY_COLUMNS}"
)
KEY_WITH_APP = (
    f"SELECT {KEY_WITH_APP_COLUMNS} FROM api_keys k JOIN apps a ON a.id = k.app_id "
    "WHERE k.id = ? AND {subtree}"
)
# What keeps a node from being deleted, each a query taking the node's path.
TENANT_IN_USE = (
    ("child nodes", "SELECT 1 FROM tenants WHERE parent = ? LIMIT 1"),
    ("users", "SELECT 1 FROM users WHERE tenant = ? LIMIT 1"),
    ("apps", "SELECT 1 FROM apps WHERE tenant = ? LIMIT 1"),
)


def list_query(
    columns: str, table: str, subtree: str, root: str, limit: int, after: str | None
) -> tuple[str, list[object]]:
    """A page of `table`'s rows (by id) under `root`, within the caller's `subtree`."""
    scoped, scope_args = in_subtree("tenant", subtree)
    below, below_args = in_subtree("tenant", root)
    sql = f"SELECT {columns} FROM {table} WHERE {scoped} AND {below}"
    params: list[object] = [*scope_args, *below_args]
    if after is not None:
        sql += " AND id > ?"
        params.append(after)
    return sql + " ORDER BY id LIMIT ?", [*params, limit]


# At most this many accounts are checked for one sign-in name (ADR 24).
MAX_SIGN_IN_MATCHES = 8


def credentials_query(subtree: str, username: str, tenant: str | None) -> tuple[str, list[object]]:
    """The accounts a sign-in name may mean, by id: those of every node with that
    username, or of one node when the name is qualified with its tenant."""
    scoped, scope_args = in_subtree("tenant", subtree)
    sql = f"SELECT {CREDENTIAL_COLUMNS} FROM users WHERE username = ?"
    params: list[object] = [username]
    if tenant is not None:
        sql += " AND tenant = ?"
        params.append(tenant)
    sql += f" AND {scoped} ORDER BY id LIMIT ?"
    return sql, [*params, *scope_args, MAX_SIGN_IN_MATCHES]


def username_taken(user: User) -> str:
    """ALREADY_EXISTS of a username taken at the user's node (never of another node's)."""
    return f"the username {user.username!r} is taken at {tenancy.tenant_name(user.tenant)!r}"


def tenant_in_use(path: str, what: str) -> str:
    return f"tenant {tenancy.tenant_name(path)!r} still has {what}; remove them first"


def update_user_values(user: User) -> tuple[object, ...]:
    """Values for UPDATE_USER, before the subtree's."""
    return (
        user.display_name,
        user.kind.value,
        json.dumps(list(user.roles)),
        us(user.update_time),
        user.id,
    )


def update_app_values(app: App) -> tuple[object, ...]:
    """Values for UPDATE_APP, before the subtree's."""
    return (
        app.display_name,
        " ".join(sorted(app.scopes)),
        app.quota_per_minute,
        us(app.update_time),
        app.id,
    )
