"""AIP-134 update masks: which fields of an Update request to apply."""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from services.kit.errors import InvalidArgument


def fields_to_update(
    mask: FieldMask, resource: Message, updatable: Collection[str], prefix: str
) -> set[str]:
    """The paths of `mask`, each one of `updatable`; an empty mask means every
    updatable field the resource sets (non-default), as AIP-134 allows."""
    if not mask.paths:
        return {f.name for f, _ in resource.ListFields() if f.name in updatable}
    paths = set()
    for path in mask.paths:
        if path not in updatable:
            raise InvalidArgument.field(
                "update_mask",
                f"{prefix}{path[:64]!r} cannot be changed; "
                f"updatable: {', '.join(sorted(updatable))}",
            )
        paths.add(path)
    return paths
