"""Identity (the empower service) as the command domain's PeoplePort, over gRPC.

A handler profile names a user; whether that user exists, and where, is identity's to
say. The command service asks as itself: a service principal of the tree's root with
`empower:read` only, so a caller without that scope (a village's command desk) still
has its profiles checked. Identity answers one user per call (it has no batch read);
the domain checks one user per request, so no request makes more than one call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc

from grassroots.empower.v1 import identity_service_pb2 as pb
from grassroots.empower.v1 import identity_service_pb2_grpc as pb_grpc
from services.kit import tenancy
from services.kit.client import open_channel
from services.kit.principal import Principal
from services.kit.status import domain_error_from

SUBJECT = "services/command"
_SCOPES = frozenset({"empower:read"})


class IdentityPeople:
    def __init__(self, target: str, timeout: float) -> None:
        self.channel = open_channel(target, default_timeout=timeout)
        self.stub = pb_grpc.IdentityServiceStub(self.channel)
        self._principals: dict[str, Principal] = {}

    def _as_service(self, subtree: str) -> Principal:
        found = self._principals.get(subtree)
        if found is None:
            if len(self._principals) > 10_000:
                self._principals.clear()
            found = self._principals[subtree] = Principal(
                SUBJECT, subtree, "service", scopes=_SCOPES
            )
        return found

    async def _tenant_of(self, subtree: str, user: str) -> str | None:
        try:
            found = await self.stub.GetUser(
                pb.GetUserRequest(name=user), metadata=self._as_service(subtree).to_metadata()
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise domain_error_from(exc, "empower") from None
        if found.disabled:
            return None
        # `tenants/{tenant id}/users/{id}`
        return tenancy.id_to_path(found.name.split("/")[1])

    async def tenants_of(self, subtree: str, users: Sequence[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(users))
        found = await asyncio.gather(*(self._tenant_of(subtree, u) for u in unique))
        return {u: t for u, t in zip(unique, found, strict=True) if t is not None}

    async def close(self) -> None:
        await self.channel.close()
