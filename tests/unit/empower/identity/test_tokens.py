"""Access tokens: EdDSA JWTs the gateway verifies against the published keys."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.empower.domain.identity import IdentityDirectory
from services.empower.domain.tokens import (
    EXPIRED,
    INVALID_TOKEN,
    UNKNOWN_KEY,
    key_id_of,
    principal_from_claims,
    verify_access_token,
)
from services.kit.errors import Unauthenticated

from .conftest import GRID, PASSWORD, T0, XINGMING, add_user, cheap_hasher


def rejected(token: str, jwks: dict, **kwargs) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as info:
        verify_access_token(token, jwks, **kwargs)
    return info.value


def unverified(token: str) -> tuple[dict, dict]:
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return header, claims


@pytest.fixture
async def worker(tree):
    return await add_user(tree, GRID, "gw1", "grid_worker")


async def test_the_token_names_the_user_tenant_roles_and_scopes(tree, worker):
    token = (await tree.login("gw1", PASSWORD)).access_token
    header, claims = unverified(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == key_id_of(token)
    assert claims["iss"] == claims["aud"] == "grassroots"
    assert claims["sub"] == f"users/{worker.id}"
    assert (claims["tenant"], claims["kind"], claims["roles"]) == (GRID, "user", ["grid_worker"])
    assert claims["scope"] == (
        "command:dispatch command:read events:handle events:read events:write forms:write "
        "map:read people:read"
    )
    assert claims["iat"] == int(T0.timestamp())
    assert claims["exp"] - claims["iat"] == 15 * 60
    second = (await tree.login("gw1", PASSWORD)).access_token
    assert unverified(second)[1]["jti"] != claims["jti"]


async def test_the_jwks_publishes_ed25519_public_keys(tree):
    jwks = await tree.jwks()
    [key] = jwks["keys"]
    assert set(key) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert (key["kty"], key["crv"], key["use"], key["alg"]) == ("OKP", "Ed25519", "sig", "EdDSA")
    assert len(base64.urlsafe_b64decode(key["x"] + "=")) == 32
    assert await tree.jwks() == jwks  # one key until it is rotated


async def test_expired_tokens_are_refused(tree, worker, clock):
    token = (await tree.login("gw1", PASSWORD)).access_token
    jwks = await tree.jwks()
    verify_access_token(token, jwks, now=T0 + timedelta(minutes=14, seconds=59))
    assert rejected(token, jwks, now=T0 + timedelta(minutes=15)).reason == EXPIRED
    late = T0 + timedelta(minutes=15, seconds=10)
    verify_access_token(token, jwks, now=late, leeway=timedelta(seconds=30))
    # A token issued after the verifier's now is refused too.
    assert rejected(token, jwks, now=T0 - timedelta(minutes=5)).reason == INVALID_TOKEN


async def test_forged_and_tampered_tokens_are_refused(tree, worker, clock):
    token = (await tree.login("gw1", PASSWORD)).access_token
    jwks = await tree.jwks()
    header, claims = unverified(token)
    now = clock.now
    # Signed by another key under the published kid.
    impostor = jwt.encode(
        claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": header["kid"]}
    )
    assert rejected(impostor, jwks, now=now).reason == INVALID_TOKEN
    # The payload changed after signing: another tenant.
    head, _, signature = token.split(".")
    widened = dict(claims, tenant="sh")
    forged_body = base64.urlsafe_b64encode(json.dumps(widened).encode()).decode().rstrip("=")
    assert rejected(f"{head}.{forged_body}.{signature}", jwks, now=now).reason == INVALID_TOKEN
    # No signature at all, or a MAC keyed with the public key.
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]})
    assert rejected(unsigned, jwks, now=now).reason == INVALID_TOKEN
    public = base64.urlsafe_b64decode(jwks["keys"][0]["x"] + "=") * 2
    maced = jwt.encode(claims, public, algorithm="HS256", headers={"kid": header["kid"]})
    assert rejected(maced, jwks, now=now).reason == INVALID_TOKEN
    # A kid nobody published, and text that is not a JWT.
    assert rejected(token, {"keys": []}, now=now).reason == UNKNOWN_KEY
    assert rejected("not.a.token", jwks, now=now).reason == INVALID_TOKEN
    assert key_id_of("garbage") is None


async def test_tokens_for_another_issuer_or_audience_are_refused(store, clock, worker):
    elsewhere = IdentityDirectory(store, clock=clock, hasher=cheap_hasher(), audience="other")
    token = (await elsewhere.login("gw1", PASSWORD)).access_token
    assert rejected(token, await elsewhere.jwks(), now=clock.now).reason == INVALID_TOKEN
    verify_access_token(token, await elsewhere.jwks(), now=clock.now, audience="other")


async def test_a_rotated_out_key_verifies_while_published_and_not_after(tree, worker, clock):
    old_token = (await tree.login("gw1", PASSWORD)).access_token
    old_kid = key_id_of(old_token)
    clock.advance(minutes=1)
    new_key = await tree.rotate_signing_key()
    assert new_key.kid != old_kid and new_key.active
    new_token = (await tree.login("gw1", PASSWORD)).access_token
    assert key_id_of(new_token) == new_key.kid
    both = await tree.jwks()
    assert [k["kid"] for k in both["keys"]] == [new_key.kid, old_kid]
    verify_access_token(old_token, both, now=clock.now)
    # Published for one access-token lifetime after its retirement, then gone.
    clock.advance(minutes=14, seconds=59)
    assert old_kid in {k["kid"] for k in (await tree.jwks())["keys"]}
    clock.advance(seconds=1)
    later = await tree.jwks()
    assert [k["kid"] for k in later["keys"]] == [new_key.kid]
    assert rejected(old_token, later, now=T0).reason == UNKNOWN_KEY
    verify_access_token(new_token, later, now=T0 + timedelta(minutes=2))


async def test_the_active_key_rotates_itself_after_a_day(tree, worker, clock):
    first = key_id_of((await tree.login("gw1", PASSWORD)).access_token)
    clock.advance(hours=23, minutes=59)
    assert key_id_of((await tree.login("gw1", PASSWORD)).access_token) == first
    clock.advance(minutes=1)
    second = key_id_of((await tree.login("gw1", PASSWORD)).access_token)
    assert second != first
    assert [k["kid"] for k in (await tree.jwks())["keys"]] == [second, first]


async def test_replicas_rotating_at_once_agree_on_one_key(store, clock, tree):
    first = (await tree.jwks())["keys"][0]["kid"]
    replicas = [IdentityDirectory(store, clock=clock, hasher=cheap_hasher()) for _ in range(4)]
    clock.advance(hours=24)
    answers = await asyncio.gather(*(r.jwks() for r in replicas))
    kids = {tuple(k["kid"] for k in a["keys"]) for a in answers}
    assert len(kids) == 1
    [(new, old)] = kids
    assert old == first and new != first


def test_principal_from_claims_refuses_odd_claims():
    good = {"sub": "users/u1", "tenant": XINGMING, "kind": "user", "roles": ["resident"]}
    principal = principal_from_claims(dict(good, scope="events:read events:write"))
    assert principal.scopes == {"events:read", "events:write"}
    assert principal.can_see(XINGMING + "/g01") and not principal.can_see("sh/jiading/anting")
    for odd in (
        {"sub": ""},
        {"tenant": "Sh/../x"},
        {"kind": "root"},
        {"roles": "resident"},
        {"scope": ["events:read"]},
    ):
        with pytest.raises(Unauthenticated):
            principal_from_claims(dict(good, **odd))
