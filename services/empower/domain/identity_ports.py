"""What the identity domain needs from its store, as an interface.

Methods that read or write rows of a tenant take a `subtree`: the caller's tenant path,
or `ALL_TENANTS` for work done for the platform itself (login by username, refresh,
API key lookups by the gateway). Stores filter by the subtree in their
queries; the PostgreSQL store also runs the transaction under that subtree, so
row-level security hides every row outside it even if a filter were forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.empower.domain.model import (
    ApiKey,
    App,
    Credentials,
    RefreshToken,
    SigningKey,
    Tenant,
    User,
)
from services.kit.principal import Principal


class ActionAudit(Protocol):
    """Where administrative actions are recorded: the people service's hash-chained
    audit log (`AuditLog.record_action`), one chain for reads and actions."""

    async def record_action(
        self, caller: Principal, action: str, records: Sequence[str], fields: Sequence[str]
    ) -> object: ...


class IdentityStore(Protocol):
    # The tenant tree. Nodes are visible to callers above and below them (a village
    # sees its town), which no subtree policy expresses, so the domain decides.

    async def create_tenant(self, tenant: Tenant) -> None:
        """Store a node; ALREADY_EXISTS when its path is taken."""
        ...

    async def get_tenant(self, path: str) -> Tenant | None: ...

    async def update_tenant(self, tenant: Tenant) -> Tenant | None:
        """Store a node's display name and admin code; None when it is gone."""
        ...

    async def delete_tenant(self, path: str) -> bool:
        """Remove a node, atomically checking it is empty (FAILED_PRECONDITION when it
        has children, users or apps); False when there is no such node."""
        ...

    async def list_child_tenants(
        self,
        parent: str,
        subtree: str,
        ancestors: Sequence[str],
        limit: int,
        after: str | None,
    ) -> list[Tenant]:
        """Children of `parent` under `subtree` or among `ancestors`, by path."""
        ...

    # Users.

    async def create_user(self, subtree: str, user: User, password_hash: str | None) -> None:
        """Store a user; ALREADY_EXISTS when the username is taken at the user's node
        (names are unique per node, so another node's names are never revealed)."""
        ...

    async def get_user(self, subtree: str, user_id: str) -> User | None: ...

    async def list_users(
        self, subtree: str, root: str, limit: int, after: str | None
    ) -> list[User]:
        """Users in the subtree of `root` (within `subtree`), by id, after the id `after`."""
        ...

    async def set_user_disabled(
        self, subtree: str, user_id: str, disabled: bool, now: datetime
    ) -> User | None:
        """Disable or enable a user; None when there is no such user in the subtree."""
        ...

    async def update_user(self, subtree: str, user: User) -> User | None:
        """Store a user's display name, kind, roles and update time; None when the
        user is not in the subtree."""
        ...

    async def delete_user(self, subtree: str, user_id: str) -> bool:
        """Remove a user with their refresh tokens; False when not in the subtree."""
        ...

    async def set_password(
        self,
        subtree: str,
        user_id: str,
        password_hash: str,
        now: datetime,
        *,
        change_required: bool = False,
    ) -> User | None:
        """Replace the password hash; `change_required` when someone else chose it."""
        ...

    async def credentials(
        self, subtree: str, username: str, tenant: str | None = None
    ) -> list[Credentials]:
        """The users with this username (at the node `tenant`, if given) and their
        password hashes, by id, at most `MAX_SIGN_IN_MATCHES` of them."""
        ...

    async def record_login(self, subtree: str, user_id: str, new_hash: str | None) -> None:
        """A successful login: store `new_hash` (a stronger hash) if given."""
        ...

    # Refresh tokens (always looked up for the platform: the caller is their holder).

    async def create_refresh_token(self, token: RefreshToken) -> None: ...

    async def get_refresh_token(self, token_id: str) -> RefreshToken | None: ...

    async def rotate_refresh_token(
        self, used_id: str, now: datetime, successor: RefreshToken
    ) -> bool:
        """Mark `used_id` used and store its successor, atomically; False (and nothing
        stored) when it was already used or revoked meanwhile."""
        ...

    async def revoke_refresh_family(self, family_id: str, now: datetime) -> None: ...

    async def revoke_user_refresh_tokens(self, user_id: str, now: datetime) -> None: ...

    # Signing keys of access tokens (platform-wide).

    async def active_signing_key(self) -> SigningKey | None: ...

    async def rotate_signing_key(
        self,
        candidate: SigningKey,
        now: datetime,
        *,
        stale_before: datetime | None,
        forget_before: datetime,
    ) -> SigningKey:
        """Make `candidate` the active key, retiring the current one, unless the
        current one was created after `stale_before` (None: rotate anyway).
        Deletes keys retired before `forget_before`. Returns the active key; replicas
        racing to rotate agree on one."""
        ...

    async def signing_keys(self, retired_after: datetime) -> list[SigningKey]:
        """The active key and the keys retired after `retired_after`, newest first."""
        ...

    # Apps and their API keys.

    async def create_app(self, subtree: str, app: App, key: ApiKey) -> None:
        """Store an app with its first key, in one transaction."""
        ...

    async def get_app(self, subtree: str, app_id: str) -> App | None: ...

    async def list_apps(self, subtree: str, root: str, limit: int, after: str | None) -> list[App]:
        """Apps in the subtree of `root` (within `subtree`), by id, after the id `after`."""
        ...

    async def update_app(self, subtree: str, app: App) -> App | None:
        """Store an app's display name, scopes, quota and update time."""
        ...

    async def delete_app(self, subtree: str, app_id: str) -> bool:
        """Remove an app with all its keys; False when not in the subtree."""
        ...

    async def add_api_key(self, subtree: str, key: ApiKey, max_active: int) -> bool:
        """Store a key unless its app already has `max_active` unrevoked keys (False)."""
        ...

    async def list_api_keys(self, subtree: str, app_id: str) -> list[ApiKey]:
        """The app's keys, revoked ones included, oldest first."""
        ...

    async def revoke_api_key(
        self, subtree: str, app_id: str, key_id: str, now: datetime
    ) -> ApiKey | None:
        """Revoke a key of the app (a revoked key keeps its first revoke time)."""
        ...

    async def api_key(self, subtree: str, key_id: str) -> tuple[ApiKey, App] | None:
        """A key, revoked or not, with its app."""
        ...
