"""Device keys: what a device presents in each message to prove what it may write.

A key names its subject and carries an HMAC of it under the platform's key ring
(derived for this purpose, so the MAC is worth nothing elsewhere):

    grd_<key id>.<subject, base64url>.<MAC, base64url>

The subject is an entity (`tenants/t/entities/e`: that one device) or a tenant
(`tenants/t`: an app's fleet key for every entity of that tenant's subtree). Keys are
checked without a lookup, so ten thousand devices cost ten thousand HMACs and nothing
else; rolling the key ring's signing key issues new keys while old ones still verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from services.kit import signing, tenancy

PREFIX = "grd_"
PURPOSE = b"grassroots/twin/device-keys"
MAX_KEY_CHARS = 400


@dataclass(frozen=True)
class Grant:
    """What a verified key may write: one entity, or a tenant's subtree."""

    tenant_path: str
    entity_id: str | None

    @property
    def subject(self) -> str:
        tenant = tenancy.tenant_name(self.tenant_path)
        return tenant if self.entity_id is None else f"{tenant}/entities/{self.entity_id}"

    def allows(self, tenant_path: str, entity_id: str) -> str | None:
        """None when the key covers the entity, else why not ("wrong_tenant", ...)."""
        if not tenancy.contains(self.tenant_path, tenant_path):
            return "wrong_tenant"
        if self.entity_id is not None and (
            self.entity_id != entity_id or self.tenant_path != tenant_path
        ):
            return "wrong_entity"
        return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_subject(subject: str) -> Grant:
    """`tenants/t` or `tenants/t/entities/e` as a Grant; ValueError otherwise."""
    parts = subject.split("/")
    if len(parts) not in (2, 4) or parts[0] != "tenants":
        raise ValueError("a key's subject is a tenant or an entity")
    path = tenancy.id_to_path(parts[1])
    if not tenancy.is_valid_path(path):
        raise ValueError("not a tenant id")
    if len(parts) == 2:
        return Grant(path, None)
    if parts[2] != "entities" or not parts[3]:
        raise ValueError("not an entity name")
    return Grant(path, parts[3])


class DeviceKeys:
    """Issues and verifies device keys under one key ring."""

    def __init__(self, ring: signing.KeyRing | None = None) -> None:
        self._ring = (ring or signing.keyring()).derive(PURPOSE)

    def _mac(self, key_id: str, subject: bytes) -> bytes | None:
        secret = self._ring.keys.get(key_id)
        return None if secret is None else hmac.new(secret, subject, hashlib.sha256).digest()

    def issue(self, subject: str) -> str:
        """A key for an entity or a tenant resource name."""
        parse_subject(subject)
        encoded = subject.encode()
        mac = self._mac(self._ring.active, encoded)
        assert mac is not None  # the active key is in the ring by construction
        return f"{PREFIX}{self._ring.active}.{_b64(encoded)}.{_b64(mac)}"

    def verify(self, key: str) -> Grant | None:
        """The key's grant, or None for a key that is malformed, foreign or forged."""
        if not key.startswith(PREFIX) or len(key) > MAX_KEY_CHARS:
            return None
        parts = key[len(PREFIX) :].split(".")
        if len(parts) != 3:
            return None
        key_id, subject_text, mac_text = parts
        try:
            subject, presented = _unb64(subject_text), _unb64(mac_text)
        except (binascii.Error, ValueError):
            return None
        expected = self._mac(key_id, subject)
        if expected is None or not hmac.compare_digest(expected, presented):
            return None
        try:
            return parse_subject(subject.decode())
        except (UnicodeDecodeError, ValueError):
            return None
