"""The caller's identity, as carried in gRPC metadata on every call.

The gateway (and, for service-to-service calls, the calling service) sends a
serialised `grassroots.type.v1.Principal` in the binary metadata entry
`x-grassroots-principal-bin` and its HMAC in `x-grassroots-principal-sig-bin`
(see `services.kit.signing`). A service accepts a principal only when the
signature verifies and its expiry has not passed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from grassroots.type.v1 import principal_pb2
from services.kit import signing, tenancy
from services.kit.errors import Unauthenticated

PRINCIPAL_METADATA_KEY = "x-grassroots-principal-bin"
SIGNATURE_METADATA_KEY = signing.SIGNATURE_METADATA_KEY
# A principal without its own expiry is signed for this long and re-signed before it ends.
DEFAULT_TTL_SECONDS = 300.0
# Services refuse principals that claim to live longer: a leaked one stays useful briefly.
MAX_TTL_SECONDS = 3600.0
CLOCK_SKEW_SECONDS = 5.0
_VERIFIED_CACHE_LIMIT = 10_000
_verified: dict[tuple[bytes, bytes], Principal] = {}

_KINDS = {
    "user": principal_pb2.Principal.KIND_USER,
    "app": principal_pb2.Principal.KIND_APP,
    "service": principal_pb2.Principal.KIND_SERVICE,
}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
# The role of the gateway's anonymous reader of public data. No account can hold it
# (it is not in the roles catalogue) and principals are signed, so none can claim it.
ANONYMOUS_ROLE = "anonymous"
# The only scope of the narrow token a sign-in answers while the account's password
# must be changed; it opens just the methods the contract marks `before_password_change`.
PASSWORD_CHANGE_SCOPE = "password:change"  # noqa: S105 (a scope name)
PASSWORD_CHANGE_REQUIRED = "PASSWORD_CHANGE_REQUIRED"  # noqa: S105 (an error reason)
_ONLY_PASSWORD_CHANGE = frozenset({PASSWORD_CHANGE_SCOPE})


@dataclass(frozen=True)
class Principal:
    """Who calls, for which tenant node, with which roles and scopes."""

    subject: str
    tenant: str
    kind: str = "user"
    roles: tuple[str, ...] = ()
    scopes: frozenset[str] = field(default_factory=frozenset)
    app: str = ""
    # Seconds since the epoch; 0 means "sign for DEFAULT_TTL_SECONDS at each use".
    expires_at: float = 0.0
    _sealed: list[tuple[float, tuple[tuple[str, bytes], tuple[str, bytes]]]] = field(
        default_factory=list, compare=False, repr=False, hash=False
    )

    def can_see(self, tenant_path: str) -> bool:
        """A principal sees its own node and the subtree below it."""
        return tenancy.contains(self.tenant, tenant_path)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def only_changes_password(self) -> bool:
        """Signed in with a password someone else chose: it must be changed first."""
        return self.scopes == _ONLY_PASSWORD_CHANGE

    @property
    def is_anonymous(self) -> bool:
        """The public reader: sees only what is published for everyone."""
        return ANONYMOUS_ROLE in self.roles

    def to_proto(self, expires_at: float | None = None) -> principal_pb2.Principal:
        message = principal_pb2.Principal(
            subject=self.subject,
            kind=_KINDS[self.kind],
            tenant=self.tenant,
            roles=list(self.roles),
            scopes=sorted(self.scopes),
            app=self.app,
        )
        expiry = self.expires_at if expires_at is None else expires_at
        if expiry:
            message.expire_time.FromNanoseconds(int(expiry * 1e9))
        return message

    def to_metadata(self) -> tuple[tuple[str, bytes], tuple[str, bytes]]:
        """The signed principal as two metadata entries.

        Serialised and signed once per principal (and again shortly before an
        unbounded principal's signature would expire): every outbound call of a
        request sends the same bytes.
        """
        now = time.time()
        if self._sealed and self._sealed[0][0] - now > DEFAULT_TTL_SECONDS / 5:
            return self._sealed[0][1]
        expiry = self.expires_at or now + DEFAULT_TTL_SECONDS
        payload = self.to_proto(expiry).SerializeToString(deterministic=True)
        sealed = (
            (PRINCIPAL_METADATA_KEY, payload),
            (SIGNATURE_METADATA_KEY, signing.keyring().sign(payload)),
        )
        self._sealed[:] = [(expiry if self.expires_at == 0 else float("inf"), sealed)]
        return sealed

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
            expires_at=message.expire_time.ToNanoseconds() / 1e9
            if message.HasField("expire_time")
            else 0.0,
        )

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal:
        """Read and verify the principal; UNAUTHENTICATED when absent, unsigned or stale.

        Verified principals are remembered by their exact bytes, so the HMAC and the
        parse happen once per principal, not once per call; the expiry is checked on
        every call.
        """
        payload = signature = None
        for key, value in metadata or ():
            if key == PRINCIPAL_METADATA_KEY:
                payload = value if isinstance(value, bytes) else value.encode()
            elif key == SIGNATURE_METADATA_KEY:
                signature = value if isinstance(value, bytes) else value.encode()
        if payload is None:
            raise Unauthenticated(f"the call carries no principal ({PRINCIPAL_METADATA_KEY})")
        if signature is None:
            raise Unauthenticated(f"the principal is not signed ({SIGNATURE_METADATA_KEY})")
        now = time.time()
        known = _verified.get((payload, signature))
        if known is None:
            if not signing.keyring().verify(payload, signature):
                raise Unauthenticated("the principal's signature does not verify")
            try:
                message = principal_pb2.Principal.FromString(payload)
            except DecodeError as exc:
                raise Unauthenticated("principal metadata is not readable") from exc
            if not message.HasField("expire_time"):
                raise Unauthenticated("the principal has no expiry")
            known = cls.from_proto(message)
            if known.expires_at - now > MAX_TTL_SECONDS + CLOCK_SKEW_SECONDS:
                raise Unauthenticated("the principal claims to live too long")
            if len(_verified) >= _VERIFIED_CACHE_LIMIT:
                _verified.clear()
            _verified[(payload, signature)] = known
        if known.expires_at + CLOCK_SKEW_SECONDS < now:
            raise Unauthenticated("the principal has expired")
        return known


def parse_scopes(value: str | Sequence[str]) -> frozenset[str]:
    """Accept scopes as a list or as one space- or comma-separated string (env vars)."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    return frozenset(s for s in value if s)
