"""Who is calling.

Until the identity component lands, every request acts as the development
principal from configuration (GRASSROOTS_DEV_PRINCIPAL_*). Routers depend on
`principal` only, so real authentication replaces this one function.
"""

from __future__ import annotations

from fastapi import Request

from services.kit import context as ctx
from services.kit.principal import Principal


async def principal(request: Request) -> Principal:
    """The caller's principal, from the app's configured development principal."""
    value: Principal = request.app.state.dev_principal
    return value


def call_metadata(who: Principal) -> tuple[tuple[str, str | bytes], ...]:
    """Metadata every gRPC call from the gateway carries: principal and request id."""
    metadata: list[tuple[str, str | bytes]] = [who.to_metadata()]
    request_id = ctx.current_request_id()
    if request_id:
        metadata.append((ctx.REQUEST_ID_HEADER, request_id))
    return tuple(metadata)
