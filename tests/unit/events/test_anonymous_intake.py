"""Reports without an account (ADR 35): the village's settings, its hourly number,
the receipt, and nothing personal in the answers; on both stores over real gRPC."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.principal import ANONYMOUS_ROLE, Principal
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING, principal_of
from tests.unit.events.test_events_api import cell_point

S = pb.Event
# The gateway's intake principal: the city, the anonymous role, only events:intake.
INTAKE = Principal(
    subject="anonymous",
    tenant="sh",
    kind="app",
    roles=(ANONYMOUS_ROLE,),
    scopes=frozenset({"events:intake"}),
    app="anonymous",
)
STAFF = principal_of(TOWN, "users/town-staff", frozenset({"events:read", "events:configure"}))


def anon():
    return INTAKE.to_metadata()


def secret() -> str:
    return uuid.uuid4().hex


def ask(lon, lat, request_id, *, category="environment.garbage", parent=TOWN, **extra):
    return pb.ReportAnonymouslyRequest(
        parent=tenancy.tenant_name(parent),
        request_id=request_id,
        event=pb.Event(
            category=category,
            description="bins overflowing by the bridge",
            location=geo_pb2.GeoPoint(longitude=lon, latitude=lat),
            **extra,
        ),
    )


async def allow(events, tenant, per_hour=20, on=True, who=STAFF):
    return await events.stub.UpdateIntakeSettings(
        pb.UpdateIntakeSettingsRequest(
            intake_settings=pb.IntakeSettings(
                name=f"{tenancy.tenant_name(tenant)}/intakeSettings",
                anonymous_reports=on,
                anonymous_reports_per_hour=per_hour,
            )
        ),
        metadata=who.to_metadata(),
    )


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_off_by_default_and_the_nearest_level_decides(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING)
    error = await refused(events.stub.ReportAnonymously(ask(lon, lat, secret()), metadata=anon()))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "signed-in" in error.details()
    assert await events.count_rows() == 0

    await allow(events, TOWN)
    await allow(events, XIANGYANG, on=False)
    here = await events.stub.GetIntakeSettings(
        pb.GetIntakeSettingsRequest(name=f"{tenancy.tenant_name(XINGMING)}/intakeSettings"),
        metadata=STAFF.to_metadata(),
    )
    assert (here.anonymous_reports, here.defined_at) == (True, TOWN)
    answer = await events.stub.ReportAnonymously(ask(lon, lat, secret()), metadata=anon())
    assert answer.event.village == XINGMING
    _, lon_b, lat_b = cell_point(grid_index, XIANGYANG)
    error = await refused(
        events.stub.ReportAnonymously(ask(lon_b, lat_b, secret()), metadata=anon())
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await events.count_rows() == 1


async def test_settings_need_the_configure_scope_and_the_tenant(events):
    reader = principal_of(TOWN, "users/reader", frozenset({"events:read", "events:write"}))
    error = await refused(allow(events, TOWN, who=reader))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    other = principal_of(XIANGYANG, "users/b", frozenset({"events:configure"}))
    error = await refused(allow(events, XINGMING, who=other))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await refused(allow(events, TOWN, per_hour=0))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "anonymous_reports_per_hour" in failure_of(error).violations[0].field


async def test_the_receipt_follows_and_evaluates_and_nothing_personal_comes_back(
    events, grid_index
):
    await allow(events, XINGMING)
    _, lon, lat = cell_point(grid_index, XINGMING, 2)
    key = secret()
    answer = await events.stub.ReportAnonymously(
        ask(lon, lat, key, reporter_contact="13800138000", severity=5), metadata=anon()
    )
    event_id = answer.event.name.rsplit("/", 1)[1]
    assert answer.receipt == f"{event_id}.{key}"
    # What the passer-by may not set is not taken; what names people is not shown.
    assert answer.event.severity != 5
    assert answer.event.reporter_contact == ""
    assert answer.event.grid_worker == ""
    assert all(t.actor == "" for t in answer.event.timeline)

    # Staff see the event, reported by a digest that is not the secret.
    staff = principal_of(XINGMING, "users/secretary")
    stored = await events.stub.GetEvent(
        pb.GetEventRequest(name=answer.event.name), metadata=staff.to_metadata()
    )
    assert stored.timeline[0].actor.startswith("anonymous:")
    assert key not in stored.timeline[0].actor
    assert stored.grid_worker

    # A retry with the same secret is the same event with the same receipt.
    again = await events.stub.ReportAnonymously(ask(lon, lat, key), metadata=anon())
    assert again.receipt == answer.receipt
    assert await events.count_rows() == 1

    followed = await events.stub.GetAnonymousReport(
        pb.GetAnonymousReportRequest(receipt=answer.receipt), metadata=anon()
    )
    assert followed.event.name == answer.event.name and followed.receipt == ""
    for wrong in (f"{event_id}.{secret()}", f"ev_{'0' * 26}.{key}"):
        error = await refused(
            events.stub.GetAnonymousReport(
                pb.GetAnonymousReportRequest(receipt=wrong), metadata=anon()
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await refused(
        events.stub.GetAnonymousReport(
            pb.GetAnonymousReportRequest(receipt="not a receipt"), metadata=anon()
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure_of(error).violations[0].field == "receipt"

    # Not before it is resolved; then once, and it closes.
    evaluate = pb.EvaluateAnonymousReportRequest(receipt=answer.receipt, score=4, text="quick")
    error = await refused(events.stub.EvaluateAnonymousReport(evaluate, metadata=anon()))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    for state in (S.STATE_ACCEPTED, S.STATE_DISPATCHED, S.STATE_IN_PROGRESS, S.STATE_RESOLVED):
        await events.stub.TransitionEvent(
            pb.TransitionEventRequest(name=answer.event.name, state=state),
            metadata=staff.to_metadata(),
        )
    closed = await events.stub.EvaluateAnonymousReport(evaluate, metadata=anon())
    assert closed.event.state == S.STATE_CLOSED
    assert closed.event.evaluation.score == 4


async def test_a_village_takes_its_hourly_number_and_retries_still_answer(events, grid_index):
    await allow(events, XINGMING, per_hour=2)
    keys = [secret() for _ in range(3)]
    for k, key in enumerate(keys[:2]):
        _, lon, lat = cell_point(grid_index, XINGMING, k * 5)
        await events.stub.ReportAnonymously(
            ask(lon, lat, key, category="roads.damage"), metadata=anon()
        )
    _, lon, lat = cell_point(grid_index, XINGMING, 11)
    error = await refused(
        events.stub.ReportAnonymously(
            ask(lon, lat, keys[2], category="roads.damage"), metadata=anon()
        )
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert failure_of(error).metadata["retry_after_seconds"]
    # Signed-in reports do not count against it, and a retry is answered.
    signed_in = principal_of(XINGMING, "users/resident")
    await events.stub.CreateEvent(
        pb.CreateEventRequest(
            parent=tenancy.tenant_name(XINGMING),
            request_id="signed-1",
            event=pb.Event(
                category="roads.damage",
                description="a hole",
                location=geo_pb2.GeoPoint(longitude=lon, latitude=lat),
            ),
        ),
        metadata=signed_in.to_metadata(),
    )
    _, lon, lat = cell_point(grid_index, XINGMING, 0)
    again = await events.stub.ReportAnonymously(
        ask(lon, lat, keys[0], category="roads.damage"), metadata=anon()
    )
    assert again.receipt.endswith(keys[0])


async def test_only_the_intake_scope_reports_and_a_short_secret_is_refused(events, grid_index):
    await allow(events, XINGMING)
    _, lon, lat = cell_point(grid_index, XINGMING)
    reader = Principal(
        "anonymous", "sh", kind="app", roles=(ANONYMOUS_ROLE,), scopes=frozenset({"events:read"})
    )
    error = await refused(
        events.stub.ReportAnonymously(ask(lon, lat, secret()), metadata=reader.to_metadata())
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await refused(events.stub.ReportAnonymously(ask(lon, lat, "short"), metadata=anon()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure_of(error).violations[0].field == "request_id"
    assert await events.count_rows() == 0


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
VILLAGE_STAFF = principal_of(XINGMING, "users/secretary")  # handles and manages


def photo(lon, lat, request_id, content=PNG, *, parent=TOWN, located=True):
    return pb.AttachAnonymouslyRequest(
        attachment=pb.CreateAttachmentRequest(parent=tenancy.tenant_name(parent), content=content),
        location=geo_pb2.GeoPoint(longitude=lon, latitude=lat) if located else None,
        request_id=request_id,
    )


async def test_a_photo_without_an_account_goes_with_its_own_report_in_its_village(
    events, grid_index
):
    _, lon, lat = cell_point(grid_index, XINGMING)
    key = secret()
    off = await refused(events.stub.AttachAnonymously(photo(lon, lat, key), metadata=anon()))
    assert failure_of(off).reason == "ANONYMOUS_REPORTS_OFF"
    await allow(events, TOWN)
    made = await events.stub.AttachAnonymously(photo(lon, lat, key), metadata=anon())
    assert made.name.startswith(f"{tenancy.tenant_name(XINGMING)}/attachments/")
    assert made.content_type == "image/png"

    # Another report (another secret) cannot name it; the report of its secret can.
    stranger = await refused(
        events.stub.ReportAnonymously(
            ask(lon, lat, secret(), media_uris=[made.name]), metadata=anon()
        )
    )
    assert [v.field for v in failure_of(stranger).violations] == ["event.media_uris[0]"]
    answer = await events.stub.ReportAnonymously(
        ask(lon, lat, key, media_uris=[made.name]), metadata=anon()
    )
    assert list(answer.event.media_uris) == [made.name]
    # The village's staff open it as they open the report; the passer-by cannot.
    seen = await events.stub.GetAttachment(
        pb.GetAttachmentRequest(name=made.name), metadata=VILLAGE_STAFF.to_metadata()
    )
    assert seen.content == PNG
    hidden = await refused(
        events.stub.GetAttachment(pb.GetAttachmentRequest(name=made.name), metadata=anon())
    )
    assert hidden.code() == grpc.StatusCode.PERMISSION_DENIED  # the intake scope reads nothing

    # A photo kept for Xingming cannot go with a report placed in Xiangyang.
    other = secret()
    kept = await events.stub.AttachAnonymously(photo(lon, lat, other), metadata=anon())
    _, lon_b, lat_b = cell_point(grid_index, XIANGYANG)
    moved = await refused(
        events.stub.ReportAnonymously(
            ask(lon_b, lat_b, other, media_uris=[kept.name]), metadata=anon()
        )
    )
    assert [v.field for v in failure_of(moved).violations] == ["event.media_uris[0]"]


async def test_a_photo_without_an_account_has_the_reports_limits_and_bad_input_named(
    events, grid_index
):
    _, lon, lat = cell_point(grid_index, XINGMING)
    await allow(events, TOWN, per_hour=1)
    cases = [
        (photo(lon, lat, secret(), b"<svg onload=alert(1)>"), "content"),
        (photo(lon, lat, "short"), "request_id"),
        (photo(lon, lat, secret(), located=False), "location"),
        (photo(200.0, lat, secret()), "location.longitude"),
    ]
    for request, field in cases:
        error = await refused(events.stub.AttachAnonymously(request, metadata=anon()))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert [v.field for v in failure_of(error).violations] == [field]
    # The contract's bound on a photo's size is the signed-in upload's.
    large = b"\x89PNG\r\n\x1a\n" + b"\x00" * (2 * 1024 * 1024)
    too_big = await refused(
        events.stub.AttachAnonymously(photo(lon, lat, secret(), large), metadata=anon())
    )
    assert too_big.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The village's hour used up by a report: no photo for another one either.
    await events.stub.ReportAnonymously(ask(lon, lat, secret()), metadata=anon())
    full = await refused(events.stub.AttachAnonymously(photo(lon, lat, secret()), metadata=anon()))
    assert failure_of(full).reason == "ANONYMOUS_REPORTS_LIMIT"
    # Only the intake scope reaches it: a signed-in resident uploads the usual way.
    resident = principal_of(XINGMING, "users/r1", frozenset({"events:read", "events:write"}))
    denied = await refused(
        events.stub.AttachAnonymously(photo(lon, lat, secret()), metadata=resident.to_metadata())
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_update_mask_changes_only_its_fields(events):
    await allow(events, TOWN, per_hour=30)
    only_number = await events.stub.UpdateIntakeSettings(
        pb.UpdateIntakeSettingsRequest(
            intake_settings=pb.IntakeSettings(
                name=f"{tenancy.tenant_name(XINGMING)}/intakeSettings",
                anonymous_reports_per_hour=5,
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["anonymous_reports_per_hour"]),
        ),
        metadata=STAFF.to_metadata(),
    )
    # Still on, as the town decided: the village changed its hourly number alone.
    assert (only_number.anonymous_reports, only_number.anonymous_reports_per_hour) == (True, 5)
    assert only_number.defined_at == XINGMING
    wrong = await refused(
        events.stub.UpdateIntakeSettings(
            pb.UpdateIntakeSettingsRequest(
                intake_settings=pb.IntakeSettings(
                    name=f"{tenancy.tenant_name(XINGMING)}/intakeSettings"
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            ),
            metadata=STAFF.to_metadata(),
        )
    )
    assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure_of(wrong).violations[0].field == "update_mask"
