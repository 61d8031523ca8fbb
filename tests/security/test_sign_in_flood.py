"""A flood of sign-ins is answered promptly, never with a gateway timeout.

The probe's attack: 70 wrong-password sign-ins, six at a time, from one address. Every
password check queued behind the others, each sign-in took longer than the gateway's
deadline, and the answers were {504: 51, 429: 15, 400: 4}; a right password sent
meanwhile got 504 too. Identity now lets a few checks run and a few wait, at most two
from one address, and refuses the rest at once (429 or 503 with Retry-After).
"""

from __future__ import annotations

import asyncio

import httpx
from security_world import World

ATTACKER = "127.0.0.6"
OWNER = "127.0.0.7"
GUESSES = 70
AT_ONCE = 6


def test_a_sign_in_flood_gets_no_504_and_the_owner_signs_in_meanwhile(world: World):
    owner = world.demo.account("district.auditor")

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response]]:
        attacker = httpx.AsyncClient(
            base_url=world.url,
            timeout=60,
            transport=httpx.AsyncHTTPTransport(local_address=ATTACKER),
        )
        person = httpx.AsyncClient(
            base_url=world.url, timeout=60, transport=httpx.AsyncHTTPTransport(local_address=OWNER)
        )
        at_once = asyncio.Semaphore(AT_ONCE)

        async def guess(i: int) -> httpx.Response:
            async with at_once:
                return await attacker.post(
                    "/v1/auth/token",
                    data={
                        "grant_type": "password",
                        "username": f"flood.{i}",
                        "password": f"wrong password {i}",
                    },
                )

        async def sign_in_as_owner() -> list[httpx.Response]:
            # A person's client honours Retry-After; it must get in within a few tries.
            answers: list[httpx.Response] = []
            await asyncio.sleep(0.5)  # the flood is under way
            for _ in range(5):
                answer = await person.post(
                    "/v1/auth/token",
                    data={
                        "grant_type": "password",
                        "username": owner.username,
                        "password": owner.password,
                    },
                )
                answers.append(answer)
                if answer.status_code != 429 and answer.status_code != 503:
                    break
                await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
            return answers

        async with attacker, person:
            flood = asyncio.gather(*(guess(i) for i in range(GUESSES)))
            tries = await sign_in_as_owner()
            return list(await flood), tries

    flood, tries = asyncio.run(scenario())
    codes = [r.status_code for r in flood]
    assert 504 not in codes, {c: codes.count(c) for c in set(codes)}
    assert set(codes) <= {400, 429, 503}, {c: codes.count(c) for c in set(codes)}
    for refused in (r for r in flood if r.status_code in (429, 503)):
        assert refused.headers.get("Retry-After", "").isdigit(), refused.headers
    # Refused at once rather than queued: the gate turned most of the flood away.
    assert codes.count(429) + codes.count(503) > GUESSES // 2, codes
    assert [t.status_code for t in tries][-1] == 200, [(t.status_code, t.text) for t in tries]
    assert all(t.status_code != 504 for t in tries)
    world.remember(tries[-1].json()["access_token"], tries[-1].json()["refresh_token"])
