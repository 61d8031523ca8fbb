"""Liveness, readiness and metrics: what Kubernetes and Prometheus ask."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The gateway process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Every component answers SERVING")
async def readyz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    statuses = await request.app.state.upstreams.health(settings.readiness_timeout_seconds)
    ready = all(status == "SERVING" for status in statuses.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "components": statuses},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if request.app.state.settings.metrics_port:  # scraped on its own port instead
        raise StarletteHTTPException(404)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
