"""Handler input that would be stored and silently mislead: a blank or multi-line
display name, a position outside China (degrees sent as EPSG:3857 metres among them).
Each is INVALID_ARGUMENT naming the field, on create, update and position reports."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from grassroots.command.v1 import command_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.command.domain import handlers
from services.command.domain.model import HandlerProfile
from services.kit import tenancy
from services.kit.errors import InvalidArgument
from tests.conftest import XINGMING
from tests.unit.command.test_loop import desk


@pytest.mark.parametrize("name", [" ", "\n", "Li\nWei", "tab\there"])
def test_a_blank_or_multi_line_display_name_is_refused(name):
    with pytest.raises(InvalidArgument) as refused:
        handlers.validate(
            HandlerProfile(XINGMING, "h1", "users/h1", display_name=name, roles=("grid_worker",))
        )
    assert {v.field for v in refused.value.violations} == {"handler_profile.display_name"}


def test_a_name_and_no_name_are_both_fine():
    for name in ("李伟 (grid 7)", ""):
        handlers.validate(
            HandlerProfile(XINGMING, "h1", "users/h1", display_name=name, roles=("grid_worker",))
        )


@pytest.mark.parametrize(
    ("lon", "lat", "crs", "field"),
    [
        (116.40, 39.90, "", None),  # Beijing: in China, fine
        (2.35, 48.85, "", "position.longitude"),  # Paris
        (121.16, 31.29, "EPSG:3857", "position.longitude"),  # degrees labelled metres
        (121.16, 60.0, "", "position.latitude"),
    ],
)
def test_a_position_outside_china_is_refused_naming_the_field(lon, lat, crs, field):
    if field is None:
        assert handlers.storage_position(lon, lat, crs, "position").latitude == lat
        return
    with pytest.raises(InvalidArgument) as refused:
        handlers.storage_position(lon, lat, crs, "position")
    assert [v.field for v in refused.value.violations] == [field]


async def test_the_service_refuses_them_on_create_update_and_report(command):
    stub, village = command.stub, tenancy.tenant_name(XINGMING)
    made = await stub.CreateHandlerProfile(
        pb.CreateHandlerProfileRequest(
            parent=village,
            handler_profile=pb.HandlerProfile(user="users/u1", display_name="U1", roles=["carer"]),
        ),
        metadata=desk(),
    )
    calls = [
        stub.CreateHandlerProfile(
            pb.CreateHandlerProfileRequest(
                parent=village,
                handler_profile=pb.HandlerProfile(
                    user="users/u2", display_name="\n", roles=["carer"]
                ),
            ),
            metadata=desk(),
        ),
        stub.UpdateHandlerProfile(
            pb.UpdateHandlerProfileRequest(
                handler_profile=pb.HandlerProfile(name=made.name, display_name="  "),
                update_mask=FieldMask(paths=["display_name"]),
            ),
            metadata=desk(),
        ),
        stub.ReportHandlerPosition(
            pb.ReportHandlerPositionRequest(
                name=made.name,
                position=geo_pb2.GeoPoint(longitude=121.16, latitude=31.29, crs="EPSG:3857"),
            ),
            metadata=desk(),
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
