"""The gateway's credential checks: caching, revocation, key rotation, bad tokens."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.security.authenticator import Authenticator, KeyRecord, parse_api_key
from services.kit.errors import Unauthenticated

SECRET = "s3cr3t_with_underscores-and-dashes"


def _record(revoked: bool = False) -> KeyRecord:
    return KeyRecord(
        secret_sha256=hashlib.sha256(SECRET.encode()).hexdigest(),
        revoked=revoked,
        app="tenants/sh-a/apps/app1",
        tenant="sh/a",
        scopes=frozenset({"events:read"}),
        quota_per_minute=60,
    )


class KeyDirectory:
    """Answers key lookups from a dict and counts them (the identity service's role)."""

    def __init__(self) -> None:
        self.records: dict[str, KeyRecord] = {"k1": _record()}
        self.lookups = 0

    async def __call__(self, key_id: str) -> KeyRecord | None:
        self.lookups += 1
        await asyncio.sleep(0.01)
        return self.records.get(key_id)


class Signer:
    """Signs tokens like the identity service and publishes its JWKS."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.fetches = 0
        self.add("kid1")

    def add(self, kid: str) -> None:
        self.keys[kid] = Ed25519PrivateKey.generate()

    def token(self, kid: str, **claims: object) -> str:
        now = int(time.time())
        body = {
            "iss": "grassroots",
            "aud": "grassroots",
            "sub": "users/u1",
            "tenant": "sh/a",
            "scope": "events:read map:read",
            "roles": ["grid_worker"],
            "iat": now,
            "exp": now + 600,
            **claims,
        }
        return jwt.encode(body, self.keys[kid], algorithm="EdDSA", headers={"kid": kid})

    async def jwks(self) -> str:
        self.fetches += 1
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"})
        return json.dumps({"keys": keys})


@pytest.fixture
def parts():
    signer, keys = Signer(), KeyDirectory()
    return signer, keys, Authenticator(signer.jwks, keys, key_cache_seconds=0.2)


def test_api_key_secret_may_contain_underscores():
    assert parse_api_key(f"grk_k1_{SECRET}") == ("k1", SECRET)
    for bad in ("k1_x", "grk_", "grk_k1", "grk__x", "grk_k1_"):
        with pytest.raises(Unauthenticated):
            parse_api_key(bad)


async def test_key_becomes_an_app_principal_and_is_looked_up_once_per_window(parts):
    _, keys, auth = parts
    callers = await asyncio.gather(*(auth.from_api_key(f"grk_k1_{SECRET}") for _ in range(20)))
    assert {c.principal.subject for c in callers} == {"tenants/sh-a/apps/app1"}
    assert callers[0].principal.kind == "app" and callers[0].quota_per_minute == 60
    assert keys.lookups == 1  # twenty concurrent requests, one lookup


async def test_wrong_secret_and_unknown_key_are_refused(parts):
    _, _, auth = parts
    with pytest.raises(Unauthenticated):
        await auth.from_api_key("grk_k1_wrong-secret")
    with pytest.raises(Unauthenticated):
        await auth.from_api_key(f"grk_nope_{SECRET}")


async def test_revocation_is_seen_after_the_cache_window(parts):
    _, keys, auth = parts
    await auth.from_api_key(f"grk_k1_{SECRET}")
    keys.records["k1"] = _record(revoked=True)
    await auth.from_api_key(f"grk_k1_{SECRET}")  # still cached
    await asyncio.sleep(0.25)
    with pytest.raises(Unauthenticated, match="revoked"):
        await auth.from_api_key(f"grk_k1_{SECRET}")


async def test_access_token_becomes_a_user_principal_with_its_expiry(parts):
    signer, _, auth = parts
    token = signer.token("kid1")
    caller = await auth.from_access_token(token)
    assert caller.principal.kind == "user"
    assert caller.principal.scopes == {"events:read", "map:read"}
    assert (
        caller.principal.expires_at == jwt.decode(token, options={"verify_signature": False})["exp"]
    )


async def test_a_rotated_key_is_fetched_once_and_unknown_kids_do_not_flood(parts):
    signer, _, auth = parts
    await auth.from_access_token(signer.token("kid1"))
    assert signer.fetches == 1
    signer.add("kid2")
    await asyncio.sleep(1.05)  # refetches for unknown kids are at most once a second
    await auth.from_access_token(signer.token("kid2"))
    assert signer.fetches == 2
    for _ in range(5):
        with pytest.raises(Unauthenticated, match="unknown key"):
            await auth.from_access_token(_with_kid("kid9"))
    assert signer.fetches == 2  # the invented kid came within a second of the last fetch


def _with_kid(kid: str) -> str:
    key = Ed25519PrivateKey.generate()
    return jwt.encode(
        {
            "sub": "x",
            "tenant": "sh",
            "iss": "grassroots",
            "aud": "grassroots",
            "iat": 0,
            "exp": 2**31,
        },
        key,
        algorithm="EdDSA",
        headers={"kid": kid},
    )


@pytest.mark.parametrize(
    "mutate",
    ["expired", "forged", "alg_none", "wrong_audience", "garbage"],
)
async def test_bad_tokens_are_refused(parts, mutate):
    signer, _, auth = parts
    if mutate == "expired":
        token = signer.token("kid1", exp=int(time.time()) - 5, iat=int(time.time()) - 600)
    elif mutate == "forged":
        token = jwt.encode(
            jwt.decode(signer.token("kid1"), options={"verify_signature": False}),
            Ed25519PrivateKey.generate(),
            algorithm="EdDSA",
            headers={"kid": "kid1"},
        )
    elif mutate == "alg_none":
        claims = jwt.decode(signer.token("kid1"), options={"verify_signature": False})
        token = jwt.encode(claims, None, algorithm="none", headers={"kid": "kid1"})
    elif mutate == "wrong_audience":
        token = signer.token("kid1", aud="someone-else")
    else:
        token = "not.a.jwt"
    with pytest.raises(Unauthenticated):
        await auth.from_access_token(token)
