"""Use cases of identity: the tenant tree, users and login, tokens, apps and API keys.

Rules every method follows (ADR 0002):
* an object of a tenant outside the caller's subtree answers NOT_FOUND, never
  PERMISSION_DENIED, which would confirm that it exists;
* a missing scope answers PERMISSION_DENIED;
* bad input answers INVALID_ARGUMENT naming the field;
* nobody grants what they do not hold: the scopes of an app, or of an app a new key
  is made for, must all be scopes of the caller;
* roles are granted by the caller's roles' assignable lists (`roles.may_assign`),
  not by holding their scopes, and managing a user (change, disable, delete, reset
  a password) needs the right to assign every role the user has;
* every administrative action leaves an entry in the hash-chained audit log (ADR 14):
  who, which resource, which fields (never a password or a key's secret);
* a password someone else chose (a new account's, a reset) is known to them, so the
  account must change it first: until then sign-in yields only a token that can
  change the password (ADR 24). The platform's own installers are exempt.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher

from services.empower.domain.identity_ports import ActionAudit, IdentityStore
from services.empower.domain.model import (
    ApiKey,
    App,
    IssuedKey,
    Level,
    RefreshToken,
    SigningKey,
    Tenant,
    TokenPair,
    User,
    UserKind,
)
from services.empower.domain.passwords import Passwords, check_policy
from services.empower.domain.roles import (
    ROLES,
    check_scopes,
    granted_scopes,
    may_assign,
    scopes_for_roles,
)
from services.empower.domain.signin_throttle import SignInThrottle
from services.empower.domain.tokens import (
    API_KEY_PREFIX,
    AUDIENCE,
    EXPIRED,
    INVALID_TOKEN,
    ISSUER,
    REFRESH_PREFIX,
    check_api_key,
    hash_secret,
    new_opaque,
    new_signing_key,
    parse_api_key,
    parse_refresh_token,
    principal_for_app,
    secret_matches,
    sign_access_token,
)
from services.empower.domain.verification_gate import VerificationGate
from services.kit import paging, tenancy
from services.kit.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from services.kit.ids import new_id
from services.kit.principal import PASSWORD_CHANGE_REQUIRED, PASSWORD_CHANGE_SCOPE, Principal
from services.kit.sealing import Sealer
from services.kit.tenancy import ALL_TENANTS

TENANTS_WRITE = "tenants:write"
USERS_WRITE = "users:write"
APPS_WRITE = "apps:write"
EMPOWER_READ = "empower:read"

# ErrorInfo reasons of login and refresh failures.
INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
ACCOUNT_DISABLED = "ACCOUNT_DISABLED"
TOKEN_REVOKED = "TOKEN_REVOKED"  # noqa: S105 (an error reason)
TOKEN_REUSED = "TOKEN_REUSED"  # noqa: S105 (an error reason)
# The one scope of a sign-in whose password someone else set: change it, nothing else.
_PASSWORD_CHANGE_LIFETIME = timedelta(minutes=10)
# Time a sign-in needs besides password checks (reads, a token, the way back).
_SIGN_IN_MARGIN_SECONDS = 0.5

# One message for unknown users, wrong passwords and attempts made too soon, so it
# reveals none of them.
_BAD_LOGIN = "wrong username or password, or too many attempts: wait a little and try again"
_BAD_API_KEY = "the API key is not valid"
_SEGMENT = re.compile(r"^[a-z0-9]{1,40}\Z")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}\Z")
_ADMIN_CODE = re.compile(r"^[0-9]{6,12}\Z")


_PRIVATE_KEY_FIELD = "private_key"


def is_sealed(key: SigningKey) -> bool:
    """Whether a stored signing key's private half is sealed (not a clear PEM)."""
    return not key.private_pem.startswith("-----BEGIN")


@lru_cache(maxsize=1)
def _process_sealer() -> Sealer:
    """Random keys for this process: for directories built without the service's seal
    keys (tests); the service always passes its own."""
    return Sealer.generate("process")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _require(caller: Principal, *scopes: str) -> None:
    """PERMISSION_DENIED unless the caller holds one of `scopes`."""
    if not any(caller.has_scope(s) for s in scopes):
        raise PermissionDenied(f"this needs the scope {' or '.join(scopes)}")


def _no_escalation(caller: Principal, granted: Iterable[str], what: str) -> None:
    """PERMISSION_DENIED when `granted` holds a scope the caller does not."""
    beyond = sorted(set(granted) - caller.scopes)
    if beyond:
        raise PermissionDenied(f"{what} would grant scopes you do not hold: {', '.join(beyond)}")


def _check_assignable(caller: Principal, roles: Iterable[str], what: str) -> None:
    """PERMISSION_DENIED unless the caller may assign every one of `roles`."""
    refused = sorted(r for r in roles if not may_assign(r, caller.roles, caller.scopes))
    if not refused:
        return
    if caller.roles:
        raise PermissionDenied(
            f"{what}: your roles ({', '.join(caller.roles)}) may not assign {', '.join(refused)}"
        )
    _no_escalation(caller, scopes_for_roles(refused), what)
    raise PermissionDenied(f"{what}: you may not assign {', '.join(refused)}")


