"""REST for components without a router of their own: none are left (each component's
routes live in its own module; the twin's in `twin`). The router stays so the gateway's
list of routers keeps one shape."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
