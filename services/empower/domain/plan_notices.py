"""An emergency level's notices as the village's notices (ADR 17, ADR 39).

Command publishes `emergency.level_changed` with the notices of the levels a change
opened; each carries a free word for who is told ("residents", "grid_workers",
"town_office"). Empower sends each one as a notice of the plan's village, from the
platform service `services/command`, and this module says how a word becomes an
audience:

* "residents", "everyone", "all" or "village": the village node, so every person the
  village registered and every user of the village is reached;
* a role of the catalogue, singular or plural ("grid_worker", "volunteers",
  "town_officers"), and "town_office" for `town_officer`: the village's users who
  hold that role;
* any other word: the village's secretary, whose desk hands the notice on.

The request id is derived from the fact's key and the notice's place in it, so a fact
delivered again sends nothing more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.empower.domain.notices_model import Audience
from services.empower.domain.roles import ROLES
from services.kit import tenancy

SENDER = "services/command"
EVERYONE = frozenset({"residents", "resident", "everyone", "all", "village"})
ALIASES = {"town_office": "town_officer"}
FALLBACK_ROLE = "village_secretary"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")
MAX_TITLE = 100


@dataclass(frozen=True)
class PlanNotice:
    """One notice to send for a level change."""

    tenant: str
    title: str
    body: str
    audience: Audience
    request_id: str


def audience_of(word: str, tenant: str) -> Audience:
    """Who a plan's audience word reaches in the village `tenant` (see the module)."""
    key = word.strip().lower().replace(" ", "_").replace("-", "_")
    if key in EVERYONE or not key:
        return Audience(tenant=tenancy.tenant_name(tenant))
    key = ALIASES.get(key, key)
    for role in (key, key.removesuffix("s")):
        if role in ROLES and role != "resident":
            return Audience(role=role)
    return Audience(role=FALLBACK_ROLE)


def title_of(display_name: str, to_level: int) -> str:
    suffix = f": level {to_level}"
    name = display_name.strip() or "Emergency plan"
    return name[: MAX_TITLE - len(suffix)] + suffix


def plan_notices(
    tenant: str,
    key: str,
    display_name: str,
    to_level: int,
    notices: list[tuple[str, str]],
) -> list[PlanNotice]:
    """The notices to send for one level change: `notices` are (audience, text) pairs
    as the fact carries them; `key` is the fact's idempotency key."""
    base = "plan:" + _UNSAFE.sub("_", key)[:100]
    title = title_of(display_name, to_level)
    return [
        PlanNotice(tenant, title, text, audience_of(word, tenant), f"{base}:{i}")
        for i, (word, text) in enumerate(notices)
        if text.strip()
    ]
