"""The events routers are matched first (the most called routes, and every route tried
before the right one costs each request); that changes no answer as long as no events
route takes a path meant for another route."""

from __future__ import annotations

import re
from collections.abc import Iterator

from starlette.routing import BaseRoute, Match

from gateway.app import create_app
from gateway.routers import events
from gateway.settings import GatewaySettings

COMPONENTS = ("map", "events", "command", "twin", "empower")


def _leaves(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, in the order the app tries them (included routers opened up)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaves(inner.routes)
        else:
            yield route


def _scope(path: str, method: str) -> dict[str, object]:
    sample = re.sub(r"\{[^}]+\}", "abc", path)
    return {"type": "http", "path": sample, "method": method, "root_path": ""}


def test_events_routes_come_first_and_take_no_other_routes_paths() -> None:
    settings = GatewaySettings(**{f"{name}_address": "127.0.0.1:1" for name in COMPONENTS})
    app = create_app(settings)
    ours = [*events.router.routes, *events.categories_router.routes]
    everything = list(_leaves(app.router.routes))
    first = everything.index(ours[0])
    assert everything[first : first + len(ours)] == ours
    # Only the app's own pages (the OpenAPI document, the docs) are tried before them.
    assert all(not r.path.startswith("/v1/") for r in everything[:first])  # type: ignore[attr-defined]
    others = [r for r in everything if r not in ours and hasattr(r, "path")]
    assert len(others) > 100
    taken = [
        f"{method} {other.path} by {route.path}"  # type: ignore[attr-defined]
        for other in others
        for method in sorted(getattr(other, "methods", None) or {"GET"})
        for route in ours
        if route.matches(_scope(other.path, method))[0] == Match.FULL  # type: ignore[attr-defined]
    ]
    assert not taken, taken
