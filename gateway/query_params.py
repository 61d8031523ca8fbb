"""Unknown query parameters are refused (400 naming them) on every /v1 route.

A typo'd or unsupported filter (`?bbox=` where a list has none, `?filter=` on tasks)
used to be ignored, answering every row as though it had been applied. The route's
declared query parameters (its own and its dependencies', read from FastAPI's
dependant) are the only ones accepted. OGC API - Features, Open311 and NGSI-LD are
left to their standards' own rules: OGC API allows any property name as a filter,
Open311 carries `api_key` and `jurisdiction_id` as parameters.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from gateway.errors import ApiError
from services.kit.errors import FieldViolation

_DECLARED: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _declared(route: APIRoute) -> frozenset[str]:
    names = _DECLARED.get(id(route))
    if names is None:
        names = frozenset(_query_names(route.dependant))
        _DECLARED[id(route)] = names
    return names


async def known_query_parameters(request: Request) -> None:
    """Dependency of every route: 400 naming each query parameter the route lacks."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.url.path.startswith("/v1/"):
        return
    unknown = sorted(set(request.query_params) - _declared(route))
    if unknown:
        allowed = ", ".join(sorted(_declared(route))) or "none"
        raise ApiError(
            400,
            f"unknown query parameter {', '.join(repr(u[:40]) for u in unknown[:5])}; "
            f"this route takes: {allowed}",
            violations=[
                FieldViolation(u[:40], f"not a parameter of this route (it takes: {allowed})")
                for u in unknown[:5]
            ],
        )
