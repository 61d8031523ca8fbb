"""Custom methods (`POST .../tasks/{task}:accept`, AIP-136) answered before routing.

A resource's id is one path segment, so Starlette's `{task}` also matches `x:accept`:
`GET .../tasks/x:accept` would reach the task's Get with the id `x:accept`, and
`POST .../tasks/x:explode` would be a 405 from that Get's path. Here a /v1/ path whose
last segment names a verb reaches a route only when a route declares that verb for the
request's method: no route declares it -> 404 naming the verb; routes declare it for
other methods -> 405 with their methods in `Allow`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import ApiError

PREFIX = "/v1/"
_VERB = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")


def declared_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route of the app, with included routers' routes in their place."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from declared_routes(inner.routes) if inner is not None else (route,)


def verb_of(path: str) -> str | None:
    """The custom method a /v1/ path ends with (`accept` for `.../x:accept`), or None."""
    last = path.rsplit("/", 1)[-1]
    if not path.startswith(PREFIX) or ":" not in last:
        return None
    return last.rsplit(":", 1)[1]


class CustomMethodGuard:
    """See the module docstring: refuses a `:verb` no route declares for the method."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        verb = verb_of(scope["path"]) if scope["type"] == "http" else None
        refusal = None if verb is None else self._refusal(scope, verb)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await refusal.response()(scope, receive, send)

    @staticmethod
    def _refusal(scope: Scope, verb: str) -> ApiError | None:
        allowed: set[str] = set()
        for route in declared_routes(scope["app"].router.routes):
            if not getattr(route, "path", "").endswith(f":{verb}"):
                continue
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return None
            if match is Match.PARTIAL:  # the path matches, the method does not
                allowed |= set(getattr(route, "methods", None) or ())
        if allowed:
            methods = ", ".join(sorted(allowed))
            return ApiError(
                405,
                f"custom method ':{verb}' takes {methods}, not {scope['method']}",
                reason="METHOD_NOT_ALLOWED",
                headers={"Allow": methods},
            )
        # The verb is echoed only when it could be one (a short name), never as sent.
        named = f"':{verb}'" if _VERB.fullmatch(verb) else "this custom method"
        return ApiError(
            404,
            f"unknown custom method {named}: no such action on this resource",
            reason="UNKNOWN_CUSTOM_METHOD",
        )
