"""Access tokens (EdDSA JWTs), refresh tokens and API keys (opaque secrets).

The pure functions here are shared with the gateway, which verifies access tokens
against the JWKS the identity service publishes (`verify_access_token`,
`principal_from_claims`) and checks API keys against the record it looked up
(`parse_api_key`, `check_api_key`), without a call per request for tokens.

Opaque secrets (`grr_<id>_<secret>` refresh tokens, `grk_<id>_<secret>` API keys)
carry 256 random bits, so they are stored as a plain sha256: a slow hash protects
guessable secrets such as passwords and adds nothing against a 2^256 search, while
the gateway checks an API key on every request and needs that to be fast.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from services.empower.domain.model import ApiKey, App, SigningKey, User, b64url, b64url_decode
from services.kit import tenancy
from services.kit.errors import Unauthenticated
from services.kit.ids import ulid
from services.kit.principal import Principal

ISSUER = "grassroots"
AUDIENCE = "grassroots"
ALGORITHM = "EdDSA"
REFRESH_PREFIX = "grr"
API_KEY_PREFIX = "grk"
# Reasons the gateway can act on (ErrorInfo.reason).
EXPIRED = "TOKEN_EXPIRED"
UNKNOWN_KEY = "UNKNOWN_SIGNING_KEY"
INVALID_TOKEN = "INVALID_TOKEN"  # noqa: S105 (an error reason)

_REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud", "jti", "tenant", "kind"]
_OPAQUE_ID = re.compile(r"^[0-9a-z]{26}\Z")
_OPAQUE_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,128}\Z")
_PRINCIPAL_KINDS = {"user", "app", "service"}


def new_opaque_id() -> str:
    """A lower-case ULID: sortable, and free of "_" so the token's parts split cleanly."""
    return ulid().lower()


def new_signing_key(now: datetime) -> SigningKey:
    """A fresh Ed25519 key pair, active from `now`."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    raw_public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return SigningKey(
        kid=f"k{new_opaque_id()}", private_pem=pem, public_x=b64url(raw_public), create_time=now
    )


@lru_cache(maxsize=16)
def _private_key(pem: str) -> Ed25519PrivateKey:
    """Parsing a PEM per token would cost more than signing; keys change daily."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("signing keys must be Ed25519")
    return key


def sign_access_token(
    key: SigningKey,
    user: User,
    scopes: Iterable[str],
    now: datetime,
    lifetime: timedelta,
    *,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
) -> str:
    """A JWT naming the user, their tenant, roles and scopes, valid for `lifetime`."""
    issued = int(now.timestamp())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": user.subject,
        "tenant": user.tenant,
        "kind": "user",
        "roles": list(user.roles),
        "scope": " ".join(sorted(scopes)),
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": new_opaque_id(),
    }
    return jwt.encode(
        claims, _private_key(key.private_pem), algorithm=ALGORITHM, headers={"kid": key.kid}
    )


