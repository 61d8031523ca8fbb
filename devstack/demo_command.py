"""The demo town's command set-up: handler profiles and the town's routing rules.

Every grid worker gets a profile at the representative point of their grid cell, the
villages' volunteers and carers get profiles nearby, and the town officer supervises
escalations at the town. The town's rules route safety reports to grid workers (an
answer in 5 minutes, as the smoke-alarm scenario asks), care matters to carers and
building matters to grid workers; the other categories stay unrouted until a village
adds rules (saving a rule lists them). Made through the public gRPC contracts as a
platform service, and made once: a second start finds them in place.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pyogrio
import shapely
from google.protobuf.duration_pb2 import Duration

from devstack.demo_identity import BOOTSTRAP, TOWN, VILLAGES
from grassroots.command.v1 import command_service_pb2 as pb
from grassroots.command.v1 import command_service_pb2_grpc as pb_grpc
from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy

# (category, role, response minutes, resolution minutes, display name)
TOWN_RULES = (
    ("safety.*", "grid_worker", 5, 30, "Safety reports to the nearest grid worker"),
    ("care.*", "carer", 15, 120, "Care matters to the nearest carer"),
    ("construction.*", "grid_worker", 60, 2880, "Building matters to the grid worker"),
)
# Volunteers and carers stand a little away from the grid workers' points.
_OFFSET_DEG = 0.0008


def _cell_points(demo_gpkg: Path) -> dict[str, tuple[str, float, float]]:
    """Grid worker id -> (village, lon, lat) of a point inside their grid cell."""
    meta, _fids, geometry, columns = pyogrio.raw.read(str(demo_gpkg), layer="grid_cells")
    fields = list(meta["fields"])
    tenants = columns[fields.index("tenant")]
    workers = columns[fields.index("grid_worker_id")]
    points = shapely.point_on_surface(shapely.from_wkb(geometry))
    return {
        str(w): (str(t), float(p.x), float(p.y))
        for w, t, p in zip(workers, tenants, points, strict=True)
    }


def team_of(tenant: str, role: str) -> str:
    """The team a demo handler of `role` belongs to in `tenant` (`xingming_volunteer`)."""
    return tenant.rsplit("/", 1)[-1] + "_" + role


async def _users(
    identity: identity_grpc.IdentityServiceAsyncStub, tenant: str
) -> list[identity_pb.User]:
    found: list[identity_pb.User] = []
    token = ""
    while True:
        page = await identity.ListUsers(
            identity_pb.ListUsersRequest(
                parent=tenancy.tenant_name(tenant), page_size=500, page_token=token
            ),
            metadata=BOOTSTRAP.to_metadata(),
        )
        found.extend(u for u in page.users if u.name.startswith(tenancy.tenant_name(tenant) + "/"))
        token = page.next_page_token
        if not token:
            return found


async def _profile(
    command: pb_grpc.CommandServiceAsyncStub,
    tenant: str,
    user: identity_pb.User,
    roles: list[str],
    point: tuple[float, float],
    *,
    supervisor: bool = False,
) -> bool:
    try:
        await command.CreateHandlerProfile(
            pb.CreateHandlerProfileRequest(
                parent=tenancy.tenant_name(tenant),
                handler_id=user.username,
                handler_profile=pb.HandlerProfile(
                    user="users/" + user.name.rsplit("/", 1)[-1],
                    display_name=user.display_name,
                    roles=roles,
                    teams=[team_of(tenant, roles[0])],
                    on_duty=True,
                    capacity=5,
                    supervisor=supervisor,
                    position=geo_pb2.GeoPoint(longitude=point[0], latitude=point[1]),
                ),
            ),
            metadata=BOOTSTRAP.to_metadata(),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        return False
    return True


async def install(
    empower: grpc.aio.Channel, command_channel: grpc.aio.Channel, demo_gpkg: Path
) -> dict[str, int]:
    """Profiles and rules (made once); counts of what this call made."""
    identity = identity_grpc.IdentityServiceStub(empower)
    command = pb_grpc.CommandServiceStub(command_channel)
    points = _cell_points(demo_gpkg)
    made = {"handlers": 0, "routing_rules": 0}
    for village in VILLAGES:
        village_points = [(lon, lat) for t, lon, lat in points.values() if t == village]
        spare = 0
        for user in await _users(identity, village):
            roles = [r for r in user.roles if r in ("grid_worker", "volunteer", "carer")]
            if not roles:
                continue
            if user.username in points:
                _, lon, lat = points[user.username]
            else:  # a volunteer or carer: near one of the village's cells
                lon, lat = village_points[spare % len(village_points)]
                lon, lat = lon + _OFFSET_DEG, lat + _OFFSET_DEG
                spare += 3
            made["handlers"] += await _profile(command, village, user, roles, (lon, lat))
    centre = next(iter(points.values()))
    for user in await _users(identity, TOWN):
        if "town_officer" in user.roles:
            made["handlers"] += await _profile(
                command, TOWN, user, ["town_officer"], (centre[1], centre[2]), supervisor=True
            )
    existing = await command.ListRoutingRules(
        pb.ListRoutingRulesRequest(parent=tenancy.tenant_name(TOWN), page_size=1000),
        metadata=BOOTSTRAP.to_metadata(),
    )
    names = {r.display_name for r in existing.routing_rules}
    for category, role, response, resolution, display in TOWN_RULES:
        if display in names:
            continue
        await command.CreateRoutingRule(
            pb.CreateRoutingRuleRequest(
                parent=tenancy.tenant_name(TOWN),
                routing_rule=pb.RoutingRule(
                    category=category,
                    handler_role=role,
                    response_sla=Duration(seconds=response * 60),
                    sla=Duration(seconds=resolution * 60),
                    display_name=display,
                ),
            ),
            metadata=BOOTSTRAP.to_metadata(),
        )
        made["routing_rules"] += 1
    return made
