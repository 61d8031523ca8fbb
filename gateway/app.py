"""Build the gateway application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from gateway.auth import Guard
from gateway.custom_methods import CustomMethodGuard
from gateway.docs import install_docs
from gateway.errors import install_handlers
from gateway.event_creates import EventCreates
from gateway.event_reads import EventReads
from gateway.fast_events import FastCreate, FastGet
from gateway.fast_ingest import FastIngest
from gateway.fast_routes import FastRoutes
from gateway.idempotency import IdempotencyMiddleware, ReplayStore
from gateway.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from gateway.openapi import install_openapi, operation_id
from gateway.pages import install_pages, tile_origin
from gateway.query_params import known_query_parameters
from gateway.routers import (
    attachments,
    auth,
    catalog,
    command,
    command_plans,
    components,
    credit,
    datasets,
    events,
    forms,
    health,
    identity_admin,
    intake,
    ngsi_ld,
    notices,
    ogc,
    open311,
    people,
    points,
    scenarios,
    tenants,
    twin,
    twin_watch,
)
from gateway.routers import map as map_router
from gateway.security.authenticator import Caller
from gateway.security.headers import SecurityHeadersMiddleware
from gateway.settings import GatewaySettings
from gateway.telemetry_ingests import TelemetryIngests
from gateway.upstreams import Upstreams
from services.kit import tracing
from services.kit.components import NAMES
from services.kit.discovery import StaticDiscovery
from services.kit.metrics import serve_metrics

DESCRIPTION = """
Grassroots puts the shared digital components of a city and district - map, events,
command, twin and empower - in front of village and town app developers as one
REST/JSON API. Every call acts for a tenant node (city > district > town > village)
and sees only that node's subtree.

Authenticate with an access token (`POST /v1/auth/token`, then
`Authorization: Bearer <token>`) or an app's API key (`X-API-Key: grk_...`).
Health, readiness, these docs, the OGC landing page and the Open311 service list
are public; everything else answers 401 without credentials, 403 without the
scope a route needs and 429 with `Retry-After` over the rate limit.

Every path is a resource name under `/v1/`: `tenants/{tenant}/events/{event}` answers at
`/v1/tenants/{tenant}/events/{event}`, `{tenant}` being a tenant id such as
`sh-jiading-anting-xingming`; a collection read under a tenant covers its whole subtree
(`GET /v1/me` tells you your tenant). OGC API - Features (`/ogc`) and Open311
(`/open311/v2`) keep their standard paths.

Every create accepts an `Idempotency-Key` header: a retry with the same key and body
returns the first answer (`Idempotent-Replayed: true`).

Errors share one shape: `{"error": {"code", "status", "message", "field_violations"}}`;
bad input is 400 naming each wrong field.
"""


def create_app(settings: GatewaySettings, *, fixed_caller: Caller | None = None) -> FastAPI:
    """The gateway. `fixed_caller` skips authentication and limits: benchmarks only."""
    guard = Guard.from_settings(settings, fixed_caller)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        discovery = StaticDiscovery(settings.addresses())
        upstreams = Upstreams(discovery, NAMES, settings.call_timeout_seconds)
        app.state.upstreams = upstreams
        guard.connect(upstreams, settings)
        serve_metrics(settings.metrics_port, settings.host)
        try:
            yield
        finally:
            await guard.limiter.close()
            await upstreams.close()

    app = FastAPI(
        title="Grassroots API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
        # A query parameter a /v1 route does not declare is refused, never ignored.
        dependencies=[Depends(known_query_parameters)],
    )
    app.state.settings = settings
    app.state.guard = guard
    # One create call in flight per caller: what arrives meanwhile goes in the next,
    # larger batch, which costs every process less CPU per report than several small
    # ones in parallel (bench/bench_events.py wrk: 1.5-1.8 ms of CPU per create in all
    # processes, against 2.0-2.6 ms with two calls in flight and 1.9-2.2 ms with four).
    app.state.event_creates = EventCreates(in_flight=1)
    app.state.event_reads = EventReads()
    app.state.telemetry_ingests = TelemetryIngests()
    install_handlers(app)
    install_docs(app)
    install_pages(app, settings)
    install_openapi(app)
    for router in (
        # First: the routes scenarios call most (a report, reading one) are matched
        # before the rest are tried; none of them shadows another router's paths
        # (tests/unit/gateway/test_route_order.py).
        events.router,
        events.categories_router,
        intake.settings_router,
        attachments.router,
        intake.public_router,
        health.router,
        auth.router,
        # Before tenants: its GET /v1/tenants/{tenant} would take '{tenant}:queryHistory'.
        twin.router,
        tenants.router,
        identity_admin.router,
        people.router,
        points.router,
        credit.router,
        forms.router,
        notices.router,
        notices.me_router,
        map_router.router,
        command.router,
        ogc.router,
        open311.router,
        ngsi_ld.router,
        twin_watch.router,
        components.router,
        catalog.router,
        scenarios.router,
        datasets.router,
        command_plans.router,
    ):
        app.include_router(router)
    # Innermost of the gateway's middleware: the plain cases of the hottest routes
    # (a reading, a report, reading an event) skip FastAPI's routing.
    app.add_middleware(
        FastRoutes,
        routes=[
            FastCreate(_route_of(events.router, events.create_event)),
            FastGet(_route_of(events.router, events.get_event)),
            FastIngest(_route_of(twin.router, twin.ingest_telemetry)),
        ],
    )
    app.add_middleware(CustomMethodGuard)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=[
            "Content-Type",
            "Authorization",
            "X-API-Key",
            "X-Request-ID",
            "Idempotency-Key",
            "X-Purpose",
            "NGSILD-Tenant",
            "Link",
        ],
        expose_headers=[
            "X-Request-ID",
            "Idempotent-Replayed",
            "Location",
            "Link",
            "NGSILD-Results-Count",
        ],
    )
    app.add_middleware(IdempotencyMiddleware, store=ReplayStore(guard.limiter.redis))
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(SecurityHeadersMiddleware, tile_origin=tile_origin(settings.tile_url))
    app.add_middleware(RequestContextMiddleware)
    tracing.instrument_http(app)
    return app


def _route_of(router: APIRouter, endpoint: Callable[..., object]) -> APIRoute:
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint)
