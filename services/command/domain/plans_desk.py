"""The plans desk: who may do what with plans and orders, and the decisions themselves.

Scopes say which RPCs a caller may make; this says which plans and which moves. A
caller sees its own tenant node and the subtree below it (anything else is NOT_FOUND,
as if it did not exist); a level is changed by a commander (a person or app holding
`command:write` as well as `command:dispatch`) or by a signal; an order is checked in
and out only by the carer it was given to.

Service plans, orders and the command log are dispatch data as tasks are
(services/command/domain/access.py): they name residents who live alone, where they
live, who visits them and when. A caller who does not see all (grid workers,
volunteers, carers) reads only the orders given to them; no plan (NOT_FOUND, an empty
list) and no log (PERMISSION_DENIED, as the board). Emergency plans, the level banner,
stay readable to anyone who reaches the tenant.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from services.command.domain import access, command_log, emergency, service_orders
from services.command.domain.command_log import LogEntry
from services.command.domain.dispatch import available
from services.command.domain.emergency import EmergencyPlan, LevelChange, PlanDefinition
from services.command.domain.model import HandlerProfile
from services.command.domain.plan_facts import EMERGENCY_LEVEL_CHANGED, Fact
from services.command.domain.plans_ports import PlansStore
from services.command.domain.ports import PeoplePort
from services.command.domain.service_orders import (
    Place,
    ServiceOrder,
    ServicePlan,
    ServicePlanDefinition,
)
from services.kit import tenancy
from services.kit.errors import Aborted, FieldViolation, InvalidArgument, NotFound, PermissionDenied
from services.kit.ids import new_id
from services.kit.principal import Principal

log = logging.getLogger("grassroots.command.plans")

COMMANDER_SCOPE = "command:write"
# Turns a level change into the bytes of its fact (the API layer knows the wire format).
ChangeSerializer = Callable[[LevelChange, str], bytes]
Clock = Callable[[], datetime]
# The handler profiles of one tenant node holding a role: (tenant, role) -> profiles.
Handlers = Callable[[str, str], Awaitable[Sequence[HandlerProfile]]]
# Walks a plan's tasks to what its items say (the command desk's `follow_plan`).
FollowPlan = Callable[[EmergencyPlan], Awaitable[object]]


def plan_name(plan: EmergencyPlan) -> str:
    return f"{tenancy.tenant_name(plan.tenant)}/emergencyPlans/{plan.id}"


def service_plan_name(plan: ServicePlan) -> str:
    return f"{tenancy.tenant_name(plan.tenant)}/servicePlans/{plan.id}"


def order_name(order: ServiceOrder) -> str:
    return f"{tenancy.tenant_name(order.tenant)}/serviceOrders/{order.id}"


def _fingerprint(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _visible(principal: Principal, tenant: str, what: str) -> None:
    if not principal.can_see(tenant):
        raise NotFound(f"{what} not found")


def _check_request_id(request_id: str) -> None:
    if len(request_id) > 128:
        raise InvalidArgument.field("request_id", "at most 128 characters")


def _check_reason(reason: str) -> str:
    if len(reason) > emergency.MAX_TEXT:
        raise InvalidArgument.field("reason", f"at most {emergency.MAX_TEXT} characters")
    return reason.strip()


def check_mask(paths: Sequence[str], updatable: Sequence[str]) -> list[str]:
    """The fields an update changes: the mask's, or every updatable one when it is empty;
    a field that cannot be changed (output only, unknown) is refused on `update_mask`."""
    for path in paths:
        if path not in updatable:
            raise InvalidArgument.field(
                "update_mask",
                f"{path!r} cannot be changed; an update changes {', '.join(updatable)}",
            )
    return list(dict.fromkeys(paths)) or list(updatable)


def _etag_matches(current: EmergencyPlan | ServicePlan, etag: str) -> None:
    if etag and current.etag != etag:
        raise Aborted(f"the plan changed meanwhile (etag {current.etag}); read it and try again")


class OccurrenceTimers(Protocol):
    """Where a plan's next occurrence waits until its orders are due (durable timers)."""

    async def schedule(self, plan: ServicePlan) -> None: ...

    async def forget(
        self, plan_id: str, occurrence: datetime | None, missed: Sequence[datetime] = ()
    ) -> None:
        """Cancel the timers of a deleted plan: its next occurrence's and the escalation
        checks of `missed` occurrences."""
        ...

    async def escalate_after(self, plan: ServicePlan, occurrence: datetime) -> None:
        """Check the occurrence's orders once they are due (plans with an escalation role)."""
        ...