def _chosen_for_others(caller: Principal) -> bool:
    """Whether a password the caller sets is someone else's choice, to be changed at
    first sign-in: yes for people and apps; no for the platform's own services
    (installers handing out the first accounts of a deployment)."""
    return caller.kind != "service"


def _manageable_roles(user: User) -> tuple[str, ...]:
    """The user's roles still in the catalogue (a dropped role grants nothing)."""
    return tuple(r for r in user.roles if r in ROLES)


def _display_name(value: str, field: str = "display_name") -> str:
    text = value.strip()
    if not text:
        raise InvalidArgument.field(field, "must not be empty")
    return text


def _username(value: str) -> str:
    name = value.strip().lower()
    if not _USERNAME.match(name):
        raise InvalidArgument.field(
            "username",
            "must be 3-64 lower-case letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    return name


# A qualifier naming no valid node: nothing can match it.
_NO_NODE = "-"


def _sign_in_name(username: str, tenant: str) -> tuple[str, str | None]:
    """(bare name, node path or None) of a sign-in name, `name` or `name@tenant-id`,
    and an optional separate tenant (id or path). A malformed or contradictory
    qualifier names no node (`_NO_NODE`), so it fails like any wrong name."""
    name, _, qualifier = username.strip().lower().partition("@")
    given = {q for q in (qualifier.strip(), tenant.strip().lower()) if q}
    if not given:
        return name, None
    paths = {q if "/" in q else tenancy.id_to_path(q) for q in given}
    if len(paths) != 1:
        return name, _NO_NODE
    (path,) = paths
    return name, path if tenancy.is_valid_path(path) else _NO_NODE


def _level(value: Level | str) -> Level:
    try:
        return Level(value)
    except ValueError:
        raise InvalidArgument.field(
            "level", f"{str(value)[:32]!r} is not one of {', '.join(Level)}"
        ) from None


def _user_kind(value: UserKind | str) -> UserKind:
    try:
        return UserKind(value)
    except ValueError:
        raise InvalidArgument.field(
            "kind", f"{str(value)[:32]!r} is not one of {', '.join(UserKind)}"
        ) from None


def _admin_code_field(value: str, level: Level) -> str:
    try:
        return _admin_code(value, level)
    except InvalidArgument as exc:
        raise exc.under("tenant.") from None


def _admin_code(value: str, level: Level) -> str:
    code = value.strip()
    if level is Level.GRID:
        if not code:
            raise InvalidArgument.field("admin_code", "a grid needs a code of its own")
    elif not _ADMIN_CODE.match(code):
        raise InvalidArgument.field("admin_code", "must be 6-12 digits (a division code)")
    return code


def _ancestors(path: str) -> list[str]:
    """The proper ancestors of a path, from the root: a/b/c -> [a, a/b]."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _parse_name(name: str, collection: str) -> tuple[str | None, str]:
    """(tenant or None, id) of `tenants/{tenant}/{collection}/{id}` (tenant may be `-`)
    or of the short `{collection}/{id}` that principals carry as subject."""
    head, _, rest = name.partition("/")
    if head == collection and rest and "/" not in rest:
        return None, rest
    return tenancy.parse_child_name(name, collection)


def parse_api_key_name(name: str) -> tuple[str, str]:
    """(app name, key id) of `tenants/{tenant}/apps/{app}/apiKeys/{key}`."""
    app_name, _, key_id = name.rpartition("/apiKeys/")
    if not app_name or not key_id or "/" in key_id:
        raise InvalidArgument.field(
            "name", f"{name[:200]!r} is not of the form 'tenants/{{t}}/apps/{{a}}/apiKeys/{{k}}'"
        )
    return app_name, key_id


def _without_hash(key: ApiKey) -> ApiKey:
    return replace(key, secret_hash="")


def _page(
    items: Sequence[Any], limit: int, query: object, key: Callable[[Any], str]
) -> tuple[list[Any], str]:
    """The first `limit` items and the token of the next page (the store read one more)."""
    if len(items) <= limit:
        return list(items), ""
    return list(items[:limit]), paging.encode_token({"a": key(items[limit - 1])}, query)


def _after(token: str, query: object) -> str | None:
    cursor = paging.decode_token(token, query)
    if cursor is None:
        return None
    after = cursor.get("a")
    if not isinstance(after, str):
        raise InvalidArgument.field("page_token", "is not a token this service issued")
    return after


class IdentityDirectory:
    """Tenants, users, sign-in and apps: who may call the platform, and as whom.

    `clock` is injectable so sign-in delays, expiries and key rotation can be tested;
    `hasher` so tests can use cheap (but real) argon2 parameters.
    """

    def __init__(
        self,
        store: IdentityStore,
        *,
        clock: Callable[[], datetime] = _utc_now,
        hasher: PasswordHasher | None = None,
        access_token_lifetime: timedelta = timedelta(minutes=15),
        refresh_token_lifetime: timedelta = timedelta(days=30),
        key_rotation_period: timedelta = timedelta(hours=24),
        audit: ActionAudit | None = None,
        throttle: SignInThrottle | None = None,
        gate: VerificationGate | None = None,
        sealer: Sealer | None = None,
        max_keys_per_app: int = 10,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
    ) -> None:
        self.store = store
        self.clock = clock
        self.passwords = Passwords(hasher)
        self.access_token_lifetime = access_token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.key_rotation_period = key_rotation_period
        self.throttle = throttle or SignInThrottle()
        self.gate = gate or VerificationGate()
        self.sealer = sealer or _process_sealer()
        self.max_keys_per_app = max_keys_per_app
        self.issuer = issuer
        self.audience = audience
        self.audit = audit

    async def _audit(
        self, caller: Principal, action: str, record: str, fields: Sequence[str] = ()
    ) -> None:
        """One entry per administrative action, after it took effect (ADR 14).

        Without an audit log (tests of sign-in only) nothing is recorded.
        """
        if self.audit is not None:
            await self.audit.record_action(caller, f"identity.{action}", [record], list(fields))

    # The tenant tree.

    async def create_tenant(
        self,
        caller: Principal,
        parent_path: str,
        segment: str,
        display_name: str,
        level: Level | str,
        admin_code: str,
    ) -> Tenant:
        """Add a node one level below `parent_path` ("" for a root city: services only)."""
        _require(caller, TENANTS_WRITE)
        wanted = _level(level)
        if parent_path == "":
            if caller.kind != "service":
                raise PermissionDenied("only the platform itself creates a root city")
            if wanted is not Level.CITY:
                raise InvalidArgument.field("level", "a root node must be a city")
        else:
            parent = await self._visible_tenant(caller, parent_path, "parent")
            if not caller.can_see(parent.path):
                raise PermissionDenied("nodes may be added only inside your own subtree")
            if wanted is not parent.level.child:
                below = parent.level.child
                raise InvalidArgument.field(
                    "level",
                    f"a child of a {parent.level} must be a {below}"
                    if below
                    else "a grid has no children",
                )
        if not _SEGMENT.match(segment):
            raise InvalidArgument.field("segment", "must be 1-40 lower-case letters or digits")
        tenant = Tenant(
            path=f"{parent_path}/{segment}" if parent_path else segment,
            display_name=_display_name(display_name),
            level=wanted,
            admin_code=_admin_code(admin_code, wanted),
            create_time=self.clock(),
        )
        await self.store.create_tenant(tenant)
        await self._audit(
            caller,
            "tenants.create",
            tenant.name,
            [f"level={tenant.level}", f"admin_code={tenant.admin_code}"],
        )
        return tenant

    async def update_tenant(
        self,
        caller: Principal,
        path: str,
        display_name: str | None = None,
        admin_code: str | None = None,
    ) -> Tenant:
        """Rename a node of the caller's subtree or correct its division code."""
        _require(caller, TENANTS_WRITE)
        current = await self._own_tenant(caller, path)
        changed = replace(
            current,
            display_name=current.display_name
            if display_name is None
            else _display_name(display_name, "tenant.display_name"),
            admin_code=current.admin_code
            if admin_code is None
            else _admin_code_field(admin_code, current.level),
        )
        fields = [
            f for f, given in (("display_name", display_name), ("admin_code", admin_code)) if given
        ]
        if not fields:
            raise InvalidArgument.field("update_mask", "name at least one field to change")
        stored = await self.store.update_tenant(changed)
        if stored is None:
            raise NotFound(f"tenant {tenancy.tenant_name(path)!r} not found")
        await self._audit(caller, "tenants.update", stored.name, fields)
        return stored

    async def delete_tenant(self, caller: Principal, path: str) -> None:
        """Remove an empty node below the caller's own (no children, users or apps)."""
        _require(caller, TENANTS_WRITE)
        tenant = await self._own_tenant(caller, path)
        if tenant.path == caller.tenant:
            raise FailedPrecondition("you cannot delete your own node")
        if not await self.store.delete_tenant(tenant.path):
            raise NotFound(f"tenant {tenant.name!r} not found")
        await self._audit(caller, "tenants.delete", tenant.name)

    async def _visible_tenant(self, caller: Principal, path: str, field: str) -> Tenant:
        tenancy.validate_path(path, field)
        if not (caller.can_see(path) or tenancy.contains(path, caller.tenant)):
            raise NotFound(f"tenant {tenancy.tenant_name(path)!r} not found")
        tenant = await self.store.get_tenant(path)
        if tenant is None:
            raise NotFound(f"tenant {tenancy.tenant_name(path)!r} not found")
        return tenant

    async def _own_tenant(self, caller: Principal, path: str) -> Tenant:
        """A node of the caller's subtree (NOT_FOUND for any other)."""
        tenancy.validate_path(path, "tenant")
        if not caller.can_see(path):
            raise NotFound(f"tenant {tenancy.tenant_name(path)!r} not found")
        return await self._visible_tenant(caller, path, "tenant")

    async def get_tenant(self, caller: Principal, path: str) -> Tenant:
        """A node of the caller's subtree or above it (a village sees its town)."""
        return await self._visible_tenant(caller, path, "path")

    async def list_tenants(
        self, caller: Principal, parent: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[Tenant], str]:
        """Children of `parent` ("" for the roots) the caller may see, by path."""
        if parent:
            await self._visible_tenant(caller, parent, "parent")
        limit = paging.page_size(page_size)
        query = ("tenants", parent)
        rows = await self.store.list_child_tenants(
            parent, caller.tenant, _ancestors(caller.tenant), limit + 1, _after(page_token, query)
        )
        return _page(rows, limit, query, lambda t: t.path)

    # Users.

    async def create_user(
        self,
        caller: Principal,
        tenant: str,
        username: str,
        display_name: str,
        kind: UserKind | str,
        roles: Sequence[str],
        password: str | None = None,
    ) -> User:
        """A user of a node of the caller's subtree, with roles the caller could hold.

        Without a password the user exists but cannot sign in with one.
        """
        _require(caller, USERS_WRITE)
        await self._own_tenant(caller, tenant)
        name = _username(username)
        display = _display_name(display_name)
        user_kind = _user_kind(kind)
        wanted = tuple(dict.fromkeys(roles))
        if not wanted:
            raise InvalidArgument.field("roles", "a user needs at least one role")
        scopes_for_roles(wanted)  # unknown roles are INVALID_ARGUMENT before anything else
        _check_assignable(caller, wanted, "these roles")
        password_hash = None
        if password is not None:
            password_hash = await self.passwords.hash(check_policy(password, name))
        now = self.clock()
        user = User(
            id=new_id("user"),
            tenant=tenant,
            username=name,
            display_name=display,
            kind=user_kind,
            roles=wanted,
            create_time=now,
            update_time=now,
            password_change_required=password_hash is not None and _chosen_for_others(caller),
        )
        await self.store.create_user(caller.tenant, user, password_hash)
        await self._audit(
            caller,
            "users.create",
            user.name,
            [f"username={name}", f"kind={user_kind}", f"roles={','.join(wanted)}"]
            + (["password"] if password_hash else []),
        )
        return user

    async def get_user(self, caller: Principal, name: str) -> User:
        """A user by `tenants/{t}/users/{id}` (t may be `-`) or `users/{id}`.

        Anyone may read their own record; others need empower:read or users:write.
        """
        hint, user_id = _parse_name(name, "users")
        if caller.subject != f"users/{user_id}":
            _require(caller, EMPOWER_READ, USERS_WRITE)
        return await self._visible_user(caller, hint, user_id)

    async def _visible_user(self, caller: Principal, hint: str | None, user_id: str) -> User:
        user = await self.store.get_user(caller.tenant, user_id)
        if (
            user is None
            or not caller.can_see(user.tenant)
            or (hint is not None and hint != user.tenant)
        ):
            raise NotFound(f"user {user_id[:64]!r} not found")
        return user

    async def list_users(
        self, caller: Principal, parent: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[User], str]:
        """Users of a node and its subtree, oldest first."""
        _require(caller, EMPOWER_READ, USERS_WRITE)
        tenancy.validate_path(parent, "parent")
        if not caller.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        limit = paging.page_size(page_size)
        query = ("users", parent)
        rows = await self.store.list_users(
            caller.tenant, parent, limit + 1, _after(page_token, query)
        )
        return _page(rows, limit, query, lambda u: u.id)

    async def _managed_user(self, caller: Principal, name: str, what: str) -> User:
        """A user of the caller's subtree whose every role the caller may assign."""
        _require(caller, USERS_WRITE)
        hint, user_id = _parse_name(name, "users")
        user = await self._visible_user(caller, hint, user_id)
        if user.subject == caller.subject:
            raise FailedPrecondition(f"you cannot {what} your own account")
        _check_assignable(caller, _manageable_roles(user), f"to {what} this user")
        return user

    async def update_user(
        self,
        caller: Principal,
        name: str,
        display_name: str | None = None,
        kind: UserKind | str | None = None,
        roles: Sequence[str] | None = None,
    ) -> User:
        """Change a user's display name, kind or roles (new roles apply at the next refresh)."""
        user = await self._managed_user(caller, name, "change")
        fields: list[str] = []
        changed = user
        if display_name is not None:
            display = _display_name(display_name, "user.display_name")
            changed = replace(changed, display_name=display)
            fields.append("display_name")
        if kind is not None:
            try:
                changed = replace(changed, kind=_user_kind(kind))
            except InvalidArgument as exc:
                raise exc.under("user.") from None
            fields.append(f"kind={changed.kind}")
        if roles is not None:
            wanted = tuple(dict.fromkeys(roles))
            if not wanted:
                raise InvalidArgument.field("user.roles", "a user needs at least one role")
            try:
                scopes_for_roles(wanted)
            except InvalidArgument as exc:
                raise exc.under("user.") from None
            _check_assignable(caller, wanted, "these roles")
            changed = replace(changed, roles=wanted)
            fields.append(f"roles={','.join(wanted)}")
        if not fields:
            raise InvalidArgument.field("update_mask", "name at least one field to change")
        stored = await self.store.update_user(
            caller.tenant, replace(changed, update_time=self.clock())
        )
        if stored is None:
            raise NotFound(f"user {user.id!r} not found")
        await self._audit(caller, "users.update", stored.name, fields)
        return stored

    async def delete_user(self, caller: Principal, name: str) -> None:
        """Remove a user and every refresh token of theirs; access tokens lapse soon after."""
        user = await self._managed_user(caller, name, "delete")
        if not await self.store.delete_user(caller.tenant, user.id):
            raise NotFound(f"user {user.id!r} not found")
        await self._audit(caller, "users.delete", user.name, [f"username={user.username}"])

    async def reset_password(self, caller: Principal, name: str, password: str) -> User:
        """Set a new password for someone else; clears the name's sign-in delay and signs
        every session out."""
        user = await self._managed_user(caller, name, "reset the password of")
        password_hash = await self.passwords.hash(check_policy(password, user.username))
        now = self.clock()
        stored = await self.store.set_password(
            caller.tenant,
            user.id,
            password_hash,
            now,
            change_required=_chosen_for_others(caller),
        )
        if stored is None:
            raise NotFound(f"user {user.id!r} not found")
        await self.store.revoke_user_refresh_tokens(user.id, now)
        self.throttle.succeeded(user.username)
        await self._audit(caller, "users.reset_password", user.name, ["password"])
        return stored

    async def change_password(
        self, caller: Principal, current_password: str, new_password: str, source: str = ""
    ) -> TokenPair:
        """The caller's own new password, given the current one; answers a fresh
        sign-in and signs every other session out.

        A wrong current password is INVALID_ARGUMENT (the caller is who they say; the
        token stays good) and counts as a failed sign-in of the name, so a stolen token
        cannot guess the password faster than sign-in can.
        """
        if caller.kind != "user":
            raise PermissionDenied("only a person who signed in has a password to change")
        _, user_id = _parse_name(caller.subject, "users")
        user = await self.store.get_user(ALL_TENANTS, user_id)
        if user is None or user.tenant != caller.tenant:
            raise Unauthenticated("this account no longer exists", reason=INVALID_TOKEN)
        if user.disabled:
            raise Unauthenticated("this account is disabled", reason=ACCOUNT_DISABLED)
        try:
            check_policy(new_password, user.username)
        except InvalidArgument as exc:
            raise exc.under("new_") from None
        now = self.clock()
        wrong = InvalidArgument.field(
            "current_password", "is not the password of this account, or tried too often"
        )
        if not self.throttle.may_try(user.username, "", now):
            await self.passwords.pause_like_a_check()
            raise wrong
        async with self.gate.slot(source):
            found = await self.store.credentials(ALL_TENANTS, user.username, user.tenant)
            current = next((c for c in found if c.user.id == user.id), None)
            matched = await self.passwords.verify(
                current.password_hash if current else None, current_password
            )
        if not matched:
            self.throttle.failed(user.username, "", now)
            raise wrong
        self.throttle.succeeded(user.username)
        if new_password == current_password:
            raise InvalidArgument.field("new_password", "must differ from the current password")
        password_hash = await self.passwords.hash(new_password)
        stored = await self.store.set_password(ALL_TENANTS, user.id, password_hash, now)
        if stored is None:
            raise Unauthenticated("this account no longer exists", reason=INVALID_TOKEN)
        await self.store.revoke_user_refresh_tokens(user.id, now)
        await self._audit(caller, "users.change_password", user.name, ["password"])
        return await self._issue(stored, now)

    async def disable_user(self, caller: Principal, name: str) -> User:
        """Stop a user signing in; their refresh tokens are revoked at once and their
        access tokens lapse within the access-token lifetime."""
        return await self._set_disabled(caller, name, True)

    async def enable_user(self, caller: Principal, name: str) -> User:
        return await self._set_disabled(caller, name, False)

    async def _set_disabled(self, caller: Principal, name: str, disabled: bool) -> User:
        user = await self._managed_user(caller, name, "disable" if disabled else "enable")
        now = self.clock()
        changed = await self.store.set_user_disabled(caller.tenant, user.id, disabled, now)
        if changed is None:
            raise NotFound(f"user {user.id!r} not found")
        if disabled:
            await self.store.revoke_user_refresh_tokens(user.id, now)
        await self._audit(caller, "users.disable" if disabled else "users.enable", user.name)
        return changed

    # Sign-in and tokens.

    async def login(
        self,
        username: str,
        password: str,
        source: str = "",
        tenant: str = "",
        time_left: float | None = None,
    ) -> TokenPair:
        """Tokens for a username and password; `source` is the client's address.

        Usernames are unique per tenant node, so a name may be qualified with its
        node, as `name@tenant-id` or with `tenant` (id or path). A bare name shared by
        several accounts is checked against each of them, and signs in only when
        exactly one password matches.

        Every failure gets one answer after the same work, whatever its cause: an
        unknown name, a wrong password, a name that stays ambiguous, or an attempt
        made before the growing delay of the name or of the source has passed
        (`SignInThrottle`). So nobody can lock an account, and no answer tells
        whether an account exists. `time_left` (seconds until the caller gives up)
        bounds the wait for a check, so a busy service answers before that.
        """
        now = self.clock()
        name, node = _sign_in_name(username, tenant)
        if not self.throttle.may_try(name, source, now):
            # Held back unchecked: as slow as a check, but no work and no place in the gate.
            await self.passwords.pause_like_a_check()
            raise Unauthenticated(_BAD_LOGIN, reason=INVALID_CREDENTIALS)
        async with self.gate.slot(source, self._wait_budget(time_left)):
            candidates = (
                await self.store.credentials(ALL_TENANTS, name, node)
                if _USERNAME.match(name) and node != _NO_NODE
                else []
            )
            matches = [
                c for c in candidates if await self.passwords.verify(c.password_hash, password)
            ]
            if not candidates:
                await self.passwords.verify(None, password)
        if len(matches) != 1:
            self.throttle.failed(name, source, now)
            raise Unauthenticated(_BAD_LOGIN, reason=INVALID_CREDENTIALS)
        (found,) = matches
        self.throttle.succeeded(name)
        if found.user.disabled:
            raise Unauthenticated("this account is disabled", reason=ACCOUNT_DISABLED)
        new_hash = None
        if found.password_hash and self.passwords.needs_rehash(found.password_hash):
            new_hash = await self.passwords.hash(password)
        await self.store.record_login(ALL_TENANTS, found.user.id, new_hash)
        if found.user.password_change_required:
            return await self._issue_password_change(found.user, now)
        return await self._issue(found.user, now)

    def _wait_budget(self, time_left: float | None) -> float | None:
        """How long a check may wait for its turn: what is left of the caller's time
        once two typical checks and the rest of the sign-in are paid for."""
        if time_left is None:
            return None
        return time_left - 2 * self.passwords.typical_seconds - _SIGN_IN_MARGIN_SECONDS

    async def refresh(self, refresh_token: str) -> TokenPair:
        """New tokens for a refresh token, which is used up.

        A token presented a second time means two parties hold it (one of them a
        thief): the whole family of that login is revoked.
        """
        now = self.clock()
        record = await self._refresh_record(refresh_token)
        if record.revoked:
            raise Unauthenticated("the refresh token has been revoked", reason=TOKEN_REVOKED)
        if record.used:
            await self.store.revoke_refresh_family(record.family_id, now)
            raise self._reused()
        if now >= record.expire_time:
            raise Unauthenticated("the refresh token has expired", reason=EXPIRED)
        user = await self.store.get_user(ALL_TENANTS, record.user_id)
        if user is None or user.disabled:
            await self.store.revoke_refresh_family(record.family_id, now)
            raise Unauthenticated("this account is disabled", reason=ACCOUNT_DISABLED)
        if user.password_change_required:
            await self.store.revoke_refresh_family(record.family_id, now)
            raise Unauthenticated(
                "the password must be changed first: sign in again", reason=PASSWORD_CHANGE_REQUIRED
            )
        return await self._issue(user, now, family_id=record.family_id, replaces=record.id)

    @staticmethod
    def _reused() -> Unauthenticated:
        return Unauthenticated(
            "the refresh token was already used; every session of that login is now signed out",
            reason=TOKEN_REUSED,
        )

    async def logout(self, refresh_token: str) -> None:
        """Revoke every refresh token of the login the token belongs to."""
        record = await self._refresh_record(refresh_token)
        await self.store.revoke_refresh_family(record.family_id, self.clock())

    async def _refresh_record(self, text: str) -> RefreshToken:
        token_id, secret = parse_refresh_token(text)
        record = await self.store.get_refresh_token(token_id)
        if record is None or not secret_matches(secret, record.token_hash):
            raise Unauthenticated("the refresh token is not valid", reason=INVALID_TOKEN)
        return record

    async def _issue(
        self,
        user: User,
        now: datetime,
        *,
        family_id: str | None = None,
        replaces: str | None = None,
    ) -> TokenPair:
        key = await self._signing_key(now)
        access = sign_access_token(
            key,
            user,
            granted_scopes(user.roles),
            now,
            self.access_token_lifetime,
            issuer=self.issuer,
            audience=self.audience,
        )
        token_id, secret, text = new_opaque(REFRESH_PREFIX)
        record = RefreshToken(
            id=token_id,
            family_id=family_id or token_id,
            user_id=user.id,
            tenant=user.tenant,
            token_hash=hash_secret(secret),
            create_time=now,
            expire_time=now + self.refresh_token_lifetime,
        )
        if replaces is None:
            await self.store.create_refresh_token(record)
        elif not await self.store.rotate_refresh_token(replaces, now, record):
            # Another refresh with the same token won the race: it is a reuse too.
            await self.store.revoke_refresh_family(record.family_id, now)
            raise self._reused()
        return TokenPair(access, text, int(self.access_token_lifetime.total_seconds()))

    async def _issue_password_change(self, user: User, now: datetime) -> TokenPair:
        """A short access token that can only change the password: no roles, one scope,
        no refresh token."""
        key = await self._signing_key(now)
        lifetime = min(self.access_token_lifetime, _PASSWORD_CHANGE_LIFETIME)
        access = sign_access_token(
            key,
            replace(user, roles=()),
            [PASSWORD_CHANGE_SCOPE],
            now,
            lifetime,
            issuer=self.issuer,
            audience=self.audience,
        )
        return TokenPair(access, "", int(lifetime.total_seconds()), password_change_required=True)

    async def _signing_key(self, now: datetime) -> SigningKey:
        """The active key (opened), replaced first when it is older than the rotation
        period or was stored in clear by an older version."""
        key = await self.store.active_signing_key()
        if key is not None and is_sealed(key) and now - key.create_time < self.key_rotation_period:
            return self._opened(key)
        stale = key is None or is_sealed(key)
        return self._opened(
            await self.store.rotate_signing_key(
                self._sealed(new_signing_key(now)),
                now,
                stale_before=now - self.key_rotation_period if stale else None,
                forget_before=now - self.access_token_lifetime,
            )
        )

    async def rotate_signing_key(self, caller: Principal | None = None) -> SigningKey:
        """Start signing with a new key now; the old one stays published until every
        token it signed has expired. A rotation someone asked for is audited."""
        now = self.clock()
        key = await self.store.rotate_signing_key(
            self._sealed(new_signing_key(now)),
            now,
            stale_before=None,
            forget_before=now - self.access_token_lifetime,
        )
        if caller is not None:
            await self._audit(caller, "signing_keys.rotate", f"signingKeys/{key.kid}")
        return self._opened(key)

    def _sealed(self, key: SigningKey) -> SigningKey:
        """The key as stored: its private half sealed like personal data (ADR 8), so a
        copy of the database or its WAL cannot sign tokens."""
        sealed = self.sealer.seal(key.private_pem, record=key.kid, field=_PRIVATE_KEY_FIELD)
        return replace(key, private_pem=sealed)

    def _opened(self, key: SigningKey) -> SigningKey:
        if not is_sealed(key):
            return key  # stored by an older version; replaced at the next sign-in
        pem = self.sealer.open(key.private_pem, record=key.kid, field=_PRIVATE_KEY_FIELD)
        return replace(key, private_pem=pem)

    async def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public keys that may have signed a token still unexpired (RFC 7517).

        Makes the first key if there is none, so a verifier can start before the
        first login.
        """
        now = self.clock()
        await self._signing_key(now)
        keys = await self.store.signing_keys(retired_after=now - self.access_token_lifetime)
        return {"keys": [key.public_jwk for key in keys]}

    # Apps and API keys.

    async def create_app(
        self,
        caller: Principal,
        tenant: str,
        display_name: str,
        scopes: Iterable[str],
        quota_per_minute: int,
    ) -> tuple[App, IssuedKey]:
        """An app of a node of the caller's subtree, with its first API key (shown once)."""
        _require(caller, APPS_WRITE)
        await self._own_tenant(caller, tenant)
        display = _display_name(display_name)
        wanted = check_scopes(scopes)
        if not wanted:
            raise InvalidArgument.field("scopes", "an app needs at least one scope")
        _no_escalation(caller, wanted, "this app")
        if quota_per_minute < 1:
            raise InvalidArgument.field("quota_per_minute", "must be at least 1")
        now = self.clock()
        app = App(
            id=new_id("app"),
            tenant=tenant,
            display_name=display,
            scopes=wanted,
            quota_per_minute=quota_per_minute,
            create_time=now,
            update_time=now,
        )
        key, issued = self._new_key(app, now)
        await self.store.create_app(caller.tenant, app, key)
        await self._audit(
            caller,
            "apps.create",
            app.name,
            [f"scopes={' '.join(sorted(wanted))}", f"quota_per_minute={quota_per_minute}"],
        )
        await self._audit(caller, "api_keys.create", issued.name)
        return app, issued

    @staticmethod
    def _new_key(app: App, now: datetime) -> tuple[ApiKey, IssuedKey]:
        key_id, secret, text = new_opaque(API_KEY_PREFIX)
        key = ApiKey(
            id=key_id,
            app_id=app.id,
            tenant=app.tenant,
            secret_hash=hash_secret(secret),
            create_time=now,
        )
        return key, IssuedKey(
            key_id=key_id, app_id=app.id, api_key=text, create_time=now, tenant=app.tenant
        )

    async def _visible_app(self, caller: Principal, name: str) -> App:
        hint, app_id = _parse_name(name, "apps")
        app = await self.store.get_app(caller.tenant, app_id)
        if (
            app is None
            or not caller.can_see(app.tenant)
            or (hint is not None and hint != app.tenant)
        ):
            raise NotFound(f"app {app_id[:64]!r} not found")
        return app

    async def get_app(self, caller: Principal, name: str) -> App:
        """An app by `tenants/{t}/apps/{id}` (t may be `-`) or `apps/{id}`."""
        _require(caller, EMPOWER_READ, APPS_WRITE)
        return await self._visible_app(caller, name)

    async def list_apps(
        self, caller: Principal, parent: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[App], str]:
        """Apps of a node and its subtree, oldest first."""
        _require(caller, EMPOWER_READ, APPS_WRITE)
        tenancy.validate_path(parent, "parent")
        if not caller.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        limit = paging.page_size(page_size)
        query = ("apps", parent)
        rows = await self.store.list_apps(
            caller.tenant, parent, limit + 1, _after(page_token, query)
        )
        return _page(rows, limit, query, lambda a: a.id)

    async def update_app_scopes(self, caller: Principal, name: str, scopes: Iterable[str]) -> App:
        """Replace an app's scopes (with scopes the caller holds); its keys keep working."""
        return await self.update_app(caller, name, scopes=scopes, field_prefix="")

    async def update_app(
        self,
        caller: Principal,
        name: str,
        display_name: str | None = None,
        scopes: Iterable[str] | None = None,
        quota_per_minute: int | None = None,
        *,
        field_prefix: str = "app.",
    ) -> App:
        """Change an app's name, scopes (only scopes the caller holds) or quota; its keys
        keep working and carry the new scopes within the gateway's key cache time."""
        _require(caller, APPS_WRITE)
        app = await self._visible_app(caller, name)
        fields: list[str] = []
        changed = app
        if display_name is not None:
            changed = replace(
                changed, display_name=_display_name(display_name, field_prefix + "display_name")
            )
            fields.append("display_name")
        if scopes is not None:
            wanted = check_scopes(scopes, field_prefix + "scopes")
            if not wanted:
                raise InvalidArgument.field(
                    field_prefix + "scopes", "an app needs at least one scope"
                )
            _no_escalation(caller, wanted, "these scopes")
            changed = replace(changed, scopes=wanted)
            fields.append(f"scopes={' '.join(sorted(wanted))}")
        if quota_per_minute is not None:
            if quota_per_minute < 1:
                raise InvalidArgument.field(field_prefix + "quota_per_minute", "must be at least 1")
            changed = replace(changed, quota_per_minute=quota_per_minute)
            fields.append(f"quota_per_minute={quota_per_minute}")
        if not fields:
            raise InvalidArgument.field("update_mask", "name at least one field to change")
        # Whoever changes an app hands out its scopes through its keys: hold them all.
        _no_escalation(caller, changed.scopes, "changing this app")
        stored = await self.store.update_app(
            caller.tenant, replace(changed, update_time=self.clock())
        )
        if stored is None:
            raise NotFound(f"app {app.id!r} not found")
        await self._audit(caller, "apps.update", stored.name, fields)
        return stored

    async def delete_app(self, caller: Principal, name: str) -> None:
        """Remove an app and its keys; gateways refuse the keys within their cache time."""
        _require(caller, APPS_WRITE)
        app = await self._visible_app(caller, name)
        if not await self.store.delete_app(caller.tenant, app.id):
            raise NotFound(f"app {app.id!r} not found")
        await self._audit(caller, "apps.delete", app.name)

    async def create_api_key(self, caller: Principal, app_name: str) -> IssuedKey:
        """Another key for an app (to rotate: make one, switch, revoke the old one).

        Making a key hands out the app's scopes, so the caller must hold them all.
        """
        _require(caller, APPS_WRITE)
        app = await self._visible_app(caller, app_name)
        _no_escalation(caller, app.scopes, "a key of this app")
        key, issued = self._new_key(app, self.clock())
        if not await self.store.add_api_key(caller.tenant, key, self.max_keys_per_app):
            raise FailedPrecondition(
                f"the app already has {self.max_keys_per_app} active keys; revoke one first"
            )
        await self._audit(caller, "api_keys.create", issued.name)
        return issued

    async def list_api_keys(self, caller: Principal, app_name: str) -> list[ApiKey]:
        """An app's keys, revoked ones included (without their hashes)."""
        _require(caller, EMPOWER_READ, APPS_WRITE)
        app = await self._visible_app(caller, app_name)
        return [_without_hash(k) for k in await self.store.list_api_keys(caller.tenant, app.id)]

    async def revoke_api_key(self, caller: Principal, app_name: str, key_id: str) -> ApiKey:
        """Revoke a key at once (revoking a revoked key changes nothing)."""
        _require(caller, APPS_WRITE)
        app = await self._visible_app(caller, app_name)
        key = await self.store.revoke_api_key(caller.tenant, app.id, key_id, self.clock())
        if key is None:
            raise NotFound(f"API key {key_id[:64]!r} not found")
        await self._audit(caller, "api_keys.revoke", key.name)
        return _without_hash(key)

    async def lookup_api_key(self, key_id: str) -> tuple[ApiKey, App]:
        """For the gateway: a key (with its hash, revoked or not) and its app.

        The gateway checks the presented text with `check_api_key`, which also refuses
        revoked keys, and may cache the answer briefly.
        """
        found = await self.store.api_key(ALL_TENANTS, key_id)
        if found is None:
            raise Unauthenticated(_BAD_API_KEY, reason=INVALID_TOKEN)
        return found

    async def authenticate_api_key(self, presented: str) -> tuple[Principal, App]:
        """The principal an API key stands for; UNAUTHENTICATED for any bad key."""
        key_id, _ = parse_api_key(presented)
        key, app = await self.lookup_api_key(key_id)
        if not check_api_key(presented, key):
            raise Unauthenticated(_BAD_API_KEY, reason=INVALID_TOKEN)
        return principal_for_app(app), app
