"""Routing: which rule decides who handles an event, and why.

Rules belong to tenant nodes and are inherited downward, as event categories are: for
an event in village V the rules of V come first, then those of V's town, district and
city (nearest wins). Within a node, higher `priority` first, then the older rule. The
first rule whose every condition holds routes the event, and the decision says in
words which conditions matched, so the task carries its own explanation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from services.command.domain.model import EventFacts, RoutingDecision, RoutingRule, is_name
from services.kit import tenancy
from services.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument

# Times of day in rules are local: China Standard Time has no daylight saving.
LOCAL_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])\Z")
_CATEGORY = re.compile(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*?)?)\Z")
MAX_PRIORITY = 1000
MAX_GRID_CELLS = 500
MAX_SLA = timedelta(days=90)
MIN_OFFER_TIMEOUT = timedelta(seconds=10)


def ancestors(tenant: str) -> list[str]:
    """The node and every node above it, nearest first."""
    parts = tenant.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def category_matches(pattern: str, code: str) -> bool:
    """`*` matches all; `a.b.*` or `a.b.` the subtree under a.b; `a.b` itself and below."""
    if pattern in ("", "*"):
        return True
    stem = pattern.removesuffix("*").removesuffix(".")
    return code == stem or code.startswith(stem + ".")


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def in_window(rule: RoutingRule, moment: datetime) -> bool:
    """Whether the local time of day lies in [active_from, active_until)."""
    if not rule.active_from and not rule.active_until:
        return True
    local = moment.astimezone(LOCAL_TIME)
    now = local.hour * 60 + local.minute
    start = _minutes(rule.active_from or "00:00")
    end = _minutes(rule.active_until or "24:00") if rule.active_until else 24 * 60
    if start <= end:
        return start <= now < end
    return now >= start or now < end  # overnight


def ordered(rules: Iterable[RoutingRule], tenant: str) -> list[RoutingRule]:
    """Rules that apply at `tenant`, in the order they are tried."""
    depth = {node: i for i, node in enumerate(ancestors(tenant))}
    applicable = [r for r in rules if r.tenant in depth]
    far = len(depth)
    return sorted(
        applicable,
        key=lambda r: (
            depth.get(r.tenant, far),
            -r.priority,
            r.create_time or datetime.min.replace(tzinfo=UTC),
            r.id,
        ),
    )


def conditions(rule: RoutingRule, facts: EventFacts) -> list[str] | None:
    """The conditions that held, in words; None when one failed."""
    said: list[str] = []
    if not category_matches(rule.category, facts.category):
        return None
    said.append(f"category {rule.category or '*'}")
    if rule.min_severity:
        if facts.severity < rule.min_severity:
            return None
        said.append(f"severity >= {rule.min_severity}")
    if rule.grid_cells:
        if facts.grid_cell not in rule.grid_cells:
            return None
        said.append(f"grid cell {facts.grid_cell}")
    if rule.village:
        if not tenancy.contains(rule.village, facts.tenant):
            return None
        said.append(f"village {rule.village}")
    if rule.active_from or rule.active_until:
        if not in_window(rule, facts.time):
            return None
        said.append(f"time {rule.active_from or '00:00'}-{rule.active_until or '24:00'}")
    return said


def rule_name(rule: RoutingRule) -> str:
    return f"tenants/{tenancy.path_to_id(rule.tenant)}/routingRules/{rule.id}"


def route(rules: Sequence[RoutingRule], facts: EventFacts) -> tuple[RoutingRule, RoutingDecision]:
    """The first rule that matches and the decision it makes; FAILED_PRECONDITION
    (UNROUTABLE) naming the category when none does."""
    for rule in ordered(rules, facts.tenant):
        said = conditions(rule, facts)
        if said is None:
            continue
        label = rule.display_name or rule.id
        target = rule.handler_role or ""
        if rule.target_team:
            target = f"{target} in {rule.target_team}" if target else rule.target_team
        explanation = (
            f"rule {label} ({rule.tenant}) matched: {' and '.join(said)} -> {target or 'anyone'}"
        )
        return rule, RoutingDecision(
            rule=rule_name(rule),
            explanation=explanation,
            handler_role=rule.handler_role,
            team=rule.target_team,
        )
    raise FailedPrecondition(
        f"no routing rule of {facts.tenant} or above matches category {facts.category!r} "
        f"with severity {facts.severity}",
        reason="UNROUTABLE",
        metadata={"category": facts.category, "tenant": facts.tenant},
    )


def routes_every_event_of(rule: RoutingRule, code: str) -> bool:
    """A rule routes all of a category only without severity, cell, village or time limits."""
    return (
        category_matches(rule.category, code)
        and rule.min_severity <= 1
        and not rule.grid_cells
        and not rule.village
        and not (rule.active_from or rule.active_until)
    )


def unrouted(rules: Sequence[RoutingRule], tenant: str, categories: Iterable[str]) -> list[str]:
    """Categories for which some event at `tenant` would find no rule."""
    applicable = ordered(rules, tenant)
    return sorted(
        code
        for code in set(categories)
        if not any(routes_every_event_of(r, code) for r in applicable)
    )


def warnings(rule: RoutingRule, categories: Iterable[str] | None, held: set[str]) -> list[str]:
    """What a saved rule names that nothing matches now: a category none of the tenant's
    codes falls under (not checked when the codes are unknown), a role or team that no
    handler who could take its work holds (`held`: the roles and teams they hold)."""
    said: list[str] = []
    if categories is not None and not any(
        category_matches(rule.category, code) for code in categories
    ):
        said.append(f"category {rule.category!r} matches none of {rule.tenant}'s categories")
    for field, name in (("handler_role", rule.handler_role), ("team", rule.target_team)):
        if name and name not in held:
            said.append(f"no handler of {rule.tenant}, below or above holds {field} {name!r}")
    return said


@dataclass(frozen=True)
class _Check:
    field: str
    ok: bool
    description: str


def validate(rule: RoutingRule, prefix: str = "routing_rule.") -> None:
    """INVALID_ARGUMENT naming every wrong field of a rule, before anything is stored."""
    times_ok = all(not t or _HHMM.match(t) for t in (rule.active_from, rule.active_until))
    checks = (
        _Check(
            "category",
            bool(rule.category) and bool(_CATEGORY.match(rule.category)),
            "is required: a category code, a prefix such as 'environment.*', or '*'",
        ),
        _Check(
            "handler_role",
            not rule.handler_role or is_name(rule.handler_role),
            "must be a role name such as 'grid_worker'",
        ),
        _Check(
            "handler_role",
            bool(rule.handler_role or rule.team or rule.department),
            "a rule needs a handler_role, a team or a department to send events to",
        ),
        _Check("team", not rule.team or is_name(rule.team), "must be a team name"),
        _Check(
            "department",
            not rule.department or is_name(rule.department),
            "must be a department name",
        ),
        _Check(
            "priority",
            -MAX_PRIORITY <= rule.priority <= MAX_PRIORITY,
            f"must lie between -{MAX_PRIORITY} and {MAX_PRIORITY}",
        ),
        _Check("min_severity", 0 <= rule.min_severity <= 5, "must lie between 0 and 5"),
        _Check(
            "grid_cells",
            len(rule.grid_cells) <= MAX_GRID_CELLS
            and all(0 < len(c) <= 64 for c in rule.grid_cells),
            f"at most {MAX_GRID_CELLS} cell ids of 1 to 64 characters",
        ),
        _Check(
            "village",
            not rule.village or tenancy.is_valid_path(rule.village),
            "must be a tenant path such as sh/jiading/anting/xingming",
        ),
        _Check(
            "village",
            not rule.village or tenancy.contains(rule.tenant, rule.village),
            "must lie in the rule's own tenant",
        ),
        _Check("active_from", times_ok, "times of day are HH:MM, 00:00 to 23:59"),
        _Check(
            "sla",
            rule.resolution_sla is None or timedelta(0) < rule.resolution_sla <= MAX_SLA,
            "must be positive and at most 90 days",
        ),
        _Check(
            "response_sla",
            rule.response_sla is None or timedelta(0) < rule.response_sla <= MAX_SLA,
            "must be positive and at most 90 days",
        ),
        _Check(
            "offer_timeout",
            MIN_OFFER_TIMEOUT <= rule.offer_timeout <= timedelta(days=1),
            "must lie between 10 seconds and one day",
        ),
        _Check("display_name", len(rule.display_name) <= 200, "at most 200 characters"),
    )
    wrong = [FieldViolation(prefix + c.field, c.description) for c in checks if not c.ok]
    if wrong:
        raise InvalidArgument(wrong)
