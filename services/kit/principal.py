"""The caller's identity, as carried in gRPC metadata on every call.

The gateway (and, for service-to-service calls, the calling service) sends a
serialised `grassroots.type.v1.Principal` in the binary metadata entry
`x-grassroots-principal-bin`. A later identity issue signs it; until then the
development principal from configuration stands in for real sign-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from google.protobuf.message import DecodeError

from grassroots.type.v1 import principal_pb2
from services.kit import tenancy
from services.kit.errors import Unauthenticated

PRINCIPAL_METADATA_KEY = "x-grassroots-principal-bin"

_KINDS = {
    "user": principal_pb2.Principal.KIND_USER,
    "app": principal_pb2.Principal.KIND_APP,
    "service": principal_pb2.Principal.KIND_SERVICE,
}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}


@dataclass(frozen=True)
class Principal:
    """Who calls, for which tenant node, with which roles and scopes."""

    subject: str
    tenant: str
    kind: str = "user"
    roles: tuple[str, ...] = ()
    scopes: frozenset[str] = field(default_factory=frozenset)
    app: str = ""

    def can_see(self, tenant_path: str) -> bool:
        """A principal sees its own node and the subtree below it."""
        return tenancy.contains(self.tenant, tenant_path)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def to_proto(self) -> principal_pb2.Principal:
        return principal_pb2.Principal(
            subject=self.subject,
            kind=_KINDS[self.kind],
            tenant=self.tenant,
            roles=list(self.roles),
            scopes=sorted(self.scopes),
            app=self.app,
        )

    @cached_property
    def _encoded(self) -> bytes:
        return self.to_proto().SerializeToString(deterministic=True)

    def to_metadata(self) -> tuple[str, bytes]:
        """Serialised once per principal: every outbound call of a request sends it."""
        return PRINCIPAL_METADATA_KEY, self._encoded

    @classmethod
    def from_proto(cls, message: principal_pb2.Principal) -> Principal:
        if not message.subject:
            raise Unauthenticated("principal has no subject")
        if message.kind not in _KIND_NAMES:
            raise Unauthenticated("principal has no kind")
        if not tenancy.is_valid_path(message.tenant):
            raise Unauthenticated("principal has no valid tenant")
        return cls(
            subject=message.subject,
            tenant=message.tenant,
            kind=_KIND_NAMES[message.kind],
            roles=tuple(message.roles),
            scopes=frozenset(message.scopes),
            app=message.app,
        )

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal:
        """Read the principal from call metadata; UNAUTHENTICATED when absent or broken."""
        for key, value in metadata or ():
            if key == PRINCIPAL_METADATA_KEY:
                raw = value if isinstance(value, bytes) else value.encode()
                try:
                    message = principal_pb2.Principal.FromString(raw)
                except DecodeError as exc:
                    raise Unauthenticated("principal metadata is not readable") from exc
                return cls.from_proto(message)
        raise Unauthenticated(f"the call carries no principal ({PRINCIPAL_METADATA_KEY})")


def parse_scopes(value: str | Sequence[str]) -> frozenset[str]:
    """Accept scopes as a list or as one space- or comma-separated string (env vars)."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    return frozenset(s for s in value if s)
