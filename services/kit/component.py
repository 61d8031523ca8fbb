"""The usual shape of a service for the bootstrap: servicers to add, things to close."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc


class ServiceComponent:
    """Registers servicers on a server and closes resources on shutdown, in order."""

    def __init__(
        self,
        servicers: Sequence[tuple[Any, Callable[[Any, grpc.aio.Server], None]]],
        service_names: Sequence[str],
        closers: Sequence[Callable[[], Any]] = (),
        method_scopes: Mapping[str, str] | None = None,
    ) -> None:
        """`method_scopes` maps `/pkg.Service/Method` to the scope it needs (kit.scopes)."""
        self._servicers = list(servicers)
        self.method_scopes: Mapping[str, str] = dict(method_scopes or {})
        self.service_names = tuple(service_names)
        self._closers = list(closers)

    def register(self, server: grpc.aio.Server) -> None:
        for servicer, add in self._servicers:
            add(servicer, server)

    async def close(self) -> None:
        for close in self._closers:
            result = close()
            if inspect.isawaitable(result):
                await result
