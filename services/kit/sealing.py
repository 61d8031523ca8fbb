"""Field encryption and blind indexes for personal data at rest.

A stolen database file or dump must not show who lives where: ID numbers, phone
numbers and names are stored as AES-256-GCM ciphertexts. Each value is sealed as
`v1:<kid>:<base64(nonce + ciphertext)>` with a fresh 12-byte nonce; the key id lets
keys rotate (new writes use the active key, every key in the ring still opens), and
the associated data binds a ciphertext to its record and field, so copying one row's
ciphertext into another row (or into another column) fails to open.

Exact lookups ("who has this ID number?") cannot search ciphertexts, so the stores
also keep a blind index: HMAC-SHA256 under a separate key over the normalised value.
Equal values give equal indexes; without the index key the index says nothing.

Keys come from configuration as text:

* key ring: `kid1:<base64 32 bytes>,kid0:<base64 32 bytes>` (the first is active);
* index key: `<base64 32 or more bytes>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}\Z")


class SealingError(Exception):
    """A sealed value cannot be opened: unknown key, wrong record or field, or altered."""


def _decode_key(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None


class Sealer:
    """Seals and opens field values and computes their blind indexes.

    Built from a key ring (key id -> 32-byte AES key), the id of the key new values
    are sealed with, and an index key that must differ from every encryption key.
    """

    def __init__(
        self, keys: Mapping[str, bytes], active: str, index_key: bytes | None = None
    ) -> None:
        if not keys:
            raise ValueError("the key ring is empty")
        for kid, key in keys.items():
            if not _KID.match(kid):
                raise ValueError(f"key id {kid!r} must be 1-32 letters, digits, '_', '.' or '-'")
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {kid!r} must be {KEY_BYTES} bytes, not {len(key)}")
        if active not in keys:
            raise ValueError(f"the active key {active!r} is not in the key ring")
        if index_key is not None:
            if len(index_key) < KEY_BYTES:
                raise ValueError(f"the index key must be at least {KEY_BYTES} bytes")
            if any(hmac.compare_digest(index_key, key) for key in keys.values()):
                raise ValueError("the index key must differ from every encryption key")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active = active
        self._index_key = None if index_key is None else bytes(index_key)

    @classmethod
    def from_env_value(cls, keys_text: str, index_key_text: str | None = None) -> Sealer:
        """Parse `kid1:<base64>,kid0:<base64>` (first = active) and a base64 index key
        (none for a sealer that makes no blind indexes).

        Error messages name the key id at fault, never key material.
        """
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for part in keys_text.split(","):
            part = part.strip()
            if not part:
                continue
            kid, sep, encoded = part.partition(":")
            kid = kid.strip()
            if not sep or not kid:
                raise ValueError("each key must be written as <kid>:<base64 key>")
            if kid in keys:
                raise ValueError(f"key id {kid!r} appears twice")
            keys[kid] = _decode_key(encoded, f"key {kid!r}")
            order.append(kid)
        if not order:
            raise ValueError("no encryption key given (<kid>:<base64 key>,...)")
        index_key = None if index_key_text is None else _decode_key(index_key_text, "the index key")
        return cls(keys, order[0], index_key)

    @classmethod
    def generate(cls, kid: str = "dev") -> Sealer:
        """Fresh random keys, for tests and throw-away local runs only."""
        return cls({kid: os.urandom(KEY_BYTES)}, kid, os.urandom(KEY_BYTES))

    @staticmethod
    def _associated(record: str, field: str) -> bytes:
        return f"{FORMAT_VERSION}\x1f{record}\x1f{field}".encode()

    def seal(self, value: str, *, record: str, field: str) -> str:
        """Encrypt `value` for column `field` of `record` with the active key."""
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[self.active].encrypt(
            nonce, value.encode(), self._associated(record, field)
        )
        body = base64.b64encode(nonce + ciphertext).decode()
        return f"{FORMAT_VERSION}:{self.active}:{body}"

    def seal_many(self, values: Sequence[str], records: Sequence[str], *, field: str) -> list[str]:
        """`seal` over many values at once (bulk imports): the nonces come from one read
        of the random source instead of one system call per value."""
        encrypt = self._ciphers[self.active].encrypt
        nonces = os.urandom(NONCE_BYTES * len(values))
        prefix = f"{FORMAT_VERSION}:{self.active}:"
        tail = f"\x1f{field}"
        encode = base64.b64encode
        sealed: list[str] = []
        for i, (value, record) in enumerate(zip(values, records, strict=True)):
            nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
            # The associated data of `_associated(record, field)`, built inline.
            associated = f"{FORMAT_VERSION}\x1f{record}{tail}".encode()
            body = nonce + encrypt(nonce, value.encode(), associated)
            sealed.append(prefix + encode(body).decode())
        return sealed

    def open(self, sealed: str, *, record: str, field: str) -> str:
        """Decrypt a value sealed for exactly this record and field."""
        version, kid, body = self.parse(sealed)
        if version != FORMAT_VERSION:
            raise SealingError(f"unknown sealed format {version!r}")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealingError(f"no key {kid!r} in the key ring")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise SealingError("sealed value is not base64") from None
        if len(raw) <= NONCE_BYTES:
            raise SealingError("sealed value is too short")
        try:
            plain = cipher.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._associated(record, field)
            )
        except InvalidTag:
            raise SealingError(
                f"sealed {field} of {record} does not open (altered, moved or wrong key)"
            ) from None
        return plain.decode()

    @staticmethod
    def parse(sealed: str) -> tuple[str, str, str]:
        """(format version, key id, base64 body) of a sealed value."""
        parts = sealed.split(":", 2)
        if len(parts) != 3:
            raise SealingError("not a sealed value (v1:<kid>:<base64>)")
        return parts[0], parts[1], parts[2]

    def needs_reseal(self, sealed: str) -> bool:
        """Whether a value was sealed with a key other than the active one (rotation)."""
        return self.parse(sealed)[1] != self.active

    def blind_index(self, normalised: str, *, field: str) -> str:
        """HMAC-SHA256 (hex) of a normalised value; the field name keeps columns apart."""
        if self._index_key is None:
            raise ValueError("this sealer has no index key")
        message = f"{field}\x1f{normalised}".encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()

    def keyed_digests(self, values: Iterable[str], *, field: str) -> list[str]:
        """A 128-bit keyed BLAKE2b of each value (hex), for bulk keys such as a register's
        ID numbers: one pass per value instead of HMAC's two, under the index key."""
        if self._index_key is None:
            raise ValueError("this sealer has no index key")
        base = hashlib.blake2b(key=self._index_key, digest_size=16, person=b"grassroots-key")
        base.update(f"{field}\x1f".encode())
        out: list[str] = []
        for value in values:
            state = base.copy()
            state.update(value.encode())
            out.append(state.hexdigest())
        return out

    def blind_indexes(self, values: Iterable[str], *, field: str) -> list[str]:
        """`blind_index` over many values, reusing one keyed hash state."""
        if self._index_key is None:
            raise ValueError("this sealer has no index key")
        base = hmac.new(self._index_key, f"{field}\x1f".encode(), hashlib.sha256)
        out: list[str] = []
        for value in values:
            state = base.copy()
            state.update(value.encode())
            out.append(state.hexdigest())
        return out
