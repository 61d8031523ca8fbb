"""The records of the identity part of empower: tenants, users, apps and their secrets.

Secrets are stored only as hashes, and the private halves of signing keys sealed.
`Credentials` (a user with the password hash) and the hash fields of `ApiKey` and
`RefreshToken` exist for the domain and the stores; the service never hands a
password hash to a caller.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.empower.domain.roles import granted_scopes
from services.kit import tenancy


class Level(StrEnum):
    """Levels of the administrative tree, from the top."""

    CITY = "city"
    DISTRICT = "district"
    TOWN = "town"
    VILLAGE = "village"
    GRID = "grid"

    @property
    def depth(self) -> int:
        """1 for a city, 5 for a grid: the number of segments of a node's path."""
        return _LEVEL_ORDER.index(self) + 1

    @property
    def child(self) -> Level | None:
        """The level directly below this one (None below a grid)."""
        index = _LEVEL_ORDER.index(self) + 1
        return _LEVEL_ORDER[index] if index < len(_LEVEL_ORDER) else None


_LEVEL_ORDER: tuple[Level, ...] = tuple(Level)


class UserKind(StrEnum):
    STAFF = "staff"
    GRID_WORKER = "grid_worker"
    VOLUNTEER = "volunteer"
    RESIDENT = "resident"


@dataclass(frozen=True)
class Tenant:
    """A node of the administrative tree."""

    path: str
    display_name: str
    level: Level
    admin_code: str
    create_time: datetime

    @property
    def name(self) -> str:
        return tenancy.tenant_name(self.path)

    @property
    def parent(self) -> str:
        """The parent's path; "" for a root city."""
        return self.path.rpartition("/")[0]


@dataclass(frozen=True)
class User:
    """A person who signs in. Roles decide the scopes of the tokens issued to them."""

    id: str
    tenant: str
    username: str
    display_name: str
    kind: UserKind
    roles: tuple[str, ...]
    create_time: datetime
    update_time: datetime
    disabled: bool = False
    # Set when someone else chose the password: the account must change it first.
    password_change_required: bool = False

    @property
    def name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/users/{self.id}"

    @property
    def subject(self) -> str:
        """The principal subject and JWT `sub` of this user."""
        return f"users/{self.id}"

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes the user's roles grant today (what their next token carries)."""
        return granted_scopes(self.roles)


@dataclass(frozen=True)
class Credentials:
    """A user with what login needs; never leaves the domain."""

    user: User
    password_hash: str | None = field(repr=False)


@dataclass(frozen=True)
class App:
    """A program of a village developer, calling with API keys under fixed scopes."""

    id: str
    tenant: str
    display_name: str
    scopes: frozenset[str]
    quota_per_minute: int
    create_time: datetime
    update_time: datetime

    @property
    def name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/apps/{self.id}"

    @property
    def subject(self) -> str:
        """The principal subject (and `app`) of calls made with this app's keys."""
        return f"apps/{self.id}"


@dataclass(frozen=True)
class ApiKey:
    """One key of an app. `secret_hash` is the sha256 hex of the secret part."""

    id: str
    app_id: str
    tenant: str
    secret_hash: str = field(repr=False)
    create_time: datetime
    revoke_time: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None

    @property
    def name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/apps/{self.app_id}/apiKeys/{self.id}"


@dataclass(frozen=True)
class IssuedKey:
    """A new API key as shown once to its creator; only its hash is kept."""

    key_id: str
    app_id: str
    api_key: str = field(repr=False)
    create_time: datetime
    tenant: str

    @property
    def name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/apps/{self.app_id}/apiKeys/{self.key_id}"


@dataclass(frozen=True)
class RefreshToken:
    """One refresh token of a login's family; `token_hash` is the sha256 hex of the secret.

    Every refresh marks the presented token used and issues the next one of the
    same family, so a stolen token that is replayed gives itself away.
    """

    id: str
    family_id: str
    user_id: str
    tenant: str
    token_hash: str = field(repr=False)
    create_time: datetime
    expire_time: datetime
    use_time: datetime | None = None
    revoke_time: datetime | None = None

    @property
    def used(self) -> bool:
        return self.use_time is not None

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 key that signs access tokens. Active while `retire_time` is None."""

    kid: str
    private_pem: str = field(repr=False)
    public_x: str
    create_time: datetime
    retire_time: datetime | None = None

    @property
    def active(self) -> bool:
        return self.retire_time is None

    @property
    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK (RFC 8037), as published in the JWKS."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self.public_x,
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        }


@dataclass(frozen=True)
class TokenPair:
    """What a login or a refresh answers (the OAuth 2 token response fields)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 (the OAuth 2 token type)
    # The access token only changes the password (no refresh token is issued).
    password_change_required: bool = False


def b64url(raw: bytes) -> str:
    """Unpadded base64url, as JOSE writes binary values."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
