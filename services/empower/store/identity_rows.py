"""How identity objects map to rows: one definition both stores use, so they cannot drift."""

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

TENANT_COLUMNS = "path, parent, display_name, level, admin_code, create_us"

USER_COLUMNS = "id, tenant, username, display_name, kind, roles, disabled, create_us, update_us"

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


# Updates shared by both stores; `mark` is the driver's placeholder. The caller
# appends the scope's subtree clause.
UPDATE_USER = (
    "UPDATE users SET display_name = {mark}, kind = {mark}, roles = {mark}, "
    "update_us = {mark} WHERE id = {mark}"
)
REPLACE_HASH = (
    "UPDATE users SET password_hash = {mark}, failed_logins = 0, locked_until_us = NULL, "
    "update_us = {mark} WHERE id = {mark}"
)
UPDATE_APP = (
    "UPDATE apps SET display_name = {mark}, scopes = {mark}, quota_per_minute = {mark}, "
    "update_us = {mark} WHERE id = {mark}"
)
# What keeps a node from being deleted, each a query taking the node's path.
TENANT_IN_USE = (
    ("child nodes", "SELECT 1 FROM tenants WHERE parent = {mark} LIMIT 1"),
    ("users", "SELECT 1 FROM users WHERE tenant = {mark} LIMIT 1"),
    ("apps", "SELECT 1 FROM apps WHERE tenant = {mark} LIMIT 1"),
)


def tenant_in_use(path: str, what: str) -> str:
    return f"tenant {tenancy.tenant_name(path)!r} still has {what}; remove them first"


def update_user_values(user: User) -> tuple[object, ...]:
    """Values for UPDATE_USER."""
    return (
        user.display_name,
        user.kind.value,
        json.dumps(list(user.roles)),
        us(user.update_time),
        user.id,
    )


def update_app_values(app: App) -> tuple[object, ...]:
    """Values for UPDATE_APP."""
    return (
        app.display_name,
        " ".join(sorted(app.scopes)),
        app.quota_per_minute,
        us(app.update_time),
        app.id,
    )
