"""Where the authenticator gets signing keys and API keys: the identity service, over gRPC."""

from __future__ import annotations

import grpc

from gateway.security.authenticator import KeyRecord
from gateway.upstreams import Upstreams
from grassroots.empower.v1 import identity_service_pb2 as pb
from services.kit import tenancy
from services.kit.errors import Unavailable
from services.kit.principal import Principal

VERIFY_SCOPE = "identity:verify"


def gateway_principal(tenant: str) -> Principal:
    """The gateway acting for itself: it may look up keys, nothing else."""
    return Principal(
        subject="services/gateway", tenant=tenant, kind="service", scopes=frozenset({VERIFY_SCOPE})
    )


class IdentitySources:
    """`jwks()` and `key(key_id)` for `Authenticator`, asked as the gateway itself."""

    def __init__(self, upstreams: Upstreams, tenant: str) -> None:
        self.upstreams = upstreams
        self.principal = gateway_principal(tenant)

    async def jwks(self) -> str:
        try:
            response = await self.upstreams.identity.GetJwks(
                pb.GetJwksRequest(), metadata=self.principal.to_metadata()
            )
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"signing keys are not available ({exc.code().name})") from exc
        return str(response.json)

    async def key(self, key_id: str) -> KeyRecord | None:
        try:
            found = await self.upstreams.identity.LookupApiKey(
                pb.LookupApiKeyRequest(key_id=key_id), metadata=self.principal.to_metadata()
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise Unavailable(f"API keys cannot be checked ({exc.code().name})") from exc
        tenant, _ = tenancy.parse_child_name(found.app.name, "apps")
        if tenant is None:
            return None
        return KeyRecord(
            secret_sha256=found.secret_sha256,
            revoked=found.api_key.revoked,
            app=found.app.name,
            tenant=tenant,
            scopes=frozenset(found.app.scopes),
            quota_per_minute=found.app.quota_per_minute,
        )
