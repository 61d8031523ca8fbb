"""The datasets over real gRPC, with the empower service started as `python -m` starts
it and the real map service as the address list."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import grpc
import pytest

from grassroots.empower.v1 import datasets_service_pb2 as pb
from grassroots.empower.v1 import datasets_service_pb2_grpc as pb_grpc
from services.empower.config import EmpowerSettings
from services.empower.wiring import build
from services.kit.principal import Principal
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING, serve_in_process
from tests.unit.empower.datasets.conftest import HEADER, id_number

DISTRICT = "sh/jiading"
PUBLISHER = Principal(
    "users/district-data", DISTRICT, scopes=frozenset({"datasets:publish", "datasets:read"})
)


def reader(tenant: str, *more: str) -> Principal:
    return Principal(f"users/sec-{tenant[-3:]}", tenant, scopes=frozenset({"datasets:read", *more}))


def line(n: int, village: str) -> str:
    return f"{id_number(n)},Resident {n},139{n:08d},{village} b{n},1952-03-14,no,2"


@pytest.fixture
async def stub(map_server, tmp_path: Path):
    settings = EmpowerSettings(
        grpc_port=0,
        host="127.0.0.1",
        database=tmp_path / "empower.sqlite3",
        seal_keys="k1:" + base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        index_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        map_address=map_server.address,
    )
    component = await build(settings)
    server = await serve_in_process("empower", component)
    yield pb_grpc.DatasetsServiceStub(server.channel)
    await server.channel.close()
    await server.running.stop()
    await component.close()


def schema() -> pb.Dataset:
    t = pb.DatasetField.Type
    return pb.Dataset(
        display_name="Residents register",
        classification=pb.CLASSIFICATION_INTERNAL,
        key_field="id_number",
        area="elderly care",
        fields=[
            pb.DatasetField(name="id_number", type=t.TYPE_ID_NUMBER, required=True),
            pb.DatasetField(name="name", type=t.TYPE_PERSON_NAME, required=True),
            pb.DatasetField(name="phone", type=t.TYPE_MOBILE),
            pb.DatasetField(name="address", type=t.TYPE_ADDRESS, required=True),
            pb.DatasetField(name="birth_date", type=t.TYPE_DATE),
            pb.DatasetField(name="lives_alone", type=t.TYPE_BOOLEAN),
            pb.DatasetField(name="household_size", type=t.TYPE_INTEGER),
        ],
    )


async def test_publish_import_subscribe_and_pull_over_grpc(stub):
    created = await stub.CreateDataset(
        pb.CreateDatasetRequest(
            parent="tenants/sh-jiading", dataset_id="residents", dataset=schema()
        ),
        metadata=PUBLISHER.to_metadata(),
    )
    assert created.name == "tenants/sh-jiading/datasets/residents"
    content = "\n".join([HEADER, line(1, "xingming"), line(2, "xiangyang"), line(1, "xingming")])
    report = await stub.ImportDatasetRows(
        pb.ImportDatasetRowsRequest(
            dataset=created.name, content=content.encode(), format=pb.FILE_FORMAT_CSV, snapshot=True
        ),
        metadata=PUBLISHER.to_metadata(),
    )
    assert (report.read_count, report.inserted_count, report.rejected_count) == (3, 2, 1)
    assert report.rejected_rows[0].row_number == 4
    assert report.rejected_rows[0].field == "id_number"
    village = reader(XINGMING)
    sub = await stub.CreateSubscription(
        pb.CreateSubscriptionRequest(
            parent="tenants/sh-jiading-anting-xingming",
            subscription=pb.Subscription(dataset=created.name),
        ),
        metadata=village.to_metadata(),
    )
    page = await stub.SyncDatasetRows(
        pb.SyncDatasetRowsRequest(subscription=sub.name), metadata=village.to_metadata()
    )
    assert [(r.tenant, r.masked, r.building) for r in page.rows] == [
        (XINGMING, True, "xingming-b0001")
    ]
    assert page.rows[0].values["phone"] == "139****0001"
    assert page.next_cursor == page.rows[-1].cursor
    # Another village gets NOT_FOUND for this subscription, as if it did not exist.
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.SyncDatasetRows(
            pb.SyncDatasetRowsRequest(subscription=sub.name),
            metadata=reader(XIANGYANG).to_metadata(),
        )
    assert denied.value.code() is grpc.StatusCode.NOT_FOUND
    listed = await stub.ListDatasets(
        pb.ListDatasetsRequest(parent="tenants/sh-jiading-anting"),
        metadata=reader(TOWN).to_metadata(),
    )
    assert [d.name for d in listed.datasets] == [created.name]
    assert listed.datasets[0].row_count == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.ClearField("classification"), "dataset.classification"),
        (lambda d: d.fields[0].ClearField("type"), "dataset.fields[0].type"),
        (lambda d: setattr(d, "key_field", "nope"), "dataset.key_field"),
    ],
)
async def test_a_bad_schema_is_invalid_argument_naming_the_field(stub, change, field):
    dataset = schema()
    change(dataset)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateDataset(
            pb.CreateDatasetRequest(parent="tenants/sh-jiading", dataset_id="x", dataset=dataset),
            metadata=PUBLISHER.to_metadata(),
        )
    failure = failure_of(refused.value)
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in failure.violations] == [field]


async def test_bad_imports_name_what_is_wrong_and_write_nothing(stub):
    created = await stub.CreateDataset(
        pb.CreateDatasetRequest(
            parent="tenants/sh-jiading", dataset_id="residents", dataset=schema()
        ),
        metadata=PUBLISHER.to_metadata(),
    )
    for request, field in (
        (pb.ImportDatasetRowsRequest(dataset=created.name, content=b"x"), "format"),
        (pb.ImportDatasetRowsRequest(dataset=created.name, format=pb.FILE_FORMAT_CSV), "content"),
        (
            pb.ImportDatasetRowsRequest(
                dataset=created.name, content=b"PK\x03\x04junk", format=pb.FILE_FORMAT_XLSX
            ),
            "content",
        ),
        (
            pb.ImportDatasetRowsRequest(
                dataset=created.name, content=b"name\nx\n", format=pb.FILE_FORMAT_CSV
            ),
            "content",
        ),
        (
            pb.ImportDatasetRowsRequest(
                dataset="datasets/x", format=pb.FILE_FORMAT_CSV, content=b"a"
            ),
            "dataset",
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ImportDatasetRows(request, metadata=PUBLISHER.to_metadata())
        failure = failure_of(refused.value)
        assert failure.code is grpc.StatusCode.INVALID_ARGUMENT, failure
        assert [v.field for v in failure.violations] == [field]
    found = await stub.GetDataset(
        pb.GetDatasetRequest(name=created.name), metadata=PUBLISHER.to_metadata()
    )
    assert (found.row_count, found.latest_cursor) == (0, "0")


async def test_scopes_are_checked_per_method(stub):
    nobody = Principal("users/x", XINGMING, scopes=frozenset({"events:read"}))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.ListDatasets(
            pb.ListDatasetsRequest(parent="tenants/sh-jiading-anting-xingming"),
            metadata=nobody.to_metadata(),
        )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.CreateDataset(
            pb.CreateDatasetRequest(parent="tenants/sh-jiading", dataset_id="x", dataset=schema()),
            metadata=reader(DISTRICT).to_metadata(),
        )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
