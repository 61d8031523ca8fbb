"""Build the gateway application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gateway.errors import install_handlers
from gateway.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from gateway.routers import components, events, health, ogc, open311
from gateway.routers import map as map_router
from gateway.settings import COMPONENTS, GatewaySettings
from gateway.upstreams import Upstreams
from services.kit.config import DevPrincipalSettings
from services.kit.discovery import StaticDiscovery

DESCRIPTION = """
Grassroots puts the shared digital components of a city and district - map, events,
command, twin and empower - in front of village and town app developers as one
REST/JSON API. Every call acts for a tenant node (city > district > town > village)
and sees only that node's subtree.

Errors share one shape: `{"error": {"code", "status", "message", "field_violations"}}`.
"""


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        discovery = StaticDiscovery(settings.addresses())
        app.state.upstreams = Upstreams(discovery, COMPONENTS, settings.call_timeout_seconds)
        try:
            yield
        finally:
            await app.state.upstreams.close()

    app = FastAPI(
        title="Grassroots API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.dev_principal = DevPrincipalSettings().principal()
    install_handlers(app)
    for router in (
        health.router,
        events.router,
        events.categories_router,
        map_router.router,
        ogc.router,
        open311.router,
        components.router,
    ):
        app.include_router(router)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Content-Type", "Authorization", "X-Request-ID", "Idempotency-Key"],
        expose_headers=["X-Request-ID", "Idempotent-Replayed", "Location"],
    )
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RequestContextMiddleware)
    return app
