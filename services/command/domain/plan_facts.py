"""The facts plans publish and the ones they react to, each named once.

Command publishes on its own stream; twin's multi-level rules publish level changes
on theirs, and a plan whose `signal` names the rule follows them. Twin counts levels
up from 0 as a reading passes ascending bounds (1 is the mildest); plans count down
from 3 to 1 (1 is the worst), so `plan_level` turns one into the other.
"""

from __future__ import annotations

from dataclasses import dataclass

STREAM = "command"
EMERGENCY_LEVEL_CHANGED = "emergency.level_changed"

# Twin publishes level changes on a stream of their own, as JSON (services/twin).
TWIN_STREAM = "twin.level_changed"
TWIN_LEVEL_CHANGED = "twin.level_changed"


@dataclass(frozen=True)
class Fact:
    """One fact to publish: written to the outbox with the change that caused it."""

    tenant: str
    type: str
    key: str
    payload: bytes


def plan_level(twin_level: int) -> int:
    """A twin rule's level as a plan's: 0 stays 0 (stood down), 1 -> 3, 2 -> 2, and 3 or
    more -> 1, the worst a plan has."""
    if twin_level <= 0:
        return 0
    return max(1, 4 - twin_level)
