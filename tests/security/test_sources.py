"""Limits keyed by the caller's address hold: X-Forwarded-For is believed only from a
configured proxy, sign-in is slowed (never locked) per account and per address, and a
flood of invented credentials is refused before it costs identity lookups.

The tests run against a gateway replica of their own in front of the suite's
components: its buckets are in its own memory (fresh for this module), it trusts
one proxy address (127.0.0.2), and it allows 60 anonymous calls and 60 failed
authentications a minute per address. Loopback is a /8 on Linux, so a client bound
to 127.0.0.2 or 127.0.0.3 is a distinct source.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from security_world import SIGN_IN_FIRST_DELAY_SECONDS, A, World, expect

from devstack.stack import Stack, free_port
from gateway.security.ratelimit import Limit

PROXY = "127.0.0.2"
PER_MINUTE = 60
BURST = Limit.per_minute_with_burst("", PER_MINUTE).burst
PASSWORD = "a-long-first-password"
# What a failed sign-in answers: RFC 6749's invalid_grant.
FAILED_SIGN_IN = 400


@pytest.fixture(scope="module")
def replica(world: World) -> Iterator[str]:
    config = dataclasses.replace(
        world.stack.config,
        gateway_port=free_port(),
        extra_env={
            **world.stack.config.extra_env,
            "GRASSROOTS_GATEWAY_REDIS_URL": "",
            "GRASSROOTS_GATEWAY_TRUSTED_PROXIES": f'["{PROXY}/32"]',
            "GRASSROOTS_GATEWAY_ANONYMOUS_REQUESTS_PER_MINUTE": str(PER_MINUTE),
            "GRASSROOTS_GATEWAY_UNAUTHENTICATED_REQUESTS_PER_MINUTE": str(PER_MINUTE),
            # A burst of sign-ins checks its passwords at once; on a loaded machine
            # that outlasts the usual deadline, which is not what these tests are about.
            "GRASSROOTS_GATEWAY_CALL_TIMEOUT_SECONDS": "60",
        },
    )
    gateway = Stack(config)
    gateway.start("gateway")
    try:
        deadline = time.monotonic() + 30
        while not gateway.gateway_ready():
            gateway.check_alive()
            assert time.monotonic() < deadline, "the replica did not become ready"
            time.sleep(0.2)
        yield config.gateway_url
    finally:
        gateway.stop_all()


def client_from(url: str, address: str) -> httpx.Client:
    return httpx.Client(
        base_url=url, timeout=15, transport=httpx.HTTPTransport(local_address=address)
    )


def sign_in(client: httpx.Client, username: str, password: str, **headers: str) -> httpx.Response:
    return client.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
        headers=headers,
    )


def test_forwarded_for_from_a_peer_that_is_no_proxy_does_not_escape_the_sign_in_limit(
    replica,
):
    # The probe's attack: a fresh X-Forwarded-For per call from 127.0.0.1 (which uvicorn
    # believes by default). 70 calls against a bucket of 60 a minute, sent together so
    # that slow password checks on a loaded machine cannot stretch them over the minute
    # the bucket needs to refill.
    async def flood() -> list[int]:
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.1")
        async with httpx.AsyncClient(base_url=replica, timeout=120, transport=transport) as client:
            calls = [
                client.post(
                    "/v1/auth/token",
                    data={"grant_type": "password", "username": "nobody.here", "password": "x1"},
                    headers={"X-Forwarded-For": f"198.51.100.{i}"},
                )
                for i in range(70)
            ]
            return [reached_identity(response) for response in await asyncio.gather(*calls)]

    started = time.monotonic()
    answers = asyncio.run(flood())
    refilled = (time.monotonic() - started) * PER_MINUTE / 60
    passed = answers.count(True)
    # The bucket's burst gets through, and what follows is the bucket's rate, not the
    # attacker's (each invented address would otherwise have a bucket of its own).
    # Identity answers what passed: a failed sign-in, or a refusal of its own when too
    # many checks from the one address are queued (test_sign_in_flood.py).
    assert BURST <= passed <= BURST + refilled + 1, (answers, refilled)


def reached_identity(response: httpx.Response) -> bool:
    """Whether a sign-in passed the gateway's bucket (False: the bucket refused it)."""
    if response.status_code == FAILED_SIGN_IN:
        return True
    assert response.status_code in (429, 503), response.text
    return bool(response.json()["error"]["reason"] == "SIGN_IN_BUSY")


