"""REST for datasets returned to villages (ADR 20).

A city or district publishes a register (`datasets:publish`) and imports files into it;
a village subscribes (`datasets:read`) and pulls its own rows since a cursor. Personal
values come back masked unless the caller holds `people:read_sensitive` and states a
purpose (`purpose` parameter or `X-Purpose` header); the empower service audits each
unmasked read. Paths are resource names under /v1/ (ADR 9).
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from fastapi import (
    APIRouter,
    File,
    Form,
    Header,
    Path,
    Query,
    Request,
    Response,
    Security,
    UploadFile,
)
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.auth import access, call_metadata, calls
from gateway.errors import call
from gateway.paths import TenantId, parent, rest_path
from gateway.schemas.datasets import (
    DatasetCreate,
    DatasetList,
    DatasetOut,
    ImportReportOut,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionOut,
    SyncPage,
)
from grassroots.empower.v1 import datasets_service_pb2 as pb
from services.kit.principal import Principal

SERVICE = "grassroots.empower.v1.DatasetsService"
router = APIRouter(prefix="/v1", tags=["datasets"])
Who = Annotated[Principal, Security(access("empower"))]
DatasetId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{0,62}$", description="dataset id")]
SubscriptionId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="subscription id (sub_...)")
]
PageSize = Annotated[int, Query(ge=1, le=1000)]
PageToken = Annotated[str, Query(max_length=512)]
_LEVELS = {
    pb.CLASSIFICATION_PUBLIC: "public",
    pb.CLASSIFICATION_INTERNAL: "internal",
    pb.CLASSIFICATION_SENSITIVE: "sensitive",
    pb.CLASSIFICATION_CORE: "core",
}
_LEVELS_BACK = {v: k for k, v in _LEVELS.items()}
_FORMATS = {
    "csv": pb.FILE_FORMAT_CSV,
    "xlsx": pb.FILE_FORMAT_XLSX,
    "geopackage": pb.FILE_FORMAT_GEOPACKAGE,
}


def _time(ts: Timestamp) -> str:
    return ts.ToDatetime(tzinfo=UTC).isoformat()


def _type_name(value: int) -> str:
    return pb.DatasetField.Type.Name(value).removeprefix("TYPE_").lower()  # type: ignore[arg-type]


def dataset_out(d: pb.Dataset) -> DatasetOut:
    return DatasetOut(
        name=d.name,
        display_name=d.display_name,
        description=d.description,
        classification=_LEVELS[d.classification],  # type: ignore[arg-type]
        key_field=d.key_field,
        area=d.area,
        fields=[
            {  # type: ignore[misc]
                "name": f.name,
                "type": _type_name(f.type),
                "required": f.required,
                "personal": f.personal,
                "description": f.description,
            }
            for f in d.fields
        ],
        row_count=d.row_count,
        latest_cursor=d.latest_cursor,
        create_time=_time(d.create_time),
        update_time=_time(d.update_time),
    )


def subscription_out(s: pb.Subscription) -> SubscriptionOut:
    return SubscriptionOut(
        name=s.name, dataset=s.dataset, subscriber=s.subscriber, create_time=_time(s.create_time)
    )


@router.post(
    "/tenants/{tenant}/datasets",
    status_code=201,
    response_model=DatasetOut,
    summary="Publish a dataset (a city or district)",
)
@calls(SERVICE, "CreateDataset")
async def create_dataset(
    tenant: TenantId, body: DatasetCreate, request: Request, response: Response, who: Who
) -> DatasetOut:
    dataset = pb.Dataset(
        display_name=body.display_name,
        description=body.description,
        classification=_LEVELS_BACK[body.classification],
        key_field=body.key_field,
        area=body.area,
        fields=[
            pb.DatasetField(
                name=f.name,
                type=pb.DatasetField.Type.Value(f"TYPE_{f.type.upper()}"),
                required=f.required,
                personal=f.personal,
                description=f.description,
            )
            for f in body.fields
        ],
    )
    created = await call(
        request.app.state.upstreams.datasets.CreateDataset(
            pb.CreateDatasetRequest(
                parent=parent(tenant), dataset_id=body.dataset_id, dataset=dataset
            ),
            metadata=call_metadata(who),
        )
    )
    response.headers["Location"] = rest_path(created.name)
    return dataset_out(created)


@router.get(
    "/tenants/{tenant}/datasets",
    response_model=DatasetList,
    summary="List the datasets a node can subscribe to (published at it and above)",
)
@calls(SERVICE, "ListDatasets")
async def list_datasets(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> DatasetList:
    found = await call(
        request.app.state.upstreams.datasets.ListDatasets(
            pb.ListDatasetsRequest(
                parent=parent(tenant), page_size=page_size, page_token=page_token
            ),
            metadata=call_metadata(who),
        )
    )
    return DatasetList(
        datasets=[dataset_out(d) for d in found.datasets], next_page_token=found.next_page_token
    )


@router.get(
    "/tenants/{tenant}/datasets/{dataset}", response_model=DatasetOut, summary="Get a dataset"
)
@calls(SERVICE, "GetDataset")
async def get_dataset(
    tenant: TenantId, dataset: DatasetId, request: Request, who: Who
) -> DatasetOut:
    found = await call(
        request.app.state.upstreams.datasets.GetDataset(
            pb.GetDatasetRequest(name=f"{parent(tenant)}/datasets/{dataset}"),
            metadata=call_metadata(who),
        )
    )
    return dataset_out(found)


@router.post(
    "/tenants/{tenant}/datasets/{dataset}:import",
    response_model=ImportReportOut,
    summary="Import a CSV, XLSX or GeoPackage file: cleaned, with a report of rejected rows",
)
@calls(SERVICE, "ImportDatasetRows")
async def import_rows(
    tenant: TenantId,
    dataset: DatasetId,
    request: Request,
    who: Who,
    file: Annotated[UploadFile, File(description="the file")],
    format: Annotated[Literal["csv", "xlsx", "geopackage"], Form(description="the file's format")],
    snapshot: Annotated[
        bool, Form(description="the file is the whole dataset: rows absent from it are deleted")
    ] = True,
) -> ImportReportOut:
    content = await file.read()
    report = await call(
        request.app.state.upstreams.datasets.ImportDatasetRows(
            pb.ImportDatasetRowsRequest(
                dataset=f"{parent(tenant)}/datasets/{dataset}",
                content=content,
                format=_FORMATS[format],
                snapshot=snapshot,
            ),
            metadata=call_metadata(who),
            timeout=300,
        )
    )
    return ImportReportOut(
        read_count=report.read_count,
        inserted_count=report.inserted_count,
        updated_count=report.updated_count,
        unchanged_count=report.unchanged_count,
        deleted_count=report.deleted_count,
        rejected_count=report.rejected_count,
        rejected_rows=[
            {"row_number": r.row_number, "field": r.field, "reason": r.reason}  # type: ignore[misc]
            for r in report.rejected_rows
        ],
        ignored_columns=list(report.ignored_columns),
        latest_cursor=report.latest_cursor,
    )


@router.post(
    "/tenants/{tenant}/subscriptions",
    status_code=201,
    response_model=SubscriptionOut,
    summary="Subscribe a village to a dataset",
)
@calls(SERVICE, "CreateSubscription")
async def create_subscription(
    tenant: TenantId, body: SubscriptionCreate, request: Request, response: Response, who: Who
) -> SubscriptionOut:
    created = await call(
        request.app.state.upstreams.datasets.CreateSubscription(
            pb.CreateSubscriptionRequest(
                parent=parent(tenant), subscription=pb.Subscription(dataset=body.dataset)
            ),
            metadata=call_metadata(who),
        ),
        strip_prefix="subscription.",
    )
    response.headers["Location"] = rest_path(created.name)
    return subscription_out(created)


@router.get(
    "/tenants/{tenant}/subscriptions",
    response_model=SubscriptionList,
    summary="List the subscriptions of a node's subtree",
)
@calls(SERVICE, "ListSubscriptions")
async def list_subscriptions(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> SubscriptionList:
    found = await call(
        request.app.state.upstreams.datasets.ListSubscriptions(
            pb.ListSubscriptionsRequest(
                parent=parent(tenant), page_size=page_size, page_token=page_token
            ),
            metadata=call_metadata(who),
        )
    )
    return SubscriptionList(
        subscriptions=[subscription_out(s) for s in found.subscriptions],
        next_page_token=found.next_page_token,
    )


@router.delete(
    "/tenants/{tenant}/subscriptions/{subscription}",
    status_code=204,
    summary="End a subscription",
)
@calls(SERVICE, "DeleteSubscription")
async def delete_subscription(
    tenant: TenantId, subscription: SubscriptionId, request: Request, who: Who
) -> Response:
    await call(
        request.app.state.upstreams.datasets.DeleteSubscription(
            pb.DeleteSubscriptionRequest(name=f"{parent(tenant)}/subscriptions/{subscription}"),
            metadata=call_metadata(who),
        )
    )
    return Response(status_code=204)


@router.get(
    "/tenants/{tenant}/subscriptions/{subscription}:sync",
    response_model=SyncPage,
    summary="Pull the village's rows changed since a cursor (deletions as tombstones)",
)
@calls(SERVICE, "SyncDatasetRows")
async def sync_rows(
    tenant: TenantId,
    subscription: SubscriptionId,
    request: Request,
    who: Who,
    cursor: Annotated[str, Query(max_length=20, description="next_cursor of the last pull")] = "",
    page_size: Annotated[int, Query(ge=1, le=5000)] = 1000,
    purpose: Annotated[
        str | None, Query(max_length=500, description="why you read; needed to see unmasked data")
    ] = None,
    x_purpose: Annotated[
        str | None,
        Header(max_length=1500, description="the purpose, percent-encoded UTF-8 when not ASCII"),
    ] = None,
) -> SyncPage:
    stated = purpose if purpose is not None else unquote(x_purpose) if x_purpose else ""
    page = await call(
        request.app.state.upstreams.datasets.SyncDatasetRows(
            pb.SyncDatasetRowsRequest(
                subscription=f"{parent(tenant)}/subscriptions/{subscription}",
                cursor=cursor,
                page_size=page_size,
                purpose=stated,
            ),
            metadata=call_metadata(who),
        )
    )
    return SyncPage(rows=[_row(r) for r in page.rows], next_cursor=page.next_cursor, more=page.more)


def _row(r: pb.DatasetRow) -> Any:
    return {
        "row_id": r.row_id,
        "key": r.key,
        "tenant": r.tenant,
        "building": r.building,
        "values": dict(r.values),
        "deleted": r.deleted,
        "masked": r.masked,
        "cursor": r.cursor,
    }
