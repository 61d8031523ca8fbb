"""The facts plans publish and the ones they react to, each named once.

Command publishes on its own stream; twin's multi-level rules publish level changes
on theirs, and a plan whose `signal` names the rule follows them.
"""

from __future__ import annotations

from dataclasses import dataclass

STREAM = "command"
EMERGENCY_LEVEL_CHANGED = "emergency.level_changed"

TWIN_STREAM = "twin"
TWIN_LEVEL_CHANGED = "twin.level_changed"


@dataclass(frozen=True)
class Fact:
    """One fact to publish: written to the outbox with the change that caused it."""

    tenant: str
    type: str
    key: str
    payload: bytes