def test_a_configured_proxy_speaks_for_its_clients(replica):
    with client_from(replica, PROXY) as proxy:
        first = [
            proxy.get(
                "/.well-known/jwks.json", headers={"X-Forwarded-For": "203.0.113.10"}
            ).status_code
            for _ in range(BURST + 3)
        ]
        assert first[:BURST] == [200] * BURST and first[-1] == 429, first
        # Another client behind the same proxy has its own bucket; a client cannot
        # slip in front of the proxy's entry by prepending addresses.
        other = proxy.get("/.well-known/jwks.json", headers={"X-Forwarded-For": "203.0.113.11"})
        assert other.status_code == 200, other.text
        spoofed = proxy.get(
            "/.well-known/jwks.json", headers={"X-Forwarded-For": "203.0.113.99, 203.0.113.10"}
        )
        assert spoofed.status_code == 429


@pytest.fixture(scope="module")
def victim(world: World) -> str:
    """A user of village A nobody else signs in as."""
    username = f"victim.{secrets.token_hex(4)}"
    body = {
        "username": username,
        "display_name": "Throttle victim",
        "kind": "staff",
        "roles": ["grid_worker"],
        "password": PASSWORD,
    }
    expect(
        world.client.post(f"/v1/tenants/{A}/users", json=body, headers=world.a_super.headers),
        201,
    )
    world.remember(PASSWORD)
    return username


def _without_request_id(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, re.sub(r'"request_id":\s*"[^"]*"', "", response.text)


def test_nobody_can_lock_an_account_and_the_delay_looks_like_any_failure(replica, victim):
    """Wrong passwords from several addresses used to lock the owner out for 15 minutes,
    with an answer naming the lock. Now the owner waits seconds."""
    with client_from(replica, PROXY) as proxy:

        def attempt(name: str, password: str, source: str) -> httpx.Response:
            return sign_in(proxy, name, password, **{"X-Forwarded-For": source})

        # Right after a run of failures the name waits (SIGN_IN_FIRST_DELAY_SECONDS on
        # this stack), and the right password gets the answer an unknown name gets:
        # three free failures, one that starts the wait, then the owner.
        for i in range(4):
            assert (
                attempt(victim, "wrong password", f"198.51.100.{i}").status_code == FAILED_SIGN_IN
            )
        held = attempt(victim, PASSWORD, "203.0.113.20")
        unknown = attempt("no.such.person", "wrong password", "203.0.113.21")
        assert _without_request_id(held) == _without_request_id(unknown)
        assert held.status_code == FAILED_SIGN_IN and "lock" not in held.text.lower()
        assert held.json()["error"] == "invalid_grant"
        # No lock: the owner is in once the wait has passed (the old lock lasted 15
        # minutes), however long the attempts above took.
        started = time.monotonic()
        while (owner := attempt(victim, PASSWORD, "203.0.113.20")).status_code != 200:
            assert time.monotonic() - started < 3 * SIGN_IN_FIRST_DELAY_SECONDS, owner.text
            time.sleep(1)


def test_a_flood_of_invented_keys_is_refused_before_any_lookup(world, replica):
    def lookups() -> float:
        port = world.stack.config.metrics_ports["empower"]
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("grpc_server_handled_total{")
            and 'grpc_method="LookupApiKey"' in line
        )

    before = lookups()
    started = time.monotonic()
    with client_from(replica, "127.0.0.3") as attacker:
        codes = [
            attacker.get(
                "/v1/me",
                headers={"X-API-Key": f"grk_{secrets.token_hex(13)}_{secrets.token_urlsafe(32)}"},
            ).status_code
            for _ in range(400)
        ]
        refilled = (time.monotonic() - started) * PER_MINUTE / 60
        assert codes[:BURST] == [401] * BURST, codes[: BURST + 2]
        assert set(codes) == {401, 429}, codes
        # What gets through is the bucket's rate, not the attacker's.
        assert codes.count(401) <= BURST + refilled + 1, (codes.count(401), refilled)
        # Refused before authentication: even a good key from that address waits...
        assert attacker.get("/v1/me", headers=world.fuzzer.headers).status_code == 429
    assert lookups() - before <= codes.count(401)
    # ... while other addresses are served.
    with client_from(replica, "127.0.0.4") as other:
        assert other.get("/v1/me", headers=world.fuzzer.headers).status_code == 200
