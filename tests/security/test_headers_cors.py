"""Security headers on every kind of answer, and CORS only for the listed origins."""

from __future__ import annotations

import pytest
from security_world import A, World

LISTED_ORIGIN = "http://localhost:8080"  # GatewaySettings.cors_origins by default
UNLISTED_ORIGINS = ("https://evil.example", "null", "http://localhost:8080.evil.example")


def _answers(world: World) -> dict[str, tuple[str, dict[str, str]]]:
    """(path, headers) of answers of every kind: public, 200, 401, 403, 404, docs."""
    return {
        "health": ("/healthz", {}),
        "signed-in read": (f"/v1/tenants/{A}/events?page_size=1", world.a_super.headers),
        "unauthenticated": (f"/v1/tenants/{A}/events", {}),
        "missing scope": (f"/v1/tenants/{A}/events", world.scopeless.headers),
        "not found": (f"/v1/tenants/{A}/people/pe_missing?purpose=x", world.a_super.headers),
        "open311 xml": ("/open311/v2/services.xml", {}),
        "ogc": ("/ogc", {}),
        "docs": ("/docs", {}),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "health",
        "signed-in read",
        "unauthenticated",
        "missing scope",
        "not found",
        "open311 xml",
        "ogc",
        "docs",
    ],
)
def test_every_answer_carries_the_security_headers(world, kind):
    path, headers = _answers(world)[kind]
    response = world.client.get(path, headers=headers)
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("X-Frame-Options") == "DENY"
    csp = response.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, csp
    # The docs too: Swagger UI is the gateway's own copy, so no other origin is allowed.
    assert "default-src 'self'" in csp and "script-src 'self';" in csp, csp
    assert response.headers.get("Referrer-Policy") == "no-referrer"
    assert "max-age=" in response.headers.get("Strict-Transport-Security", "")
    if path.startswith(("/v1/", "/open311/", "/ogc/")):
        assert "no-store" in response.headers.get("Cache-Control", ""), response.headers


def _preflight(world: World, origin: str, method: str = "GET") -> dict[str, str]:
    response = world.client.options(
        f"/v1/tenants/{A}/events",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization",
        },
    )
    return {k.lower(): v for k, v in response.headers.items()}


@pytest.mark.parametrize("origin", UNLISTED_ORIGINS)
def test_an_unlisted_origin_gets_no_cors_grant(world, origin):
    assert "access-control-allow-origin" not in _preflight(world, origin)
    simple = world.client.get(
        f"/v1/tenants/{A}/events", headers={"Origin": origin, **world.a_super.headers}
    )
    assert "access-control-allow-origin" not in {k.lower() for k in simple.headers}


def test_a_listed_origin_gets_exactly_its_own_grant(world):
    headers = _preflight(world, LISTED_ORIGIN)
    assert headers.get("access-control-allow-origin") == LISTED_ORIGIN
    assert "authorization" in headers.get("access-control-allow-headers", "").lower()
    assert headers.get("access-control-allow-credentials") != "true"
    simple = world.client.get(
        f"/v1/tenants/{A}/events", headers={"Origin": LISTED_ORIGIN, **world.a_super.headers}
    )
    assert simple.headers.get("access-control-allow-origin") == LISTED_ORIGIN
    # Methods outside the list are not granted.
    assert "PUT" not in _preflight(world, LISTED_ORIGIN, "PUT").get(
        "access-control-allow-methods", ""
    )