@dataclass(frozen=True)
class Signal:
    """A twin rule's level change, as the bus delivered it."""

    rule: str
    tenant: str
    level: int
    reason: str
    observe_time: datetime


class PlansDesk:
    def __init__(
        self,
        store: PlansStore,
        serialize_change: ChangeSerializer,
        clock: Clock = lambda: datetime.now(UTC),
        on_fact: Callable[[], object] = lambda: None,
        occurrences: OccurrenceTimers | None = None,
        handlers: Handlers | None = None,
        follow_plan: FollowPlan | None = None,
        people: PeoplePort | None = None,
    ) -> None:
        """`on_fact` is called after a change that wrote a fact, to wake the relay;
        `occurrences` is told of each plan's next occurrence, to fire when it comes due;
        `handlers` finds a tenant's handler profiles by role, for plans that name no
        carers and for escalations; `follow_plan` opens and closes the tasks of a plan
        whose level changed; `people` (identity) checks the carers a plan names."""
        self.store = store
        self.serialize_change = serialize_change
        self.clock = clock
        self.on_fact = on_fact
        self.occurrences = occurrences
        self.handlers = handlers
        self.follow_plan = follow_plan
        self.people = people

    async def _follow(self, plan: EmergencyPlan) -> None:
        """Open and close the plan's tasks after its level changed. The change is stored
        first; should this fail, the next change of the plan, or the next start
        (`follow_all`), walks its tasks again."""
        if self.follow_plan is None:
            return
        try:
            await self.follow_plan(plan)
        except Exception:
            log.exception("the tasks of %s wait for the next walk", plan_name(plan))

    async def follow_all(self) -> int:
        """At start: walk the tasks of every plan (a crash may have come between a level
        change and its tasks). Returns how many plans were walked."""
        walked, after = 0, ""
        while True:
            plans = await self.store.list_emergency_plans(tenancy.ALL_TENANTS, 500, after)
            for plan in plans:
                await self._follow(plan)
            walked += len(plans)
            if len(plans) < 500:
                return walked
            after = plans[-1].id

    # Emergency plans -------------------------------------------------------------

    async def create_emergency_plan(
        self, principal: Principal, parent: str, definition: PlanDefinition, request_id: str
    ) -> EmergencyPlan:
        _visible(principal, parent, f"tenant {tenancy.tenant_name(parent)!r}")
        _check_request_id(request_id)
        definition = emergency.validate(definition)
        now = self.clock()
        plan = EmergencyPlan(id=new_id("ep"), tenant=parent, definition=definition, create_time=now)
        key = None
        if request_id:
            fingerprint = _fingerprint(["emergency", parent, definition])
            earlier = await self._replay(principal, parent, request_id, fingerprint)
            if earlier:
                return await self.get_emergency_plan(principal, parent, earlier)
            key = (principal.subject, request_id, fingerprint)
        entry = LogEntry(
            parent,
            now,
            principal.subject,
            command_log.PLAN_CREATED,
            plan_name(plan),
            "",
            f"levels 3, 2, 1; signal {definition.signal or '(none)'}",
        )
        if not await self.store.create_emergency_plan(plan, entry, key):
            earlier = await self._replay(principal, parent, request_id, key[2] if key else "")
            return await self.get_emergency_plan(principal, parent, earlier or plan.id)
        return plan

    async def _replay(
        self, principal: Principal, parent: str, request_id: str, fingerprint: str
    ) -> str | None:
        found = await self.store.find_key(parent, principal.subject, request_id)
        if found is None:
            return None
        resource_id, used_for = found
        if used_for != fingerprint:
            # As everywhere a key comes back with another body: 422 over REST (ADR 3).
            raise InvalidArgument(
                FieldViolation(
                    "request_id", "was used before for a different request; use a new one"
                ),
                reason="IDEMPOTENCY_KEY_REUSED",
            )
        return resource_id

    async def get_emergency_plan(
        self, principal: Principal, tenant: str | None, plan_id: str
    ) -> EmergencyPlan:
        plan = await self.store.get_emergency_plan(plan_id)
        deleted = plan is not None and plan.delete_time is not None
        if plan is None or deleted or (tenant is not None and plan.tenant != tenant):
            raise NotFound(f"emergency plan {plan_id!r} not found")
        _visible(principal, plan.tenant, f"emergency plan {plan_id!r}")
        return plan

    async def list_emergency_plans(
        self, principal: Principal, parent: str, limit: int, after_id: str
    ) -> list[EmergencyPlan]:
        _visible(principal, parent, f"tenant {tenancy.tenant_name(parent)!r}")
        return await self.store.list_emergency_plans(parent, limit, after_id)

    def _decide(
        self, to_level: int, actor: str, reason: str
    ) -> Callable[[EmergencyPlan], tuple[EmergencyPlan, list[LogEntry], list[Fact]] | None]:
        def decision(
            plan: EmergencyPlan,
        ) -> tuple[EmergencyPlan, list[LogEntry], list[Fact]] | None:
            if plan.current_level == to_level:
                return None
            change = emergency.change_level(plan, to_level, actor, reason, self.clock())
            name = plan_name(plan)
            fact = Fact(
                plan.tenant,
                EMERGENCY_LEVEL_CHANGED,
                f"{plan.id}:{change.plan.version}",
                self.serialize_change(change, name),
            )
            return change.plan, [command_log.level_changed(change, name)], [fact]

        return decision

    async def change_level(
        self,
        principal: Principal,
        tenant: str | None,
        plan_id: str,
        level: int | None,
        reason: str,
        etag: str,
    ) -> EmergencyPlan:
        to_level = emergency.check_level(level)
        if not reason.strip():
            raise InvalidArgument.field("reason", "is required: say why the level changes")
        if len(reason) > emergency.MAX_TEXT:
            raise InvalidArgument.field("reason", f"at most {emergency.MAX_TEXT} characters")
        plan = await self.get_emergency_plan(principal, tenant, plan_id)
        if principal.kind != "service" and not principal.has_scope(COMMANDER_SCOPE):
            raise PermissionDenied(
                "changing an emergency level takes a commander (command:write and command:dispatch)"
            )
        decide = self._decide(to_level, principal.subject, reason.strip())

        def guarded(
            current: EmergencyPlan,
        ) -> tuple[EmergencyPlan, list[LogEntry], list[Fact]] | None:
            _etag_matches(current, etag)
            return decide(current)

        stored = await self.store.decide_plan(plan.id, guarded)
        self.on_fact()
        if stored is None:
            raise NotFound(f"emergency plan {plan_id!r} not found")
        await self._follow(stored)
        return stored

    async def update_emergency_plan(
        self,
        principal: Principal,
        tenant: str | None,
        plan_id: str,
        changes: Mapping[str, Any],
        etag: str,
        reason: str,
    ) -> EmergencyPlan:
        """Change the fields in `changes` (the contract's names, checked with
        `check_mask`), validated as a create is; the levels and the signal of a plan with
        an active level are refused. Nothing changed writes nothing."""
        reason = _check_reason(reason)
        plan = await self.get_emergency_plan(principal, tenant, plan_id)
        now = self.clock()

        def decision(
            current: EmergencyPlan,
        ) -> tuple[EmergencyPlan, list[LogEntry], list[Fact]] | None:
            _etag_matches(current, etag)
            definition = emergency.validate(replace(current.definition, **changes))
            changed, fields = emergency.update(current, definition, now)
            if not fields:
                return None
            entry = LogEntry(
                current.tenant,
                now,
                principal.subject,
                command_log.PLAN_UPDATED,
                plan_name(current),
                reason,
                f"changed {', '.join(fields)}",
            )
            return changed, [entry], []

        stored = await self.store.decide_plan(plan.id, decision)
        if stored is None:
            raise NotFound(f"emergency plan {plan_id!r} not found")
        return stored

    async def delete_emergency_plan(
        self, principal: Principal, tenant: str | None, plan_id: str, etag: str, reason: str
    ) -> None:
        """Delete a stood-down plan: kept for its tasks and its log, never read, listed or
        raised again; its request ids are forgotten (a create with one makes a new plan)."""
        reason = _check_reason(reason)
        plan = await self.get_emergency_plan(principal, tenant, plan_id)
        now = self.clock()

        def decision(
            current: EmergencyPlan,
        ) -> tuple[EmergencyPlan, list[LogEntry], list[Fact]] | None:
            _etag_matches(current, etag)
            deleted = emergency.delete(current, now)
            entry = LogEntry(
                current.tenant,
                now,
                principal.subject,
                command_log.PLAN_DELETED,
                plan_name(current),
                reason,
                f"{current.definition.display_name}; "
                f"signal {current.definition.signal or '(none)'}",
            )
            return deleted, [entry], []

        stored = await self.store.decide_plan(plan.id, decision)
        if stored is None:
            raise NotFound(f"emergency plan {plan_id!r} not found")
        await self._follow(stored)  # tasks a failed walk left open are closed now

    async def apply_signal(self, signal: Signal) -> list[EmergencyPlan]:
        """Move every plan that follows the rule; a signal older than the last one a plan
        applied is logged and ignored (the bus may deliver an old one late)."""
        if signal.level != emergency.STOOD_DOWN and signal.level not in emergency.LEVELS:
            log.warning("ignoring %s: level %s is not 0-3", signal.rule, signal.level)
            return []
        moved = []
        actor = command_log.signal_actor(signal.rule)
        reason = signal.reason or f"{signal.rule} moved to level {signal.level}"
        for plan in await self.store.plans_following(signal.rule):
            if not tenancy.contains(plan.tenant, signal.tenant):
                continue  # a rule outside the plan's subtree cannot move it
            decide = self._decide(signal.level, actor, reason)

            def decision(
                current: EmergencyPlan, decide: Callable = decide
            ) -> tuple[EmergencyPlan, list[LogEntry], list[Fact]] | None:
                if current.signal_time is not None and signal.observe_time <= current.signal_time:
                    return None
                outcome = decide(current)
                if outcome is None:
                    return replace(current, signal_time=signal.observe_time), [], []
                changed, logs, facts = outcome
                return replace(changed, signal_time=signal.observe_time), logs, facts

            stored = await self.store.decide_plan(plan.id, decision)
            self.on_fact()
            if stored is not None:
                await self._follow(stored)
                moved.append(stored)
        return moved

    async def list_log(
        self, principal: Principal, parent: str, resource: str, limit: int, before_seq: int
    ) -> list[LogEntry]:
        _visible(principal, parent, f"tenant {tenancy.tenant_name(parent)!r}")
        access.require_dispatcher(principal, "the command log")
        if len(resource) > 300:
            raise InvalidArgument.field("resource", "at most 300 characters")
        return await self.store.list_log(parent, resource, limit, before_seq)

    # Service plans and orders ----------------------------------------------------

    async def create_service_plan(
        self,
        principal: Principal,
        parent: str,
        definition: ServicePlanDefinition,
        request_id: str,
    ) -> ServicePlan:
        _visible(principal, parent, f"tenant {tenancy.tenant_name(parent)!r}")
        _check_request_id(request_id)
        now = self.clock()
        # iCalendar times are whole seconds: DTSTART keeps none of a timestamp's fraction.
        definition = replace(definition, start_time=definition.start_time.replace(microsecond=0))
        # Off the loop: a rule's first occurrence can take a few hundred milliseconds.
        first = await asyncio.to_thread(service_orders.validate, definition, now)
        await self._check_carers(parent, definition.carers)
        plan = ServicePlan(new_id("sp"), parent, definition, now, first)
        key = None
        if request_id:
            fingerprint = _fingerprint(["service", parent, definition])
            earlier = await self._replay(principal, parent, request_id, fingerprint)
            if earlier:
                return await self.get_service_plan(principal, parent, earlier)
            key = (principal.subject, request_id, fingerprint)
        entry = LogEntry(
            parent,
            now,
            principal.subject,
            command_log.SERVICE_PLAN_CREATED,
            service_plan_name(plan),
            "",
            f"{definition.recurrence}; {len(definition.targets)} targets; "
            f"first {first.isoformat()}",
        )
        if not await self.store.create_service_plan(plan, entry, key):
            earlier = await self._replay(principal, parent, request_id, key[2] if key else "")
            return await self.get_service_plan(principal, parent, earlier or plan.id)
        if self.occurrences is not None:
            await self.occurrences.schedule(plan)
        return plan

    async def get_service_plan(
        self, principal: Principal, tenant: str | None, plan_id: str
    ) -> ServicePlan:
        plan = await self.store.get_service_plan(plan_id)
        deleted = plan is not None and plan.delete_time is not None
        if plan is None or deleted or (tenant is not None and plan.tenant != tenant):
            raise NotFound(f"service plan {plan_id!r} not found")
        _visible(principal, plan.tenant, f"service plan {plan_id!r}")
        if not access.sees_all(principal):
            raise NotFound(f"service plan {plan_id!r} not found")  # as another village's
        return plan

    async def list_service_plans(
        self, principal: Principal, parent: str, limit: int, after_id: str
    ) -> list[ServicePlan]:
        _visible(principal, parent, f"tenant {tenancy.tenant_name(parent)!r}")
        if not access.sees_all(principal):
            return []  # a carer reads the orders given to them, not the plans
        return await self.store.list_service_plans(parent, limit, after_id)

    async def _check_carers(self, tenant: str, carers: Sequence[str]) -> None:
        """Every named carer is a user identity knows, enabled, at the plan's tenant or a
        node above it (whom a task may be given to there); one call to identity for the
        whole list. An unknown user and another village's get the same answer. Carers the
        plan's own checks refuse (blank, too long, too many) are left to them."""
        if self.people is None or not carers or len(carers) > service_orders.MAX_CARERS:
            return
        if any(not c.strip() or len(c) > 200 for c in carers):
            return
        found = await self.people.tenants_of(tenant.split("/")[0], list(dict.fromkeys(carers)))
        problems: list[FieldViolation] = []
        for i, carer in enumerate(carers):
            home = found.get(carer)
            if home is None or not tenancy.contains(home, tenant):
                problems.append(
                    FieldViolation(
                        f"service_plan.carers[{i}]",
                        f"{carer[:80]!r} is not a user of {tenant} or above",
                    )
                )
        if problems:
            raise InvalidArgument(problems)

    async def update_service_plan(
        self,
        principal: Principal,
        tenant: str | None,
        plan_id: str,
        changes: Mapping[str, Any],
        etag: str,
        reason: str,
    ) -> ServicePlan:
        """Change the fields in `changes` (domain attribute names), checked as a create is.
        Orders already made keep what they were made with; the next occurrence follows
        the new rule (a timer is scheduled for it). Nothing changed writes nothing. A
        given `etag` the plan no longer has refuses the change (ABORTED)."""
        reason = _check_reason(reason)
        plan = await self.get_service_plan(principal, tenant, plan_id)
        if "carers" in changes:
            await self._check_carers(plan.tenant, tuple(changes["carers"]))
        now = self.clock()
        if "start_time" in changes:
            start = changes["start_time"]
            assert isinstance(start, datetime)
            changes = {**changes, "start_time": start.replace(microsecond=0)}
        before: list[ServicePlan] = []

        def decision(
            current: ServicePlan, waiting: Sequence[ServiceOrder]
        ) -> tuple[ServicePlan, Sequence[ServiceOrder], Sequence[LogEntry]]:
            _etag_matches(current, etag)
            before[:] = [current]
            definition = replace(current.definition, **changes)
            changed, fields = service_orders.update(current, definition, now)
            if not fields:
                return current, [], []
            following = changed.next_occurrence
            entry = LogEntry(
                current.tenant,
                now,
                principal.subject,
                command_log.SERVICE_PLAN_UPDATED,
                service_plan_name(current),
                reason,
                f"changed {', '.join(fields)}; next "
                f"{following.isoformat() if following else '(none)'}",
            )
            return changed, [], [entry]

        stored = await self.store.decide_service_plan(plan.id, decision)
        if stored is None:
            raise NotFound(f"service plan {plan_id!r} not found")
        old = before[0].next_occurrence if before else None
        if self.occurrences is not None and stored.next_occurrence != old:
            # The old occurrence's timer is left: firing, it finds nothing due and
            # schedules the plan's next again (ids are idempotent), whereas a cancelled
            # id could never be scheduled again should the plan move back to it.
            await self.occurrences.schedule(stored)
        return stored

    async def delete_service_plan(
        self, principal: Principal, tenant: str | None, plan_id: str, etag: str, reason: str
    ) -> None:
        """Stop the plan: no more orders, its orders nobody checked in to are cancelled
        (checked-in and done ones stay), its timers are cancelled. The plan is kept for
        its orders (a checked-in visit checks out within its distance) and its log. A
        given `etag` the plan no longer has refuses the delete (ABORTED)."""
        reason = _check_reason(reason)
        plan = await self.get_service_plan(principal, tenant, plan_id)
        now = self.clock()
        before: list[ServicePlan] = []
        occurrences: set[datetime] = set()

        def decision(
            current: ServicePlan, waiting: Sequence[ServiceOrder]
        ) -> tuple[ServicePlan, Sequence[ServiceOrder], Sequence[LogEntry]]:
            _etag_matches(current, etag)
            before[:] = [current]
            occurrences.clear()
            occurrences.update(o.scheduled_time for o in waiting)
            deleted = replace(
                current, next_occurrence=None, delete_time=now, version=current.version + 1
            )
            name = service_plan_name(current)
            cancelled = [service_orders.cancel(o) for o in waiting]
            logs = [
                LogEntry(
                    current.tenant,
                    now,
                    principal.subject,
                    command_log.SERVICE_PLAN_DELETED,
                    name,
                    reason,
                    f"{current.definition.display_name}; cancelled {len(cancelled)} orders "
                    "nobody had checked in to",
                ),
                *(
                    LogEntry(
                        o.tenant,
                        now,
                        principal.subject,
                        command_log.ORDER_CANCELLED,
                        order_name(o),
                        reason,
                        f"{name} was deleted",
                    )
                    for o in cancelled
                ),
            ]
            return deleted, cancelled, logs

        stored = await self.store.decide_service_plan(plan.id, decision)
        if stored is None:
            raise NotFound(f"service plan {plan_id!r} not found")
        if self.occurrences is not None and before:
            # Escalation checks are due only for occurrences with orders still waiting.
            await self.occurrences.forget(stored.id, before[0].next_occurrence, sorted(occurrences))

    async def _order_to_move(
        self, principal: Principal, tenant: str | None, order_id: str
    ) -> ServiceOrder:
        """The order a check-in or out is asked of; whose move it is, the move says (403)."""
        order = await self.store.get_order(order_id)
        if order is None or (tenant is not None and order.tenant != tenant):
            raise NotFound(f"service order {order_id!r} not found")
        _visible(principal, order.tenant, f"service order {order_id!r}")
        return order

    async def get_order(
        self, principal: Principal, tenant: str | None, order_id: str
    ) -> ServiceOrder:
        order = await self._order_to_move(principal, tenant, order_id)
        if not access.sees_all(principal) and order.handler != principal.subject:
            raise NotFound(f"service order {order_id!r} not found")  # as another village's
        return order

    async def list_orders(
        self,
        principal: Principal,
        parent: str,
        handler: str,
        plan_id: str,
        limit: int,
        after: tuple[int, str] | None,
    ) -> list[ServiceOrder]:
        _visible(principal, parent, f"tenant {tenancy.tenant_name(parent)!r}")
        if not access.sees_all(principal):
            handler = principal.subject
        filters = {"handler": handler, "plan_id": plan_id}
        return await self.store.list_orders(parent, filters, limit, after)

    async def visit(
        self,
        principal: Principal,
        tenant: str | None,
        order_id: str,
        place: Place,
        note: str | None,
    ) -> ServiceOrder:
        """Check in (note None) or out; a refusal for distance is logged, then raised."""
        order = await self._order_to_move(principal, tenant, order_id)
        plan = await self.store.get_service_plan(order.plan_id)
        limit = plan.definition.max_distance_m if plan else service_orders.MAX_DISTANCE_M
        now = self.clock()
        checking_out = note is not None
        action = command_log.ORDER_CHECKED_OUT if checking_out else command_log.ORDER_CHECKED_IN

        def decision(current: ServiceOrder) -> tuple[ServiceOrder, Sequence[LogEntry]]:
            if checking_out:
                changed = service_orders.check_out(
                    current, principal.subject, place, note or "", limit, now
                )
            else:
                changed = service_orders.check_in(current, principal.subject, place, limit, now)
            far = service_orders.distance_m(place, current.target.place)
            entry = LogEntry(
                current.tenant,
                now,
                principal.subject,
                action,
                order_name(current),
                note or "",
                f"{far:.0f} m from the target (allowed {limit:g} m)",
            )
            return changed, [entry]

        try:
            return await self.store.decide_order(order.id, decision)
        except InvalidArgument as exc:
            if order.handler == principal.subject and exc.violations[0].field == "location":
                refusal = LogEntry(
                    order.tenant,
                    now,
                    principal.subject,
                    command_log.CHECK_IN_REFUSED,
                    order_name(order),
                    exc.violations[0].description,
                )
                await self.store.append_log([refusal])
            raise

    # The scheduler's step --------------------------------------------------------

    async def generate_due(self, lead: timedelta, limit: int = 100) -> int:
        """Make the orders of every plan's next occurrence due within `lead` from now;
        returns how many occurrences were recorded (one per plan per call)."""
        now = self.clock()
        recorded = 0
        for plan in await self.store.due_service_plans(now + lead, limit):
            recorded += await self._record_next(plan, now)
        return recorded

    async def catch_up(self, plan_id: str, lead: timedelta) -> ServicePlan | None:
        """Make every occurrence of one plan due within `lead` from now, oldest first, and
        return the plan as it then stands (None when it no longer exists). Safe to run
        from several replicas at once: an occurrence is recorded only by whoever moves
        its plan on first."""
        while True:
            plan = await self.store.get_service_plan(plan_id)
            now = self.clock()
            if plan is not None and plan.delete_time is not None:
                return None
            if plan is None or plan.next_occurrence is None or plan.next_occurrence > now + lead:
                return plan
            await self._record_next(plan, now)

    async def _on_duty(self, tenant: str, role: str, moment: datetime) -> dict[str, Place | None]:
        """Subject -> profile position of the tenant's handlers holding `role` who are on
        duty at `moment`."""
        if self.handlers is None or not role:
            return {}
        return {
            p.user: Place(p.position.longitude, p.position.latitude) if p.position else None
            for p in await self.handlers(tenant, role)
            if available(p, moment)
        }

    async def _record_next(self, plan: ServicePlan, now: datetime) -> int:
        occurrence = plan.next_occurrence
        if occurrence is None:
            return 0
        definition = plan.definition
        positions: dict[str, Place]
        if definition.carers:
            carers = list(definition.carers)
            positions = await self.store.last_positions(carers)
        else:  # the village's own carers: on duty when the visit is due, where they are
            on_duty = await self._on_duty(plan.tenant, definition.handler_role, occurrence)
            carers = sorted(on_duty)
            positions = {c: p for c, p in on_duty.items() if p is not None}
        load = await self.store.open_orders_by_handler(carers) if carers else {}
        chosen = service_orders.assign(definition.targets, carers, positions, load)
        orders = service_orders.orders_for(plan, occurrence, chosen, lambda: new_id("so"))
        following = service_orders.next_occurrence(
            definition.recurrence, definition.start_time, occurrence
        )
        logs = [
            LogEntry(
                plan.tenant,
                now,
                "command/scheduler",
                command_log.ORDER_ASSIGNED if o.handler else command_log.ORDER_UNASSIGNED,
                order_name(o),
                _why(o, positions, bool(definition.carers)),
                f"{service_plan_name(plan)} at {occurrence.isoformat()}",
            )
            for o in orders
        ]
        if definition.escalation_role and self.occurrences is not None:
            # Before the orders exist, so a crash in between cannot lose the check; the
            # timer is keyed by plan and occurrence, so a replica racing us makes no other.
            await self.occurrences.escalate_after(plan, occurrence)
        return int(await self.store.record_occurrence(plan, orders, following, logs))

    async def escalate_missed(self, plan_id: str, occurrence: datetime) -> int:
        """Give every order of the occurrence that nobody checked in to by its due time to
        the nearest on-duty handler holding the plan's escalation role; how many moved."""
        plan = await self.store.get_service_plan(plan_id)
        if plan is None or plan.delete_time is not None or not plan.definition.escalation_role:
            return 0
        now = self.clock()
        # Orders of this occurrence: one per target, listed from its scheduled time on.
        start = int(occurrence.timestamp() * 1_000_000) - 1
        listed = await self.store.list_orders(
            plan.tenant,
            {"plan_id": plan.id},
            len(plan.definition.targets) + 1,
            (start, "\uffff"),
        )
        due = [
            o for o in listed if o.scheduled_time == occurrence and service_orders.missed(o, now)
        ]
        if not due:
            return 0
        role = plan.definition.escalation_role
        escalators = await self._on_duty(plan.tenant, role, now)
        moved = 0
        for order in due:
            to = service_orders.nearest(order.target.place, escalators)

            def decision(
                current: ServiceOrder, to: str = to
            ) -> tuple[ServiceOrder, Sequence[LogEntry]]:
                if not service_orders.missed(current, now):
                    return current, []  # checked in meanwhile
                entry = LogEntry(
                    current.tenant,
                    now,
                    "command/scheduler",
                    command_log.ORDER_ESCALATED,
                    order_name(current),
                    f"nobody checked in by {current.due_time.isoformat()}",
                    f"{current.handler or '(nobody)'} -> {to or f'(no {role} on duty)'}",
                )
                return service_orders.escalate(current, to, now), [entry]

            changed = await self.store.decide_order(order.id, decision)
            moved += changed.escalate_time == now
        return moved


def _why(order: ServiceOrder, positions: dict[str, Place], named: bool) -> str:
    if not order.handler:
        return "the plan names no carers" if named else "no carer with the role is on duty"
    place = positions.get(order.handler)
    if place is None:
        return f"{order.handler}: no known position; fewest open orders"
    far = service_orders.distance_m(place, order.target.place)
    return f"{order.handler}: nearest with room, {far:.0f} m away"
