"""The secrets the platform reads, and how to make a fresh value of each.

One list for every place that needs them: devstack keeps a set per data directory,
and `python -m tools.k8s secrets` writes a set for a Kubernetes overlay.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable

from services.kit import signing


def _aes_keys() -> str:
    return signing.generate_keys_value("k1")


def _hmac_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


# Environment variable -> a fresh value. Every process verifies principals with the
# key ring; the sealing keys belong to the service whose settings name them.
GENERATORS: dict[str, Callable[[], str]] = {
    signing.KEYS_VARIABLE: lambda: signing.generate_keys_value("k1"),
    "GRASSROOTS_EMPOWER_SEAL_KEYS": _aes_keys,
    "GRASSROOTS_EMPOWER_INDEX_KEY": _hmac_key,
    "GRASSROOTS_EVENTS_SEAL_KEYS": _aes_keys,
}
