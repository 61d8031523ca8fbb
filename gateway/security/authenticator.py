"""Who is calling: an access token (people) or an API key (apps), turned into a principal.

Both paths are built to cost microseconds on the hot path:

* access tokens are verified against the identity service's JWKS, which is cached
  and refetched when a token names an unknown key id (rotation) or every few
  minutes; a verified token is remembered until it expires;
* API keys are looked up by key id in the identity service and the answer is kept
  for `key_cache_seconds` (2 s by default): a revoked key is refused by every
  replica within that time, without a shared cache or a broadcast. The secret is
  compared against the stored SHA-256 in constant time on every request. The cache
  holds at most `key_cache_size` key ids (answers for unknown ids included), the
  least recently used going first, so invented key ids cannot grow it without bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt

from services.kit.errors import Unauthenticated
from services.kit.principal import Principal

API_KEY_PREFIX = "grk_"
ISSUER = "grassroots"
AUDIENCE = "grassroots"
_TOKEN_CACHE_LIMIT = 50_000


@dataclass(frozen=True)
class KeyRecord:
    """What the identity service says about one API key id."""

    secret_sha256: str
    revoked: bool
    app: str
    tenant: str
    scopes: frozenset[str]
    quota_per_minute: int


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the principal, and the quota that limits it."""

    principal: Principal
    quota_per_minute: int | None  # None: the default for people


JwksSource = Callable[[], Awaitable[str]]
KeySource = Callable[[str], Awaitable[KeyRecord | None]]


def parse_api_key(text: str) -> tuple[str, str]:
    """`grk_<key id>_<secret>` -> (key id, secret); the secret may contain '_'."""
    if not text.startswith(API_KEY_PREFIX):
        raise Unauthenticated("the API key is malformed")
    key_id, sep, secret = text[len(API_KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret or len(text) > 256:
        raise Unauthenticated("the API key is malformed")
    return key_id, secret


class Authenticator:
    """Turns request credentials into a `Caller`, or raises Unauthenticated."""

    def __init__(
        self,
        jwks_source: JwksSource,
        key_source: KeySource,
        *,
        key_cache_seconds: float = 2.0,
        key_cache_size: int = 10_000,
        jwks_refresh_seconds: float = 300.0,
        principal_ttl_seconds: float = 300.0,
    ) -> None:
        self._jwks_source = jwks_source
        self._key_source = key_source
        self.key_cache_seconds = key_cache_seconds
        self.key_cache_size = key_cache_size
        self.jwks_refresh_seconds = jwks_refresh_seconds
        self.principal_ttl_seconds = principal_ttl_seconds
        self._jwks: dict[str, Any] = {}
        self._jwks_fetched = 0.0
        self._jwks_lock = asyncio.Lock()
        self._tokens: dict[str, Caller] = {}
        self._keys: OrderedDict[str, tuple[float, KeyRecord | None, Caller | None]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[KeyRecord | None]] = {}

    # -- access tokens -------------------------------------------------------------

    async def from_access_token(self, token: str) -> Caller:
        now = time.time()
        known = self._tokens.get(token)
        if known is not None and known.principal.expires_at > now:
            return known
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the access token is not a JWT") from exc
        key = await self._signing_key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "tenant"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the access token has expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the access token is not valid") from exc
        try:
            principal = Principal(
                subject=str(claims["sub"]),
                tenant=str(claims["tenant"]),
                kind="user",
                roles=tuple(claims.get("roles", ())),
                scopes=frozenset(str(claims.get("scope", "")).split()),
                expires_at=float(claims["exp"]),
            )
        except (TypeError, ValueError) as exc:
            raise Unauthenticated("the access token's claims are malformed") from exc
        caller = Caller(principal, None)
        if len(self._tokens) >= _TOKEN_CACHE_LIMIT:
            self._tokens.clear()
        self._tokens[token] = caller
        return caller

    async def _signing_key(self, kid: str) -> Any:
        stale = time.monotonic() - self._jwks_fetched > self.jwks_refresh_seconds
        if kid not in self._jwks or stale:
            async with self._jwks_lock:
                stale = time.monotonic() - self._jwks_fetched > self.jwks_refresh_seconds
                # An unknown kid refetches at most once a second: a flood of tokens
                # with invented key ids cannot turn into a flood of JWKS calls.
                recently = time.monotonic() - self._jwks_fetched < 1.0
                if stale or (kid not in self._jwks and not recently):
                    await self._refresh_jwks()
        key = self._jwks.get(kid)
        if key is None:
            raise Unauthenticated("the access token is signed with an unknown key")
        return key

    async def _refresh_jwks(self) -> None:
        text = await self._jwks_source()
        keys: dict[str, Any] = {}
        for entry in json.loads(text).get("keys", []):
            keys[entry["kid"]] = jwt.PyJWK.from_dict(entry).key
        self._jwks = keys
        self._jwks_fetched = time.monotonic()

    # -- API keys --------------------------------------------------------------------

    async def from_api_key(self, text: str) -> Caller:
        key_id, secret = parse_api_key(text)
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is None or now - cached[0] > self.key_cache_seconds:
            record = await self._lookup(key_id)
            caller = self._caller_for(record) if record is not None else None
            cached = (time.monotonic(), record, caller)
            self._remember_key(key_id, cached)
        else:
            self._keys.move_to_end(key_id)
        _, record, caller = cached
        if record is None or caller is None:
            raise Unauthenticated("the API key is not known")
        presented = hashlib.sha256(secret.encode()).hexdigest()
        if not hmac.compare_digest(presented, record.secret_sha256):
            raise Unauthenticated("the API key is not known")
        if record.revoked:
            raise Unauthenticated("the API key has been revoked")
        if caller.principal.expires_at - time.time() < self.principal_ttl_seconds / 2:
            caller = self._caller_for(record)
            self._keys[key_id] = (cached[0], record, caller)
        return caller

    def _remember_key(
        self, key_id: str, entry: tuple[float, KeyRecord | None, Caller | None]
    ) -> None:
        self._keys[key_id] = entry
        self._keys.move_to_end(key_id)
        while len(self._keys) > self.key_cache_size:
            self._keys.popitem(last=False)

    @property
    def cached_key_ids(self) -> int:
        """How many key ids the cache holds now."""
        return len(self._keys)

    def _caller_for(self, record: KeyRecord) -> Caller:
        principal = Principal(
            subject=record.app,
            tenant=record.tenant,
            kind="app",
            scopes=record.scopes,
            app=record.app,
            expires_at=time.time() + self.principal_ttl_seconds,
        )
        return Caller(principal, record.quota_per_minute)

    async def _lookup(self, key_id: str) -> KeyRecord | None:
        """One identity call per key id at a time, however many requests wait for it."""
        pending = self._inflight.get(key_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._inflight[key_id] = future
        try:
            record = await self._key_source(key_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: the waiters re-raise it themselves
            raise
        else:
            future.set_result(record)
            return record
        finally:
            del self._inflight[key_id]
