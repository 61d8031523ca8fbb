"""The demo village's plans: a crowd-surge emergency plan and weekly visits to residents
living alone, so `make run` shows command's plans at work.

Both go through the plans service's public gRPC contract as a platform service of the
village, with fixed `request_id`s, so a second start returns the same plans instead of
making new ones. Level 2 sends the village's demo volunteers, by the team devstack gives
them; a data dir made before this plan also keeps the first one (its volunteers' team
was one nobody held). The visits start on a fixed day in the past and recur daily at nine,
so the next visit is always within the scheduler's lead and its orders are there to
check in to. The carers are the village's demo accounts with the carer role.

ALL PLANS AND PLACES HERE ARE INVENTED.
"""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from devstack.demo_command import team_of
from devstack.demo_identity import VOLUNTEERS
from grassroots.command.v1 import plans_service_pb2 as pb
from grassroots.command.v1 import plans_service_pb2_grpc as pb_grpc
from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.principal import Principal

VILLAGE = "sh/jiading/anting/xingming"
PARENT = tenancy.tenant_name(VILLAGE)
FOUNTAIN_RULE = f"{PARENT}/rules/fountain-crowd"
PLANNER = Principal(
    subject="services/demo-plans",
    tenant=VILLAGE,
    kind="service",
    scopes=frozenset({"command:read", "command:write", "command:dispatch", "empower:read"}),
)
# Homes of residents living alone (invented), around the village centre.
HOMES = (
    ("r-0001", "No. 3 Xingming Road, flat 201", 121.1602, 31.2901),
    ("r-0002", "No. 12 Xingming Road, flat 102", 121.1611, 31.2896),
    ("r-0003", "Lane 8, house 5", 121.1594, 31.2909),
    ("r-0004", "Lane 15, house 2", 121.1620, 31.2912),
)
VISITS_START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
# The team devstack gives the village's volunteers (devstack/demo_command.py: the
# village's slug and the role), so level 2's dispatch reaches people the demo has.
VOLUNTEER_TEAM = team_of(VILLAGE, "volunteer")
# A plan's definition is fixed by its request id: the first demo plan (6 volunteers of a
# team nobody held) keeps "demo-crowd-plan" in older data dirs, so this one has its own.
CROWD_PLAN_REQUEST = "demo-crowd-plan-2"


def crowd_plan() -> pb.EmergencyPlan:
    return pb.EmergencyPlan(
        display_name="Crowd surge at the village square",
        signal=FOUNTAIN_RULE,
        levels=[
            pb.EmergencyLevel(
                level=3,
                summary="more than 1,000 people on the square",
                dispatches=[pb.Dispatch(role="grid_worker", count=2)],
                notices=[pb.Notice(audience="town_office", text="Crowd building on the square")],
            ),
            pb.EmergencyLevel(
                level=2,
                summary="more than 5,000 people",
                dispatches=[pb.Dispatch(role="volunteer", team=VOLUNTEER_TEAM, count=VOLUNTEERS)],
                checklist=["Open the east exit", "Fence the canal path"],
                notices=[pb.Notice(audience="residents", text="Avoid the village square")],
            ),
            pb.EmergencyLevel(
                level=1,
                summary="more than 10,000 people",
                dispatches=[pb.Dispatch(role="police", count=10)],
                checklist=["Close the square to newcomers", "Ask the town for buses"],
                notices=[pb.Notice(audience="residents", text="The square is closed")],
            ),
        ],
    )


def visits_plan(carers: list[str]) -> pb.ServicePlan:
    start = Timestamp()
    start.FromDatetime(VISITS_START)
    return pb.ServicePlan(
        display_name="Daily call on residents living alone",
        recurrence="FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
        start_time=start,
        visit_minutes=120,
        handler_role="carer",
        carers=carers,
        max_check_in_distance_meters=100,
        targets=[
            pb.ServiceTarget(
                id=i, display_name=n, location=geo_pb2.GeoPoint(longitude=x, latitude=y)
            )
            for i, n, x, y in HOMES
        ],
    )


async def _carers(empower: grpc.aio.Channel) -> list[str]:
    """Subjects of the village's users who hold the carer role."""
    identity = identity_grpc.IdentityServiceStub(empower)
    found: list[str] = []
    token = ""
    while True:
        page = await identity.ListUsers(
            identity_pb.ListUsersRequest(parent=PARENT, page_size=500, page_token=token),
            metadata=PLANNER.to_metadata(),
        )
        found += ["users/" + u.name.rsplit("/", 1)[-1] for u in page.users if "carer" in u.roles]
        token = page.next_page_token
        if not token:
            return sorted(found)


async def install(command: grpc.aio.Channel, empower: grpc.aio.Channel) -> tuple[str, str]:
    """The emergency plan's and the service plan's names (the same on every start)."""
    plans = pb_grpc.PlansServiceStub(command)
    metadata = PLANNER.to_metadata()
    emergency = await plans.CreateEmergencyPlan(
        pb.CreateEmergencyPlanRequest(
            parent=PARENT, emergency_plan=crowd_plan(), request_id=CROWD_PLAN_REQUEST
        ),
        metadata=metadata,
    )
    service = await plans.CreateServicePlan(
        pb.CreateServicePlanRequest(
            parent=PARENT,
            service_plan=visits_plan(await _carers(empower)),
            request_id="demo-daily-visits",
        ),
        metadata=metadata,
    )
    return emergency.name, service.name
