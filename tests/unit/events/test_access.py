"""Who may move an event, and who sees it: every role against every move, over real gRPC.

The expectations below are written out by hand from the rules the README states
(reporter: comment, evaluate, withdraw, reopen; handler: accept, start, resolve, hand
back; staff: everything else too, and correcting an open event's category or place),
not derived from `access.MAY`, so a change to the table in the domain fails here until
someone decides it on purpose.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from grassroots.events.v1 import events_service_pb2 as pb
from services.empower.domain.roles import ROLES
from services.events.domain import lifecycle
from services.events.domain.model import State
from services.kit import tenancy
from services.kit.principal import Principal
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.events.test_events_api import cell_point

S = State
# Every legal move, then the two actions that are not moves.
HANDLER_MOVES = {
    (S.REPORTED, S.ACCEPTED),
    (S.DISPATCHED, S.IN_PROGRESS),
    (S.REOPENED, S.IN_PROGRESS),
    (S.IN_PROGRESS, S.RESOLVED),
    (S.REOPENED, S.RESOLVED),
    (S.IN_PROGRESS, S.DISPATCHED),
}
STAFF_MOVES = {
    (S.ACCEPTED, S.DISPATCHED),
    (S.DISPATCHED, S.ACCEPTED),
    (S.REOPENED, S.DISPATCHED),
    (S.REPORTED, S.REJECTED),
    (S.ACCEPTED, S.REJECTED),
    (S.REPORTED, S.DUPLICATE),
    (S.ACCEPTED, S.DUPLICATE),
    (S.RESOLVED, S.CLOSED),
    (S.REJECTED, S.REOPENED),
}
REPORTER_MOVES = {(S.REPORTED, S.WITHDRAWN), (S.ACCEPTED, S.WITHDRAWN), (S.DISPATCHED, S.WITHDRAWN)}
REOPEN_MOVES = {(S.RESOLVED, S.REOPENED), (S.CLOSED, S.REOPENED)}
EVALUATE, COMMENT, AMEND = "evaluate", "comment", "amend"
ALL_ACTIONS = [
    *sorted(HANDLER_MOVES | STAFF_MOVES | REPORTER_MOVES | REOPEN_MOVES),
    EVALUATE,
    COMMENT,
    AMEND,
]
STAFF_MAY = HANDLER_MOVES | STAFF_MOVES | REOPEN_MOVES | {COMMENT, AMEND}
REPORTER_MAY = REPORTER_MOVES | REOPEN_MOVES | {EVALUATE, COMMENT}

OK, DENIED, HIDDEN = "ok", "PERMISSION_DENIED", "NOT_FOUND"
DEMO_APP_SCOPES = frozenset({"map:read", "events:read", "events:write", "people:read"})


def user(subject: str, role: str, tenant: str = XINGMING) -> Principal:
    return Principal(subject, tenant, "user", (role,), ROLES[role])


def app(subject: str, scopes: frozenset[str], tenant: str = XINGMING) -> Principal:
    return Principal(subject, tenant, "app", (), scopes, app=subject)


SERVICE = Principal(
    "services/command", XINGMING, "service", (), frozenset({"events:read", "events:write"})
)
RESIDENT = user("users/res-reporter", "resident")
VILLAGE_APP = app("apps/noticeboard", DEMO_APP_SCOPES)
# role -> (who acts, who reported the event, what the actor may do)
ROLE_TABLE = {
    "reporter (resident)": (RESIDENT, RESIDENT, REPORTER_MAY),
    "another resident": (user("users/res-other", "resident"), RESIDENT, set()),
    "volunteer": (user("users/volunteer", "volunteer"), RESIDENT, set()),
    "grid_worker": (user("users/gw", "grid_worker"), RESIDENT, HANDLER_MOVES | {COMMENT}),
    "village_secretary": (user("users/sec", "village_secretary"), RESIDENT, STAFF_MAY),
    "town_officer": (
        user("users/officer", "town_officer", TOWN),
        RESIDENT,
        STAFF_MAY,
    ),
    "district_auditor": (
        user("users/auditor", "district_auditor", "sh/jiading"),
        RESIDENT,
        set(),
    ),
    "village app key": (VILLAGE_APP, RESIDENT, set()),
    "village app key, own report": (VILLAGE_APP, VILLAGE_APP, REPORTER_MAY),
    "town app key with events:manage": (
        app("apps/town-ops", frozenset({"events:read", "events:write", "events:manage"})),
        RESIDENT,
        STAFF_MAY,
    ),
    "patrol app key with events:handle": (
        app("apps/patrol", frozenset({"events:read", "events:write", "events:handle"})),
        RESIDENT,
        HANDLER_MOVES | {COMMENT},
    ),
    "service (command)": (SERVICE, RESIDENT, STAFF_MAY),
    "grid_worker of another village": (
        user("users/gw-xy", "grid_worker", XIANGYANG),
        RESIDENT,
        set(),
    ),
}
# Who cannot even see a resident's report: the answer is NOT_FOUND, not a refusal.
BLIND = {"another resident", "volunteer", "grid_worker of another village"}
# The path from `reported` to each state, taken by the service.
PATHS = {
    S.REPORTED: [],
    S.ACCEPTED: [S.ACCEPTED],
    S.DISPATCHED: [S.ACCEPTED, S.DISPATCHED],
    S.IN_PROGRESS: [S.ACCEPTED, S.DISPATCHED, S.IN_PROGRESS],
    S.RESOLVED: [S.ACCEPTED, S.DISPATCHED, S.IN_PROGRESS, S.RESOLVED],
    S.CLOSED: [S.ACCEPTED, S.DISPATCHED, S.IN_PROGRESS, S.RESOLVED, S.CLOSED],
    S.REOPENED: [S.ACCEPTED, S.DISPATCHED, S.IN_PROGRESS, S.RESOLVED, S.REOPENED],
    S.REJECTED: [S.REJECTED],
}


def pb_state(state: State) -> int:
    return pb.Event.State.Value(f"STATE_{state.value.upper()}")


def outcome(actor_name: str, action: object) -> str:
    may = ROLE_TABLE[actor_name][2]
    if actor_name in BLIND:
        return HIDDEN
    return OK if action in may else DENIED


class World:
    """Reports in one spot of a test category that never finds duplicates."""

    def __init__(self, events, lon: float, lat: float) -> None:
        self.events = events
        self.lon, self.lat = lon, lat
        self.count = 0

    async def setup(self) -> None:
        configure = Principal(
            "users/sec", XINGMING, "user", ("village_secretary",), frozenset({"events:configure"})
        )
        await self.events.stub.CreateCategory(
            pb.CreateCategoryRequest(
                parent=tenancy.tenant_name(XINGMING),
                category=pb.Category(
                    code="test.access",
                    display_name="Access test",
                    default_severity=2,
                    sla_minutes=60,
                    duplicate_radius_meters=0,
                    duplicate_window_minutes=0,
                ),
            ),
            metadata=configure.to_metadata(),
        )

    async def report(self, reporter: Principal, state: State = S.REPORTED) -> pb.Event:
        self.count += 1
        event = await self.events.stub.CreateEvent(
            pb.CreateEventRequest(
                parent=tenancy.tenant_name(XINGMING),
                request_id=f"access-{self.count}",
                event=pb.Event(
                    category="test.access",
                    description=f"report {self.count}",
                    location={"longitude": self.lon, "latitude": self.lat},
                ),
            ),
            metadata=reporter.to_metadata(),
        )
        for step in PATHS[state]:
            event = await self.move(SERVICE, event, step)
        assert event.state == pb_state(state)
        return event

    async def move(
        self, who: Principal, event: pb.Event, state: State, duplicate_of: str = ""
    ) -> pb.Event:
        return await self.events.stub.TransitionEvent(
            pb.TransitionEventRequest(
                name=event.name, state=pb_state(state), duplicate_of=duplicate_of
            ),
            metadata=who.to_metadata(),
        )


@pytest.fixture
async def world(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING, 5)
    made = World(events, lon, lat)
    await made.setup()
    return made


def test_the_table_covers_every_move_of_the_lifecycle():
    moves = HANDLER_MOVES | STAFF_MOVES | REPORTER_MOVES | REOPEN_MOVES
    assert moves == set(lifecycle.MOVES)
    assert set(PATHS) == {start for start, _ in moves}


@pytest.mark.parametrize("role", list(ROLE_TABLE))
async def test_every_role_against_every_move(world, role):
    actor, reporter, _ = ROLE_TABLE[role]
    original = await world.report(RESIDENT)
    seen: dict[object, str] = {}
    for action in ALL_ACTIONS:
        start = (
            S.RESOLVED
            if action in (EVALUATE, COMMENT)
            else S.REPORTED
            if action == AMEND
            else action[0]  # type: ignore[index]
        )
        event = await world.report(reporter, start)
        try:
            if action == EVALUATE:
                after = await world.events.stub.EvaluateEvent(
                    pb.EvaluateEventRequest(name=event.name, score=4, text="ok"),
                    metadata=actor.to_metadata(),
                )
                assert after.state == pb.Event.STATE_CLOSED
            elif action == COMMENT:
                after = await world.events.stub.AddComment(
                    pb.AddCommentRequest(name=event.name, text="on my way"),
                    metadata=actor.to_metadata(),
                )
                assert [c.author for c in after.comments] == [actor.subject]
            elif action == AMEND:
                after = await world.events.stub.UpdateEvent(
                    pb.UpdateEventRequest(
                        event=pb.Event(name=event.name, category="roads.damage"),
                        update_mask=field_mask_pb2.FieldMask(paths=["category"]),
                    ),
                    metadata=actor.to_metadata(),
                )
                assert (after.category, after.state) == ("roads.damage", event.state)
            else:
                target = action[1]  # type: ignore[index]
                dup = original.name if target is S.DUPLICATE else ""
                after = await world.move(actor, event, target, dup)
                assert after.state == pb_state(target)
                assert after.timeline[-1].actor == actor.subject
                if dup:
                    assert after.duplicate_of == original.name
            seen[action] = OK
        except grpc.aio.AioRpcError as exc:
            seen[action] = exc.code().name
            # A refused move changes nothing.
            again = await world.events.stub.GetEvent(
                pb.GetEventRequest(name=event.name), metadata=SERVICE.to_metadata()
            )
            assert (again.state, again.etag) == (event.state, event.etag)
    assert seen == {action: outcome(role, action) for action in ALL_ACTIONS}


async def test_residents_see_their_own_reports_and_the_originals_they_repeat(events, world):
    mine = await world.report(RESIDENT)
    other = user("users/res-other", "resident")
    theirs = await world.report(other)
    listed = await events.stub.ListEvents(
        pb.ListEventsRequest(parent=tenancy.tenant_name(XINGMING), page_size=1000),
        metadata=RESIDENT.to_metadata(),
    )
    assert {e.name for e in listed.events} == {mine.name}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.GetEvent(
            pb.GetEventRequest(name=theirs.name), metadata=RESIDENT.to_metadata()
        )
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    stats = await events.stub.GetEventStatistics(
        pb.GetEventStatisticsRequest(parent=tenancy.tenant_name(XINGMING)),
        metadata=RESIDENT.to_metadata(),
    )
    assert stats.total == 1
    # Staff mark the other resident's report as repeating mine: they may follow mine.
    staff = user("users/sec", "village_secretary")
    await world.move(staff, theirs, S.DUPLICATE, mine.name)
    followed = await events.stub.GetEvent(
        pb.GetEventRequest(name=mine.name), metadata=other.to_metadata()
    )
    assert followed.name == mine.name
    # A grid worker sees both.
    worker = await events.stub.ListEvents(
        pb.ListEventsRequest(parent=tenancy.tenant_name(XINGMING), page_size=1000),
        metadata=user("users/gw", "grid_worker").to_metadata(),
    )
    assert {mine.name, theirs.name} <= {e.name for e in worker.events}


async def test_marking_a_duplicate_needs_an_unfinished_original_of_the_village(events, world):
    staff = user("users/sec", "village_secretary")
    event = await world.report(RESIDENT)
    closed = await world.report(RESIDENT, S.CLOSED)
    for duplicate_of, field in (("", "duplicate_of"), (closed.name, "duplicate_of")):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await world.move(staff, event, S.DUPLICATE, duplicate_of)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await world.move(staff, event, S.ACCEPTED, closed.name)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_the_stream_carries_only_what_the_caller_reads(events, world):
    other = user("users/res-other", "resident")
    await world.report(other)
    mine = await world.report(RESIDENT)
    call = events.stub.WatchEvents(
        pb.WatchEventsRequest(parent=tenancy.tenant_name(XINGMING), after_offset=0),
        metadata=RESIDENT.to_metadata(),
    )
    names = set()
    async for item in call:
        names.add(item.event.name)
        if item.event.name == mine.name:
            break
    call.cancel()
    assert names == {mine.name}
