"""Ingest: each reading checked against its model, refusals reported, never stored;
an older reading never overwrites a newer latest value."""

from __future__ import annotations

import math
import time

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from grassroots.twin.v1 import twin_service_pb2 as pb
from services.kit import tenancy
from tests.conftest import XIANGYANG, XINGMING, SignedAtCall, principal_of
from tests.unit.twin.test_alarm_loop import MD, PARENT, make_gauge

NOW = int(time.time() * 1000)


def columns(entities, properties, values, times=None, units=None):
    return pb.IngestTelemetryRequest(
        parent=PARENT,
        columns=pb.TelemetryColumns(
            entities=entities,
            properties=properties,
            values=values,
            observe_times_ms=times or [],
            units=units or [],
        ),
    )


def field_violations(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(exc)
    out = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            info = error_details_pb2.BadRequest()
            detail.Unpack(info)
            out.update({v.field: v.description for v in info.field_violations})
    return out


async def test_each_bad_reading_is_refused_with_its_reason_and_the_rest_stored(twin, grid_index):
    await make_gauge(twin, grid_index)
    request = columns(
        entities=["gauge-1", "gauge-1", "nobody", "gauge-1", "gauge-1", "gauge-1", "gauge-1"],
        properties=["level_cm"] * 3 + ["depth"] + ["level_cm"] * 3,
        values=[12.0, 9999.0, 1.0, 1.0, math.nan, 13.0, 14.0],
        times=[NOW - 6000, NOW - 5000, NOW - 4000, NOW - 3000, NOW - 2000, NOW - 1000, NOW],
        units=["cm", "", "", "", "", "m", ""],
    )
    got = await twin.stub.IngestTelemetry(request, metadata=MD)
    assert (got.accepted_count, got.rejected_count) == (2, 5)
    reasons = {r.index: (r.reason, r.field) for r in got.rejections}
    assert reasons == {
        1: ("OUT_OF_RANGE", "columns.values"),
        2: ("UNKNOWN_ENTITY", "columns.entities"),
        3: ("UNKNOWN_PROPERTY", "columns.properties"),
        4: ("NOT_FINITE", "columns.values"),
        5: ("WRONG_UNIT", "columns.units"),
    }
    assert "-500..2000" in next(r.description for r in got.rejections if r.index == 1)
    entity = await twin.stub.GetEntity(
        pb.GetEntityRequest(name=f"{PARENT}/entities/gauge-1"), metadata=MD
    )
    level = next(p for p in entity.properties if p.property == "level_cm")
    assert level.value == 14.0 and level.unit == "cm"
    assert level.observe_time.ToMilliseconds() == NOW
    history = await twin.stub.QueryHistory(
        pb.QueryHistoryRequest(
            parent=PARENT,
            property="level_cm",
            start_time=Timestamp(seconds=(NOW - 3_600_000) // 1000),
            end_time=Timestamp(seconds=NOW // 1000 + 10),
        ),
        metadata=MD,
    )
    assert [p.mean for p in history.points] == [12.0, 14.0]


async def test_an_older_reading_does_not_overwrite_a_newer_one(twin, grid_index):
    await make_gauge(twin, grid_index)
    await twin.stub.IngestTelemetry(columns(["gauge-1"], ["level_cm"], [20.0], [NOW]), metadata=MD)
    got = await twin.stub.IngestTelemetry(
        columns(["gauge-1"] * 2, ["level_cm"] * 2, [5.0, 6.0], [NOW - 60_000, NOW - 30_000]),
        metadata=MD,
    )
    assert (got.accepted_count, got.stale_count) == (2, 2)
    assert list(got.stale_indexes) == [0, 1]
    mixed = await twin.stub.IngestTelemetry(
        columns(["gauge-1"] * 3, ["level_cm"] * 3, [7.0, 21.0, 8.0], [NOW - 1, NOW + 1, NOW - 2]),
        metadata=MD,
    )
    assert (mixed.accepted_count, mixed.stale_count, list(mixed.stale_indexes)) == (3, 2, [0, 2])
    entity = await twin.stub.GetEntity(
        pb.GetEntityRequest(name=f"{PARENT}/entities/gauge-1"), metadata=MD
    )
    assert entity.state["level_cm"] == 21.0


async def test_ragged_columns_are_invalid_argument_naming_the_column(twin, grid_index):
    await make_gauge(twin, grid_index)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await twin.stub.IngestTelemetry(
            columns(["gauge-1", "gauge-1"], ["level_cm"], [1.0, 2.0]), metadata=MD
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "columns.properties" in field_violations(caught.value)


async def test_another_tenants_entity_is_unknown_and_untouched(twin, grid_index):
    await make_gauge(twin, grid_index)
    neighbour = principal_of(XIANGYANG, scopes=frozenset({"twin:ingest", "twin:read"}))
    # Naming the entity by its full name from another village: refused as unknown.
    got = await twin.stub.IngestTelemetry(
        pb.IngestTelemetryRequest(
            parent=tenancy.tenant_name(XIANGYANG),
            columns=pb.TelemetryColumns(
                entities=[f"{PARENT}/entities/gauge-1"], properties=["level_cm"], values=[99.0]
            ),
        ),
        metadata=SignedAtCall(neighbour),
    )
    assert got.rejections[0].reason == "UNKNOWN_ENTITY"
    # Writing into the other village's parent at all: NOT_FOUND.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await twin.stub.IngestTelemetry(
            columns(["gauge-1"], ["level_cm"], [99.0]), metadata=SignedAtCall(neighbour)
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await twin.stub.GetEntity(
            pb.GetEntityRequest(name=f"{PARENT}/entities/gauge-1"),
            metadata=SignedAtCall(neighbour),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_ingest_needs_the_ingest_scope(twin, grid_index):
    await make_gauge(twin, grid_index)
    reader = principal_of(XINGMING, scopes=frozenset({"twin:read", "twin:write"}))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await twin.stub.IngestTelemetry(
            columns(["gauge-1"], ["level_cm"], [1.0]), metadata=SignedAtCall(reader)
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_history_downsamples_into_buckets_and_pages(twin, grid_index):
    await make_gauge(twin, grid_index, "gauge-1")
    await make_gauge(twin, grid_index, "gauge-2")
    start = (NOW // 3_600_000 - 2) * 3_600_000
    times = [start + i * 60_000 for i in range(120)]  # two hours, one a minute
    for entity, offset in (("gauge-1", 0.0), ("gauge-2", 100.0)):
        await twin.stub.IngestTelemetry(
            columns([entity] * 120, ["level_cm"] * 120, [offset + i for i in range(120)], times),
            metadata=MD,
        )
    request = pb.QueryHistoryRequest(
        parent=PARENT,
        property="level_cm",
        entity_type="WaterLevelGauge",
        start_time=Timestamp(seconds=start // 1000),
        end_time=Timestamp(seconds=start // 1000 + 7200),
        bucket=Duration(seconds=1800),
        page_size=3,
    )
    points = []
    while True:
        page = await twin.stub.QueryHistory(request, metadata=MD)
        points += page.points
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert len(points) == 8
    first = points[0]
    assert first.entity.endswith("/gauge-1")
    assert (first.count, first.min, first.max, first.mean) == (30, 0.0, 29.0, 14.5)
    assert points[4].entity.endswith("/gauge-2") and points[4].min == 100.0


async def test_an_empty_values_column_is_one_error_naming_values(twin, grid_index):
    await make_gauge(twin, grid_index)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await twin.stub.IngestTelemetry(
            columns(["gauge-1", "gauge-1"], ["level_cm"] * 2, []), metadata=MD
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert list(violations) == ["columns.values"]
    assert "level_cm" in violations["columns.values"]
    entity = await twin.stub.GetEntity(
        pb.GetEntityRequest(name=f"{PARENT}/entities/gauge-1"), metadata=MD
    )
    assert "level_cm" not in entity.state
