"""The platform's domain-event bus: one `Bus` contract, a local log and Redis Streams.

Services depend on `Bus` and get an adapter from `open_bus(url)`, so the same code runs
on a SQLite file in development and on Redis in production.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from services.kit.bus.base import (
    DEAD_REASON_HEADER,
    DEAD_SUFFIX,
    Bus,
    BusMessage,
    Delivery,
    NoSuchGroup,
    dead_stream,
    entry_id_key,
)
from services.kit.bus.consumer import Consumer, Handler
from services.kit.bus.local import LocalLogBus

__all__ = [
    "DEAD_REASON_HEADER",
    "DEAD_SUFFIX",
    "Bus",
    "BusMessage",
    "Consumer",
    "Delivery",
    "Handler",
    "LocalLogBus",
    "NoSuchGroup",
    "dead_stream",
    "entry_id_key",
    "open_bus",
]

_REDIS_SCHEMES = ("redis", "rediss", "unix")


def open_bus(url: str) -> Bus:
    """The adapter a URL names: `redis://host:6379/0`, `file:///path/log.sqlite3` or a path."""
    if not url:
        raise ValueError("bus URL is empty; use redis://... or a file path")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss") and not parts.netloc:
        raise ValueError(f"bus URL {url!r} looks mistyped; write {scheme}://host:port/db")
    if scheme in _REDIS_SCHEMES:
        # Imported here so that processes on the local log never load redis.
        from services.kit.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus(url)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URL with a remote host is not supported: {url!r}")
        if not parts.path:
            raise ValueError(f"file URL without a path: {url!r}")
        return LocalLogBus(unquote(parts.path))
    if "://" in url or (scheme and len(scheme) > 1):
        raise ValueError(f"unsupported bus URL scheme {parts.scheme!r} in {url!r}")
    first = url.split("/", 1)[0].rstrip(":").lower()
    if first in (*_REDIS_SCHEMES, "file") and (url[len(first) :].startswith((":", "//"))):
        # "redis//host" or "redis:/host" would otherwise become a log file of that name.
        raise ValueError(f"bus URL {url!r} looks mistyped; write {first}://...")
    return LocalLogBus(url)
