"""The command desk: routes events into tasks, offers them, follows them to the end.

Everything a caller or a timer does to a task goes through here: routing picks the
rule (services/command/domain/routing.py), dispatch picks the handler
(dispatch.py), the lifecycle table says which move is legal and whose it is
(tasks.py), and the SLA module turns deadlines into durable timers (sla.py). Each
change is one store transaction with its `task.*` facts and timers; the event is moved
along by the event sync, which follows those facts (services/command/event_sync.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.command.domain import access, command_log, plan_tasks, routing, sla
from services.command.domain.dispatch import Roster, choose
from services.command.domain.emergency import STOOD_DOWN, EmergencyPlan
from services.command.domain.model import (
    EscalationAction,
    EventFacts,
    HandlerProfile,
    Position,
    RoutingDecision,
    RoutingRule,
    Task,
    TaskState,
    Transfer,
    plan_task_origin,
)
from services.command.domain.ports import (
    BoardCounts,
    CommandStore,
    EventsPort,
    Fact,
    NewTask,
    PeoplePort,
    RoadsPort,
)
from services.command.domain.task_order import NEWEST_FIRST, TaskOrder
from services.command.domain.tasks import Move, check
from services.command.domain.timers import Scheduler, Timer
from services.kit import tenancy
from services.kit.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.kit.ids import new_id
from services.kit.media import is_attachment_name
from services.kit.principal import Principal

log = logging.getLogger("grassroots.command.desk")

WRITE_SCOPE = "command:write"
MAX_NOTE = 2000
MAX_MEDIA = 10
_UNROUTED = "no routing rule matches"
# A routing target: the tenants whose handlers may take it, the role and the team.
RosterKey = tuple[tuple[str, ...], str, str]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _fact(task: Task, kind: str, serialize: Callable[[Task], bytes]) -> Fact:
    return Fact(f"task.{kind}", f"{task.id}:{kind}:{task.version}", task.tenant, serialize(task))


def _rule_id_of(tenant: str, request_id: str) -> str:
    """The id a rule made with this request id gets, so a retry finds it."""
    digest = hashlib.sha256(f"{tenant}\n{request_id}".encode()).hexdigest()[:26]
    return f"rr_{digest}"


class CommandDesk:
    def __init__(
        self,
        store: CommandStore,
        events: EventsPort,
        scheduler: Scheduler,
        *,
        serialize: Callable[[Task], bytes],
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
        roster_seconds: float = 2.0,
        on_breach: Callable[[str], None] = lambda deadline: None,
        roads: RoadsPort | None = None,
        log_entries: Callable[[Sequence[command_log.LogEntry]], Awaitable[None]] | None = None,
        people: PeoplePort | None = None,
    ) -> None:
        """`on_breach(deadline)` hears of each SLA deadline missed (response, resolution);
        `log_entries` appends to the command log (escalations that found nobody)."""
        self.store = store
        self.log_entries = log_entries
        # Identity: a profile or a transfer names a user who must exist at the tenant or
        # above (None only where no identity service runs: the domain's own tests).
        self.people = people
        self.on_breach = on_breach
        self.roads = roads
        # Candidates per routing target, kept for `roster_seconds` and counted forward
        # as offers are made, so a burst of reports does not read every handler each
        # time; any change to a profile here drops them.
        self.roster_seconds = roster_seconds
        self._rosters: dict[RosterKey, tuple[float, Roster]] = {}
        self._refreshing: set[RosterKey] = set()
        self._background: set[asyncio.Task[None]] = set()
        self.events = events
        self.scheduler = scheduler
        self.serialize = serialize
        self.on_change = on_change
        self.clock = clock
        scheduler.on(sla.OFFER_EXPIRED, self._offers_expired)
        scheduler.on(sla.RESPONSE_DUE, self._responses_due)
        scheduler.on(sla.RESOLUTION_DUE, self._resolutions_due)
        scheduler.on(sla.AT_RISK, self._at_risk)

    # ---- handler profiles ---------------------------------------------------------------

    async def create_handler(self, principal: Principal, profile: HandlerProfile) -> HandlerProfile:
        if not principal.can_see(profile.tenant):
            raise NotFound(f"tenant {profile.tenant!r} not found")
        # Before the store's duplicate check: a 409 must not tell another village's
        # user has a profile.
        await self.check_users(profile.tenant, [profile.user], "handler_profile.user", principal)
        made = replace(profile, create_time=self.clock(), open_tasks=0, last_assigned=None)
        self._rosters.clear()
        return await self.store.create_handler(made)

    async def check_users(
        self, tenant: str, users: Sequence[str], field: str, principal: Principal | None = None
    ) -> None:
        """Every user exists in identity, enabled, at `tenant` or a node above it (a handler
        of this village or above), and, given the caller, within the caller's subtree.
        One call to identity for all of them. An unknown user and one elsewhere get the
        same answer, so the answer tells nothing of other villages' people."""
        if self.people is None or not users:
            return
        found = await self.people.tenants_of(tenant.split("/")[0], users)
        above = routing.ancestors(tenant)
        for user in users:
            home = found.get(user)
            if (
                home is None
                or home not in above
                or (principal is not None and not principal.can_see(home))
            ):
                raise InvalidArgument.field(
                    field, f"{user[:80]!r} is not a user of {tenant} or above that you manage"
                )

    async def get_handler(
        self, principal: Principal, tenant: str, handler_id: str
    ) -> HandlerProfile:
        found = await self.store.get_handler(principal.tenant, tenant, handler_id)
        if not access.sees_all(principal) and found.user != principal.subject:
            raise NotFound(f"handler {handler_id!r} not found")  # as another village's
        return found

    async def list_handlers(
        self, principal: Principal, tenant: str, filters: Mapping[str, str], limit: int, offset: int
    ) -> list[HandlerProfile]:
        if not principal.can_see(tenant):
            raise NotFound(f"tenant {tenant!r} not found")
        if not access.sees_all(principal):
            filters = {**filters, "user": principal.subject}
        return await self.store.list_handlers(tenant, filters, limit, offset)

    async def update_handler(
        self, principal: Principal, tenant: str, handler_id: str, changes: Mapping[str, object]
    ) -> HandlerProfile:
        current = await self.get_handler(principal, tenant, handler_id)
        updated = replace(current, **changes)  # type: ignore[arg-type]
        await self.store.update_handler(updated)
        self._rosters.clear()
        await self.offer_waiting(tenant)
        return await self.get_handler(principal, tenant, handler_id)

    async def delete_handler(self, principal: Principal, tenant: str, handler_id: str) -> None:
        """The person takes no more work here; refused while they hold open tasks (the
        store decides it in the deleting transaction). Tasks they finished keep them."""
        await self.store.delete_handler(principal.tenant, tenant, handler_id)
        self._rosters.clear()

    async def report_position(
        self, principal: Principal, tenant: str, handler_id: str, position: Position
    ) -> HandlerProfile:
        """The handler's own app (or a desk) says where the handler is."""
        current = await self.store.get_handler(principal.tenant, tenant, handler_id)
        if principal.subject != current.user and not principal.has_scope(WRITE_SCOPE):
            raise PermissionDenied(
                "only the handler or a desk with command:write may report this position",
                reason="NOT_THE_HANDLER",
            )
        updated = replace(current, position=position, position_time=self.clock())
        await self.store.update_handler(updated)
        self._rosters.clear()
        return updated

    # ---- routing rules ------------------------------------------------------------------

    async def create_rule(
        self, principal: Principal, rule: RoutingRule, request_id: str = ""
    ) -> tuple[RoutingRule, list[str]]:
        """Store a rule and report the tenant's categories that no rule routes. A retry
        with the same request id (and no id of its own) answers the rule it made.
        `rule_warnings` says what the saved rule names that nothing matches."""
        if not principal.can_see(rule.tenant):
            raise NotFound(f"tenant {rule.tenant!r} not found")
        routing.validate(rule)
        retried = not rule.id and bool(request_id)
        rule_id = rule.id or (_rule_id_of(rule.tenant, request_id) if retried else new_id("rr"))
        made = replace(rule, id=rule_id, create_time=self.clock())
        try:
            await self.store.create_rule(made)
        except AlreadyExists:
            if not retried:
                raise
            made = await self.store.get_rule(rule.tenant, rule.tenant, rule_id)
        return made, await self.unrouted(made.tenant)

    async def rule_warnings(self, rule: RoutingRule) -> list[str]:
        """What the rule names that nothing matches now (routing.warnings): unknown
        categories and roles are allowed, since they may come later, but said."""
        try:
            codes: list[str] | None = await self.events.category_codes(rule.tenant)
        except Exception:  # the events service is down: categories are not checked
            codes = None
        held: set[str] = set()
        for name, kind in ((rule.handler_role, "role"), (rule.target_team, "team")):
            if not name:
                continue
            below = await self.store.list_handlers(rule.tenant, {kind: name}, 1, 0)
            above = await self.store.candidates(
                routing.ancestors(rule.tenant), *((name, "") if kind == "role" else ("", name))
            )
            if below or above:
                held.add(name)
        return routing.warnings(rule, codes, held)

    async def unrouted(self, tenant: str) -> list[str]:
        """Categories of the tenant left unrouted by its rules and inherited ones."""
        try:
            codes = await self.events.category_codes(tenant)
        except Exception:  # the events service is down: the rule is saved all the same
            log.warning("categories of %s unavailable; coverage not checked", tenant)
            return []
        rules = await self.store.rules_of(routing.ancestors(tenant))
        return routing.unrouted(rules, tenant, codes)

    async def rules_at(self, principal: Principal, tenant: str) -> list[RoutingRule]:
        """The rules that apply at a tenant (its own and inherited), in the order tried."""
        if not principal.can_see(tenant):
            raise NotFound(f"tenant {tenant!r} not found")
        return routing.ordered(await self.store.rules_of(routing.ancestors(tenant)), tenant)

    async def get_rule(self, principal: Principal, tenant: str, rule_id: str) -> RoutingRule:
        for rule in await self.rules_at(principal, tenant):
            if rule.tenant == tenant and rule.id == rule_id:
                return rule
        raise NotFound(f"routing rule {rule_id!r} not found")

    async def delete_rule(self, principal: Principal, tenant: str, rule_id: str) -> list[str]:
        await self.store.delete_rule(principal.tenant, tenant, rule_id)
        return await self.unrouted(tenant)

    async def explain(self, principal: Principal, facts: EventFacts) -> RoutingDecision:
        if not principal.can_see(facts.tenant):
            raise NotFound(f"tenant {facts.tenant!r} not found")
        if not facts.category:
            raise InvalidArgument.field("category", "is required")
        rules = await self.store.rules_of(routing.ancestors(facts.tenant))
        return routing.route(rules, facts)[1]

    # ---- dispatch -----------------------------------------------------------------------

    async def dispatch(self, facts: EventFacts) -> Task:
        """One task per event (idempotent on the event): routed, and offered when a
        handler is available. An event no rule routes waits for a desk, explained."""
        return (await self.dispatch_many([facts]))[0]

    async def dispatch_many(self, reports: Sequence[EventFacts]) -> list[Task]:
        """`dispatch` for a burst of reports: one read of their existing tasks and one
        transaction for the new ones, so a queue of reports drains faster the longer it is."""
        known = await self.store.tasks_of_events([facts.event for facts in reports])
        now = self.clock()
        rules_of: dict[str, list[RoutingRule]] = {}
        new: dict[str, NewTask] = {}
        for facts in reports:
            if facts.event in known or facts.event in new:
                continue
            if facts.tenant not in rules_of:
                rules_of[facts.tenant] = await self.store.rules_of(routing.ancestors(facts.tenant))
            try:
                rule, decision = routing.route(rules_of[facts.tenant], facts)
            except FailedPrecondition as refusal:
                rule = None
                decision = RoutingDecision("", f"{_UNROUTED}: {refusal.message}", "", "")
            task = self._new_task(facts, rule, decision, now)
            timers: list[Timer] = []
            if rule is not None:
                task, timers = await self._first_offer(task, now)
            facts_out = [_fact(task, "created", self.serialize)]
            if task.state is TaskState.OFFERED:
                facts_out.append(_fact(task, "offered", self.serialize))
            new[facts.event] = NewTask(task, facts_out, timers)
        if new:
            written = await self.store.create_tasks(list(new.values()))
            for (stored, created), made in zip(written, new.values(), strict=True):
                known[stored.event] = stored
                if created:
                    await self._after_offer(stored, made.timers)
        return [known[facts.event] for facts in reports]

    def _new_task(
        self, facts: EventFacts, rule: RoutingRule | None, decision: RoutingDecision, now: datetime
    ) -> Task:
        tenants: tuple[str, ...] = ()
        if rule is not None:
            tenants = tuple(
                node
                for node in routing.ancestors(facts.tenant)
                if tenancy.contains(rule.tenant, node)
            )
        return Task(
            tenant=facts.tenant,
            id=new_id("task"),
            event=facts.event,
            state=TaskState.WAITING,
            category=facts.category,
            severity=facts.severity,
            grid_cell=facts.grid_cell,
            village=facts.tenant,
            location=facts.location,
            routing=decision,
            create_time=now,
            update_time=now,
            response_due=now + rule.response_sla if rule and rule.response_sla else None,
            resolution_due=now + rule.resolution_sla if rule and rule.resolution_sla else None,
            escalation_action=rule.escalation_action if rule else EscalationAction.ADD_SUPERVISOR,
            offer_timeout=rule.offer_timeout if rule else RoutingRule("", "", "").offer_timeout,
            response_sla=rule.response_sla if rule else None,
            resolution_sla=rule.resolution_sla if rule else None,
            candidate_tenants=tenants,
        )

    async def _first_offer(self, task: Task, now: datetime) -> tuple[Task, list[Timer]]:
        timers: list[Timer] = []
        if task.response_sla is not None:
            timers += sla.deadline_timers(task, sla.RESPONSE_DUE, now, task.response_sla, 0)
        if task.resolution_sla is not None:
            timers += sla.deadline_timers(task, sla.RESOLUTION_DUE, now, task.resolution_sla, 0)
        offered = await self._offer(task, now)
        if offered is not None:
            task = offered
            timers.append(sla.offer_timer(task))
        return task, timers

    async def _offer(
        self,
        task: Task,
        now: datetime,
        tenants: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> Task | None:
        """The task offered to the best available candidate, or None when nobody is. A
        plan's dispatch sends different people: the holders of the item's other slots
        are passed over. A plan task naming no role or team is for a desk to hand on:
        dispatch offers it to nobody."""
        if not _offerable(task):  # unrouted: waits for a desk, whoever holds no role
            return None
        key = (
            tuple(tenants or task.candidate_tenants or (task.village,)),
            task.routing.handler_role,
            task.routing.team,
        )
        roster = await self._roster(key, now)
        roads = None
        if self.roads is not None and task.location is not None:
            roads = await self.roads.network(task.village)
        passed = [*task.passed_by, *exclude, *await self._sibling_holders(task)]
        choice = choose(roster, task.location, exclude=passed, roads=roads)
        if choice is None:
            return None
        roster.assigned(choice.user, now)
        profile = choice.profile
        return replace(
            _plan_explained(task, offered=True),
            state=TaskState.OFFERED,
            handler=profile.user,
            handler_profile=f"tenants/{tenancy.path_to_id(profile.tenant)}/handlers/{profile.id}",
            offer_time=now,
            offer_expire=now + task.offer_timeout,
            accept_time=None,
            start_time=None,
            distance_m=choice.distance_m,
            update_time=now,
        )

    async def _sibling_holders(self, task: Task) -> list[str]:
        """Who holds the other slots of a plan task's item (nobody for other tasks)."""
        if not task.emergency_plan or task.slots < 2:
            return []
        others = [
            plan_task_origin(task.emergency_plan, task.emergency_item, n)
            for n in range(1, task.slots + 1)
            if n != task.slot
        ]
        held = await self.store.tasks_of_events(others)
        return [t.handler for t in held.values() if t.handler and t.open]

    async def _roster(self, key: RosterKey, now: datetime) -> Roster:
        """The kept candidates of a routing target. Once older than `roster_seconds` they
        still decide, while a fresh read of the store runs beside them: no report waits
        for the handlers query (tens of milliseconds over a thousand handlers)."""
        kept = self._rosters.get(key)
        if kept is None:
            roster = await self._read_roster(key, now)
            if len(self._rosters) > 1000:
                self._rosters.clear()
            self._rosters[key] = (now.timestamp(), roster)
            return roster
        read_at, roster = kept
        if now.timestamp() - read_at >= self.roster_seconds and key not in self._refreshing:
            self._refreshing.add(key)
            refresh = asyncio.create_task(self._refresh_roster(key, roster, now))
            self._background.add(refresh)
            refresh.add_done_callback(self._background.discard)
        return roster

    async def _read_roster(self, key: RosterKey, now: datetime) -> Roster:
        tenants, role, team = key
        return Roster.of(await self.store.candidates(tenants, role, team), now)

    async def _refresh_roster(self, key: RosterKey, stale: Roster, now: datetime) -> None:
        try:
            counted = len(stale.offers)
            fresh = await self._read_roster(key, now)
            kept = self._rosters.get(key)
            if kept is None or kept[1] is not stale:
                return  # a profile changed meanwhile: the next decision reads afresh
            # Offers made while the store was read may be missing from it; counting one
            # twice for a moment errs towards not overloading a handler.
            for user, when in stale.offers[counted:]:
                fresh.assigned(user, when)
            self._rosters[key] = (now.timestamp(), fresh)
        except Exception:
            log.warning("reading the candidates of %s failed; the kept ones decide", key)
        finally:
            self._refreshing.discard(key)

    async def _after_offer(self, task: Task, timers: Sequence[Timer]) -> None:
        """Wake-ups once an offer is committed (its handler's offer time went with it)."""
        horizon = self.clock() + timedelta(seconds=self.scheduler.poll_seconds)
        if any(t.due <= horizon for t in timers):
            self.scheduler.wake()
        self.on_change()

    async def _save(
        self,
        before: Task,
        after: Task,
        facts: Sequence[str],
        schedule: Sequence[Timer] = (),
        cancel: Sequence[str] = (),
    ) -> Task:
        after = replace(after, version=before.version + 1, update_time=self.clock())
        saved = await self.store.update_task(
            after,
            before.version,
            [_fact(after, kind, self.serialize) for kind in facts],
            schedule,
            cancel,
        )
        if "offered" in facts:
            await self._after_offer(saved, schedule)
        else:
            self.on_change()
        return saved

    async def assign(self, principal: Principal, tenant: str, event: str, handler: str) -> Task:
        """AssignTask: route an event now (or give it to a named handler of the tenant)."""
        if not principal.can_see(tenant):
            raise NotFound(f"tenant {tenant!r} not found")
        facts = await self.events.facts(event)
        if not principal.can_see(facts.tenant) or not tenancy.contains(tenant, facts.tenant):
            raise NotFound(f"event {event!r} not found")
        if handler:
            profile = await self.store.find_handler(tenancy.ALL_TENANTS, handler)
            if profile is None or profile.tenant not in routing.ancestors(facts.tenant):
                raise InvalidArgument.field(
                    "handler", f"{handler[:80]!r} is not a handler of {facts.tenant} or above"
                )
            await self.check_users(facts.tenant, [handler], "handler")
        task = await self.dispatch(facts)
        if handler and task.handler != handler:
            task = await self.transfer(
                principal, task.tenant, task.id, handler, "assigned by a desk"
            )
        return task

    # ---- moves by people ----------------------------------------------------------------

    async def _task_to_move(self, principal: Principal, tenant: str, task_id: str) -> Task:
        """The task a move is asked of; whose move it is, the lifecycle table says (403)."""
        return await self.store.get_task(principal.tenant, tenant, task_id)

    async def get_task(self, principal: Principal, tenant: str, task_id: str) -> Task:
        task = await self.store.get_task(principal.tenant, tenant, task_id)
        if not access.sees_all(principal) and task.handler != principal.subject:
            raise NotFound(f"task {task_id!r} not found")  # as another village's
        return task

    async def accept(self, principal: Principal, tenant: str, task_id: str) -> Task:
        task = await self._task_to_move(principal, tenant, task_id)
        check(principal, task, Move.ACCEPT)
        now = self.clock()
        accepted = replace(task, state=TaskState.ACCEPTED, accept_time=now, offer_expire=None)
        return await self._save(task, accepted, ["accepted"], cancel=self._offer_timer_ids(task))

    async def decline(self, principal: Principal, tenant: str, task_id: str, reason: str) -> Task:
        task = await self._task_to_move(principal, tenant, task_id)
        check(principal, task, Move.DECLINE)
        _check_text("reason", reason, required=False)
        return await self._pass_on(task, "declined")

    async def start(self, principal: Principal, tenant: str, task_id: str) -> Task:
        task = await self._task_to_move(principal, tenant, task_id)
        check(principal, task, Move.START)
        started = replace(task, state=TaskState.IN_PROGRESS, start_time=self.clock())
        return await self._save(task, started, ["started"])

    async def resolve(
        self, principal: Principal, tenant: str, task_id: str, note: str, media: Sequence[str]
    ) -> Task:
        _check_text("note", note, required=True)
        if len(media) > MAX_MEDIA:
            raise InvalidArgument.field("media_uris", f"at most {MAX_MEDIA} URIs")
        for i, uri in enumerate(media):
            if not (uri.startswith("https://") or is_attachment_name(uri)) or len(uri) > 2000:
                raise InvalidArgument.field(
                    f"media_uris[{i}]", "must be an https URI or an attachment's name"
                )
        task = await self._task_to_move(principal, tenant, task_id)
        check(principal, task, Move.RESOLVE)
        now = self.clock()
        done = replace(
            task,
            state=TaskState.DONE,
            resolve_time=now,
            start_time=task.start_time or now,
            resolution_note=note,
            media=tuple(media),
        )
        saved = await self._save(task, done, ["resolved"], cancel=await self._open_timer_ids(task))
        await self.offer_waiting(task.village)
        return saved

    async def transfer(
        self, principal: Principal, tenant: str, task_id: str, handler: str, reason: str
    ) -> Task:
        """Hand a task to a named handler, or (no handler) back to routing's next choice."""
        _check_text("reason", reason, required=True)
        task = await self._task_to_move(principal, tenant, task_id)
        check(principal, task, Move.TRANSFER)
        if handler and handler == task.handler:
            raise InvalidArgument.field("handler", f"{handler[:80]!r} holds the task already")
        now = self.clock()
        record = Transfer(task.handler, handler, reason, now, principal.subject)
        moved = replace(task, transfers=(*task.transfers, record))
        if handler:
            profile = await self.store.find_handler(tenancy.ALL_TENANTS, handler)
            if profile is None or profile.tenant not in routing.ancestors(task.village):
                raise InvalidArgument.field(
                    "handler", f"{handler[:80]!r} is not a handler of {task.village} or above"
                )
            await self.check_users(task.village, [handler], "handler")
            offered = replace(
                moved,
                state=TaskState.OFFERED,
                handler=profile.user,
                handler_profile=f"tenants/{tenancy.path_to_id(profile.tenant)}/handlers/{profile.id}",
                offer_time=now,
                offer_expire=now + task.offer_timeout,
                accept_time=None,
                start_time=None,
                distance_m=0.0,
            )
        else:
            excluded = replace(
                moved, passed_by=(*task.passed_by, task.handler) if task.handler else task.passed_by
            )
            offered = await self._offer(excluded, now) or replace(
                _plan_explained(excluded, offered=False),
                state=TaskState.WAITING,
                handler="",
                handler_profile="",
                offer_time=None,
            )
        timers = [sla.offer_timer(offered)] if offered.state is TaskState.OFFERED else []
        facts = ["transferred"] + (["offered"] if offered.state is TaskState.OFFERED else [])
        return await self._save(task, offered, facts, timers, self._offer_timer_ids(task))

    async def _pass_on(self, task: Task, why: str) -> Task:
        """Declined or not answered: the next candidate, or waiting for one."""
        now = self.clock()
        passed = replace(task, passed_by=(*task.passed_by, task.handler))
        offered = await self._offer(passed, now)
        if offered is None:
            offered = replace(
                _plan_explained(passed, offered=False),
                state=TaskState.WAITING,
                handler="",
                handler_profile="",
                offer_time=None,
                offer_expire=None,
            )
        timers = [sla.offer_timer(offered)] if offered.state is TaskState.OFFERED else []
        facts = [why] + (["offered"] if offered.state is TaskState.OFFERED else [])
        return await self._save(task, offered, facts, timers, self._offer_timer_ids(task))

    def _offer_timer_ids(self, task: Task) -> list[str]:
        return (
            [sla.offer_timer(task).id]
            if task.state is TaskState.OFFERED and task.offer_time
            else []
        )

    async def _open_timer_ids(self, task: Task) -> list[str]:
        """Every deadline timer the task may still have (cancelling unknown ids is a no-op)."""
        ids = self._offer_timer_ids(task)
        for level in range(task.escalation_level + 1):
            for kind in (sla.RESPONSE_DUE, sla.RESOLUTION_DUE):
                ids.append(sla.timer_id(task, kind, level))
                ids.append(sla.timer_id(task, f"{sla.AT_RISK}.{kind}", level))
        return ids

    async def offer_waiting(self, tenant: str, limit: int = 50) -> int:
        """Offer tasks that wait for a handler (someone came on duty or was freed)."""
        root = tenant.split("/")[0]
        offered = 0
        for task in await self.store.waiting_tasks(root, limit):
            if not _offerable(task):
                continue
            now = self.clock()
            candidate = await self._offer(task, now)
            if candidate is None:
                continue
            try:
                await self._save(task, candidate, ["offered"], [sla.offer_timer(candidate)])
                offered += 1
            except Exception:  # changed meanwhile: the next round sees it again
                log.info("waiting task %s changed while being offered", task.id)
        return offered

    async def cancel_for_event(self, event: str, why: str) -> Task | None:
        """The event was withdrawn, rejected or marked a duplicate: stop the work."""
        task = (await self.store.tasks_of_events([event])).get(event)
        if task is None or not task.open:
            return task
        cancelled = replace(task, state=TaskState.CANCELLED, resolution_note=why)
        return await self._save(
            task, cancelled, ["cancelled"], cancel=await self._open_timer_ids(task)
        )

    # ---- tasks of emergency plans ---------------------------------------------------------

    async def follow_plan(self, plan: EmergencyPlan) -> list[Task]:
        """Walk the plan's tasks to what its items say: every slot of an open dispatch or
        checklist item has a task (offered like an event's: on duty, holding the role,
        under capacity, nearest to the plan's location, fair), and every open task of an
        item no longer open is cancelled. Safe to repeat and to run from two replicas:
        task ids come from their origins, and a task changed meanwhile is read again.
        Returns the tasks it opened."""
        name = plan_tasks.plan_name(plan)
        now = self.clock()
        wanted = plan_tasks.wanted(plan)
        keep = {slot.origin for slot in wanted}
        listed = await self.store.list_tasks(
            plan.tenant, {"emergency_plan": name, "open": True, "now": now}, 100_000, 0
        )
        for task in listed:
            if task.origin not in keep:
                await self._cancel_plan_task(task, plan)
        known = await self.store.tasks_of_events([slot.origin for slot in wanted])
        held: dict[str, list[str]] = {}
        for task in known.values():
            if task.handler and task.open:
                held.setdefault(task.emergency_item, []).append(task.handler)
        new: list[NewTask] = []
        for slot in wanted:
            if slot.origin in known:
                continue
            task = self._plan_task(plan, name, slot, now)
            timers: list[Timer] = []
            facts_out = [_fact(task, "created", self.serialize)]
            if task.routing.handler_role or task.routing.team:
                offered = await self._offer(task, now, exclude=held.get(slot.item.id, ()))
                if offered is not None:
                    task = offered
                    held.setdefault(slot.item.id, []).append(task.handler)
                    timers.append(sla.offer_timer(task))
                    facts_out.append(_fact(task, "offered", self.serialize))
            new.append(NewTask(task, facts_out, timers))
        opened: list[Task] = []
        if new:
            for (stored, created), made in zip(
                await self.store.create_tasks(new), new, strict=True
            ):
                if created:
                    opened.append(stored)
                    await self._after_offer(stored, made.timers)
        if opened or listed:
            log.info("plan %s at level %s: opened %d tasks", name, plan.current_level, len(opened))
        return opened

    def _plan_task(
        self, plan: EmergencyPlan, name: str, slot: plan_tasks.Slot, now: datetime
    ) -> Task:
        item = slot.item
        explanation = plan_tasks.explanation(name, item)
        return Task(
            tenant=plan.tenant,
            id=slot.id,
            event="",
            state=TaskState.WAITING,
            category="",
            severity=0,
            grid_cell="",
            village=plan.tenant,
            location=plan.definition.location,
            routing=RoutingDecision("", explanation, item.role, item.team),
            create_time=now,
            update_time=now,
            candidate_tenants=(plan.tenant,),
            emergency_plan=name,
            emergency_item=item.id,
            slot=slot.slot,
            slots=item.slots,
            description=plan_tasks.description(plan, item),
        )

    async def _cancel_plan_task(self, task: Task, plan: EmergencyPlan) -> None:
        why = (
            "the emergency plan stood down"
            if plan.current_level == STOOD_DOWN
            else f"the emergency plan stepped down to level {plan.current_level}"
        )
        for _attempt in range(3):
            if not task.open:
                return
            cancelled = replace(task, state=TaskState.CANCELLED, resolution_note=why)
            try:
                await self._save(
                    task, cancelled, ["cancelled"], cancel=await self._open_timer_ids(task)
                )
                return
            except Aborted:  # the handler moved it meanwhile: look again
                task = await self.store.get_task(tenancy.ALL_TENANTS, task.tenant, task.id)
        log.warning("plan task %s kept changing; the next walk cancels it", task.id)

    async def reroute(self, facts: EventFacts) -> Task:
        """The event's category or place changed: route again and re-offer if it moved."""
        task = (await self.store.tasks_of_events([facts.event])).get(facts.event)
        if task is None:
            return await self.dispatch(facts)
        if not task.open:
            return task
        rules = await self.store.rules_of(routing.ancestors(facts.tenant))
        try:
            rule, decision = routing.route(rules, facts)
        except FailedPrecondition as refusal:
            rule, decision = None, RoutingDecision("", f"{_UNROUTED}: {refusal.message}", "", "")
        if decision == task.routing and facts.location == task.location:
            return task
        now = self.clock()
        fresh = self._new_task(facts, rule, decision, now)
        moved = replace(
            task,
            category=facts.category,
            severity=facts.severity,
            grid_cell=facts.grid_cell,
            location=facts.location,
            routing=decision,
            candidate_tenants=fresh.candidate_tenants,
            offer_timeout=fresh.offer_timeout,
            escalation_action=fresh.escalation_action,
            transfers=(
                *task.transfers,
                Transfer(task.handler, "", "the event's category or place changed", now, "routing"),
            ),
            passed_by=(),
        )
        offered = (await self._offer(moved, now)) if rule is not None else None
        if offered is None:
            offered = replace(
                moved, state=TaskState.WAITING, handler="", handler_profile="", offer_time=None
            )
        timers = [sla.offer_timer(offered)] if offered.state is TaskState.OFFERED else []
        facts_out = ["rerouted"] + (["offered"] if offered.state is TaskState.OFFERED else [])
        return await self._save(task, offered, facts_out, timers, self._offer_timer_ids(task))

    # ---- timers -------------------------------------------------------------------------

    async def _task_of(self, timer: Timer) -> tuple[Task | None, dict[str, object]]:
        body = json.loads(timer.payload)
        try:
            task = await self.store.get_task(
                tenancy.ALL_TENANTS, str(body["tenant"]), str(body["task"])
            )
        except NotFound:
            return None, body
        return task, body

    async def _offers_expired(self, timers: Sequence[Timer]) -> None:
        for timer in timers:
            task, body = await self._task_of(timer)
            if (
                task is None
                or task.state is not TaskState.OFFERED
                or task.handler != body["handler"]
            ):
                continue
            if (
                task.offer_time is None
                or int(task.offer_time.timestamp() * 1_000_000) != body["offer_us"]
            ):
                continue
            await self._pass_on(task, "offer_expired")

    async def _responses_due(self, timers: Sequence[Timer]) -> None:
        for timer in timers:
            task, _body = await self._task_of(timer)
            if task is None or timer.id in task.escalations:
                continue
            if task.state in (TaskState.OFFERED, TaskState.WAITING):
                await self._escalate(task, timer, "no one accepted in time")
                self.on_breach("response")

    async def _resolutions_due(self, timers: Sequence[Timer]) -> None:
        for timer in timers:
            task, _body = await self._task_of(timer)
            if task is None or timer.id in task.escalations or not task.open:
                continue
            await self._escalate(task, timer, "not resolved in time")
            self.on_breach("resolution")

    async def _at_risk(self, timers: Sequence[Timer]) -> None:
        for timer in timers:
            task, body = await self._task_of(timer)
            if task is None or not task.open:
                continue
            if body.get("deadline") == sla.RESPONSE_DUE and task.state not in (
                TaskState.OFFERED,
                TaskState.WAITING,
            ):
                continue
            if task.escalation_level != body.get("level"):
                continue
            marked = replace(task, escalations=(*task.escalations, timer.id))
            if timer.id not in task.escalations:
                await self._save(task, marked, ["sla_at_risk"])

    async def _escalate(self, task: Task, timer: Timer, why: str) -> None:
        """One level up the tenant tree: a supervisor there, or a handler there."""
        now = self.clock()
        target = sla.escalation_target(task)
        escalated = replace(task, escalations=(*task.escalations, timer.id))
        facts = ["escalated"]
        schedule: list[Timer] = []
        stopped: tuple[str, str] | None = None
        if target is not None:
            level = task.escalation_level + 1
            escalated = replace(escalated, escalation_level=level, escalated_to=target)
            supervisors = await self.store.supervisors(target)
            if supervisors:
                chosen = min(supervisors, key=lambda p: (p.open_tasks, p.id))
                escalated = replace(escalated, supervisor=chosen.user)
            if task.escalation_action is EscalationAction.REASSIGN:
                excluded = replace(
                    escalated,
                    passed_by=(*task.passed_by, task.handler) if task.handler else task.passed_by,
                )
                offered = await self._offer(excluded, now, tenants=(target,))
                if offered is not None:
                    escalated = offered
                    facts.append("offered")
                    schedule.append(sla.offer_timer(offered))
                else:
                    kept = f"it stays with {task.handler}" if task.handler else "it still waits"
                    stopped = (
                        command_log.TASK_NOT_REASSIGNED,
                        f"{why}; nobody at {target} is free to take it, {kept}",
                    )
            if timer.kind == sla.RESOLUTION_DUE and task.resolution_sla is not None:
                schedule += sla.deadline_timers(
                    escalated, sla.RESOLUTION_DUE, now, task.resolution_sla, level
                )
        else:
            top = task.escalated_to or task.village
            stopped = (
                command_log.TASK_ESCALATION_STOPPED,
                f"{why}; escalation stops at {top}: nobody above it takes the task",
            )
        log.info("task %s escalated to %s: %s", task.id, target or "(top)", why)
        cancel = self._offer_timer_ids(task) if "offered" in facts else []
        saved = await self._save(task, escalated, facts, schedule, cancel)
        if stopped is not None and self.log_entries is not None:
            action, reason = stopped
            entry = command_log.LogEntry(
                saved.tenant, now, f"sla:{timer.kind}", action, saved.name, reason
            )
            try:
                await self.log_entries([entry])
            except Exception:  # the task moved on; the log line below still says it
                log.warning("command log entry for task %s not written", task.id)
        if stopped is not None:
            log.info("task %s: %s", task.id, stopped[1])

    # ---- queries ------------------------------------------------------------------------

    async def list_tasks(
        self,
        principal: Principal,
        tenant: str,
        filters: Mapping[str, object],
        limit: int,
        offset: int,
        order: TaskOrder = NEWEST_FIRST,
    ) -> list[Task]:
        if not principal.can_see(tenant):
            raise NotFound(f"tenant {tenant!r} not found")
        if not access.sees_all(principal):
            filters = {**filters, "handler": principal.subject}
        return await self.store.list_tasks(
            tenant, {**filters, "now": self.clock()}, limit, offset, order
        )

    async def board(
        self, principal: Principal, tenant: str
    ) -> tuple[BoardCounts, list[HandlerProfile]]:
        if not principal.can_see(tenant):
            raise NotFound(f"tenant {tenant!r} not found")
        access.require_dispatcher(principal, "the board")
        counts = await self.store.board(tenant, self.clock())
        workload = await self.store.list_handlers(tenant, {}, 1000, 0)
        # The stores count by the stored word; the board names states as the contract does.
        by_state = {TaskState(k).published: n for k, n in counts.by_state.items()}
        return replace(counts, by_state=by_state), workload


def _offerable(task: Task) -> bool:
    """A waiting task dispatch can offer: routed by a rule, or a plan's with a role."""
    if task.emergency_plan:
        return bool(task.routing.handler_role or task.routing.team)
    return bool(task.routing.rule)


def _check_text(field: str, text: str, *, required: bool) -> None:
    if required and not text.strip():
        raise InvalidArgument.field(field, "is required")
    if len(text) > MAX_NOTE:
        raise InvalidArgument.field(field, f"at most {MAX_NOTE} characters")


def _plan_explained(task: Task, *, offered: bool) -> Task:
    """A plan task's explanation says whether it was offered or waits (events' tasks
    keep their routing rule's)."""
    if not task.emergency_plan:
        return task
    text = plan_tasks.explained(task.routing.explanation, offered)
    return replace(task, routing=replace(task.routing, explanation=text))
