"""Tenant paths and the resource names built on them.

A tenant path names a node of the administrative tree with "/" between levels
(`sh/jiading/anting/xingming`). Resource names cannot hold "/" inside one segment,
so a tenant appears in them as its id, the same segments joined by "-"
(`tenants/sh-jiading-anting-xingming/events/ev_...`). Segments are lower-case
letters and digits only, which makes the two forms convert both ways.
"""

from __future__ import annotations

import re

from services.kit.errors import InvalidArgument

_SEGMENT = re.compile(r"^[a-z0-9]{1,40}\Z")
WILDCARD = "-"
# The subtree of every tenant: only for the platform's own work (outbox relay, sweeps,
# sign-in by username), never taken from a request. Not a valid path, so no caller
# can name it; PostgreSQL row-level security knows it too (services.kit.rls).
ALL_TENANTS = "*"
MAX_DEPTH = 6
# The levels of the tree, by the number of segments of a node's path: a city is 1
# (`sh`), a village 4 (`sh/jiading/anting/xingming`), a grid cell 5.
VILLAGE_DEPTH = 4


def is_valid_path(path: str) -> bool:
    segments = path.split("/")
    return 0 < len(segments) <= MAX_DEPTH and all(_SEGMENT.match(s) for s in segments)


def validate_path(path: str, field: str = "tenant") -> str:
    if not is_valid_path(path):
        raise InvalidArgument.field(
            field,
            f"{path!r} is not a tenant path (lower-case segments joined by '/', "
            "for example 'sh/jiading/anting/xingming')",
        )
    return path


def path_to_id(path: str) -> str:
    return path.replace("/", "-")


def id_to_path(tenant_id: str) -> str:
    return tenant_id.replace("-", "/")


def path_of(value: str, field: str = "tenant") -> str:
    """A tenant named in either form, id (`sh-jiading-anting`) or path (`sh/jiading/anting`).

    Filters take both, so a caller pasting the id from a URL never gets an empty answer.
    """
    path = value if "/" in value else id_to_path(value)
    if not is_valid_path(path):
        raise InvalidArgument.field(
            field,
            f"{value!r} is not a tenant: use its id (sh-jiading-anting-xingming) "
            "or its path (sh/jiading/anting/xingming)",
        )
    return path


def village_path_of(value: str, field: str = "village") -> str:
    """A village named in either form, as its path; a tenant of another level (`sh`,
    `sh/jiading`), or anything that is no tenant, is INVALID_ARGUMENT on `field`."""
    path = path_of(value, field)
    if len(path.split("/")) != VILLAGE_DEPTH:
        raise InvalidArgument.field(
            field,
            f"{value!r} is not a village: name one by its id (sh-jiading-anting-xingming) "
            "or its path (sh/jiading/anting/xingming)",
        )
    return path


def tenant_name(path: str) -> str:
    """The resource name of a tenant: `tenants/{tenant_id}`."""
    return f"tenants/{path_to_id(path)}"


def contains(ancestor: str, path: str) -> bool:
    """Whether `path` is `ancestor` itself or lies in its subtree."""
    return path == ancestor or path.startswith(ancestor + "/")


def ancestors_and_self(path: str) -> list[str]:
    """`a/b/c` -> [`a`, `a/b`, `a/b/c`]: what a node inherits (rules, forms) comes from these."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def parse_parent(parent: str, field: str = "parent") -> str:
    """Parse `tenants/{tenant_id}` into a tenant path."""
    parts = parent.split("/")
    if len(parts) != 2 or parts[0] != "tenants" or not parts[1]:
        raise InvalidArgument.field(field, f"{parent!r} is not of the form 'tenants/{{tenant}}'")
    path = id_to_path(parts[1])
    if not is_valid_path(path):
        raise InvalidArgument.field(field, f"{parts[1]!r} is not a tenant id")
    return path


def parse_child_name(name: str, collection: str, field: str = "name") -> tuple[str | None, str]:
    """Parse `tenants/{tenant}/{collection}/{id}`; the tenant may be the wildcard `-`.

    Returns (tenant path or None for the wildcard, resource id).
    """
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "tenants" or parts[2] != collection or not parts[3]:
        raise InvalidArgument.field(
            field, f"{name!r} is not of the form 'tenants/{{tenant}}/{collection}/{{id}}'"
        )
    if parts[1] == WILDCARD:
        return None, parts[3]
    path = id_to_path(parts[1])
    if not is_valid_path(path):
        raise InvalidArgument.field(field, f"{parts[1]!r} is not a tenant id")
    return path, parts[3]