def key_id_of(token: str) -> str | None:
    """The `kid` a token names, read without verifying (to refresh a JWKS cache)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def _public_key(jwks: Mapping[str, Any], kid: str) -> Ed25519PublicKey:
    for jwk in jwks.get("keys", ()):
        if isinstance(jwk, Mapping) and jwk.get("kid") == kid:
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                break
            try:
                return Ed25519PublicKey.from_public_bytes(b64url_decode(str(jwk.get("x", ""))))
            except ValueError:
                break
    raise Unauthenticated("the access token is signed by an unknown key", reason=UNKNOWN_KEY)


def verify_access_token(
    token: str,
    jwks: Mapping[str, Any],
    *,
    now: datetime | None = None,
    leeway: timedelta = timedelta(0),
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
) -> dict[str, Any]:
    """The claims of a token signed by a key of `jwks`, unexpired, for this platform.

    Anything else (no or unknown kid, bad signature, another algorithm, issuer or
    audience, missing claims, expired) is UNAUTHENTICATED. `now` defaults to the
    current time; `leeway` allows for clock skew between machines.
    """
    kid = key_id_of(token)
    if kid is None:
        raise Unauthenticated("the access token is not a signed JWT", reason=INVALID_TOKEN)
    key = _public_key(jwks, kid)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={
                "require": _REQUIRED_CLAIMS,
                # Times are checked below against `now`, which tests inject.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated(
            f"the access token is not valid: {exc}", reason=INVALID_TOKEN
        ) from exc
    at = (now or datetime.now(UTC)).timestamp()
    slack = leeway.total_seconds()
    expires, issued = claims["exp"], claims["iat"]
    if not isinstance(expires, int | float) or not isinstance(issued, int | float):
        raise Unauthenticated("the access token's times are not numbers", reason=INVALID_TOKEN)
    if at >= expires + slack:
        raise Unauthenticated("the access token has expired", reason=EXPIRED)
    if issued > at + slack:
        raise Unauthenticated("the access token is issued in the future", reason=INVALID_TOKEN)
    not_before = claims.get("nbf")
    if isinstance(not_before, int | float) and not_before > at + slack:
        raise Unauthenticated("the access token is not valid yet", reason=INVALID_TOKEN)
    return claims


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """The caller a verified access token names (UNAUTHENTICATED if the claims are odd)."""
    subject, tenant, kind = claims.get("sub"), claims.get("tenant"), claims.get("kind", "user")
    roles, scope = claims.get("roles", []), claims.get("scope", "")
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated("the access token names no subject", reason=INVALID_TOKEN)
    if not isinstance(tenant, str) or not tenancy.is_valid_path(tenant):
        raise Unauthenticated("the access token names no valid tenant", reason=INVALID_TOKEN)
    if kind not in _PRINCIPAL_KINDS:
        raise Unauthenticated("the access token names no valid kind", reason=INVALID_TOKEN)
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthenticated("the access token's roles are not a list", reason=INVALID_TOKEN)
    if not isinstance(scope, str):
        raise Unauthenticated("the access token's scope is not a string", reason=INVALID_TOKEN)
    return Principal(
        subject=subject,
        tenant=tenant,
        kind=str(kind),
        roles=tuple(roles),
        scopes=frozenset(scope.split()),
    )


def hash_secret(secret: str) -> str:
    """sha256 hex of a high-entropy secret (see the module docstring for why not argon2)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_opaque(prefix: str) -> tuple[str, str, str]:
    """(id, secret, text) of a new `<prefix>_<id>_<secret>` token."""
    token_id = new_opaque_id()
    secret = secrets.token_urlsafe(32)
    return token_id, secret, f"{prefix}_{token_id}_{secret}"


def parse_opaque(prefix: str, text: str, what: str) -> tuple[str, str]:
    """(id, secret) of a `<prefix>_<id>_<secret>` token; UNAUTHENTICATED when malformed."""
    head, _, rest = text.partition("_")
    token_id, _, secret = rest.partition("_")
    if head != prefix or not _OPAQUE_ID.match(token_id) or not _OPAQUE_SECRET.match(secret):
        raise Unauthenticated(f"the {what} is malformed", reason=INVALID_TOKEN)
    return token_id, secret


def parse_api_key(text: str) -> tuple[str, str]:
    """(key id, secret) of a `grk_<key_id>_<secret>` API key."""
    return parse_opaque(API_KEY_PREFIX, text, "API key")


def parse_refresh_token(text: str) -> tuple[str, str]:
    """(token id, secret) of a `grr_<id>_<secret>` refresh token."""
    return parse_opaque(REFRESH_PREFIX, text, "refresh token")


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with a stored sha256 hex."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def check_api_key(presented: str, record: ApiKey) -> bool:
    """Whether the presented key text is this record's key and the key is not revoked."""
    try:
        key_id, secret = parse_api_key(presented)
    except Unauthenticated:
        return False
    if key_id != record.id or record.revoked:
        return False
    return secret_matches(secret, record.secret_hash)


def principal_for_app(app: App) -> Principal:
    """The caller an app's API key stands for: the app itself, in its tenant, with its scopes."""
    return Principal(
        subject=app.subject,
        tenant=app.tenant,
        kind="app",
        scopes=app.scopes,
        app=app.subject,
    )
