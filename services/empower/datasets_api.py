"""gRPC adapter of the datasets: messages in, domain calls, messages out.

Cleaning, tenancy, masking and audit are decided in
`services.empower.domain.datasets`; this module only translates.
"""

from __future__ import annotations

from google.protobuf import empty_pb2

from grassroots.empower.v1 import datasets_service_pb2 as pb
from grassroots.empower.v1 import datasets_service_pb2_grpc as pb_grpc
from services.empower.domain.datasets.files import FileFormat
from services.empower.domain.datasets.model import (
    Classification,
    Dataset,
    DatasetField,
    FieldType,
    ImportReport,
    SliceRow,
    Subscription,
    parse_subscription_name,
)
from services.empower.domain.datasets.service import DatasetDesk
from services.kit import tenancy
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument
from services.kit.timestamps import to_timestamp

MAX_REJECTED_LISTED = 10_000
_LEVELS = {
    Classification.PUBLIC: pb.CLASSIFICATION_PUBLIC,
    Classification.INTERNAL: pb.CLASSIFICATION_INTERNAL,
    Classification.SENSITIVE: pb.CLASSIFICATION_SENSITIVE,
    Classification.CORE: pb.CLASSIFICATION_CORE,
}
_LEVELS_BACK = {v: k for k, v in _LEVELS.items()}
_TYPES = {t: pb.DatasetField.Type.Value(f"TYPE_{t.name}") for t in FieldType}
_TYPES_BACK = {v: k for k, v in _TYPES.items()}
_FORMATS = {
    pb.FILE_FORMAT_CSV: FileFormat.CSV,
    pb.FILE_FORMAT_XLSX: FileFormat.XLSX,
    pb.FILE_FORMAT_GEOPACKAGE: FileFormat.GEOPACKAGE,
}


def dataset_to_proto(dataset: Dataset) -> pb.Dataset:
    return pb.Dataset(
        name=dataset.resource_name,
        display_name=dataset.display_name,
        description=dataset.description,
        classification=_LEVELS[dataset.classification],
        fields=[
            pb.DatasetField(
                name=f.name,
                type=_TYPES[f.type],
                required=f.required,
                personal=f.personal,
                description=f.description,
            )
            for f in dataset.fields
        ],
        key_field=dataset.key_field,
        area=dataset.area,
        row_count=dataset.row_count,
        latest_cursor=str(dataset.last_seq),
        create_time=to_timestamp(dataset.create_time),
        update_time=to_timestamp(dataset.update_time),
    )


def dataset_from_proto(message: pb.Dataset) -> Dataset:
    level = _LEVELS_BACK.get(message.classification)
    if level is None:
        raise InvalidArgument.field("dataset.classification", "public, internal, sensitive or core")
    fields = []
    for i, f in enumerate(message.fields):
        kind = _TYPES_BACK.get(f.type)
        if kind is None:
            raise InvalidArgument.field(f"dataset.fields[{i}].type", "is not a known type")
        fields.append(DatasetField(f.name, kind, f.required, f.personal, f.description))
    # Validated by the domain, which names the field at fault.
    return Dataset(
        tenant="",
        dataset_id="",
        display_name=message.display_name,
        description=message.description,
        classification=level,
        fields=tuple(fields),
        key_field=message.key_field,
        area=message.area,
    )


def subscription_to_proto(subscription: Subscription) -> pb.Subscription:
    return pb.Subscription(
        name=subscription.resource_name,
        dataset=subscription.dataset,
        subscriber=subscription.subscriber,
        create_time=to_timestamp(subscription.create_time),
    )


def report_to_proto(report: ImportReport) -> pb.ImportDatasetRowsResponse:
    return pb.ImportDatasetRowsResponse(
        read_count=report.read,
        inserted_count=report.inserted,
        updated_count=report.updated,
        unchanged_count=report.unchanged,
        deleted_count=report.deleted,
        rejected_count=len(report.rejected),
        rejected_rows=[
            pb.RejectedRow(row_number=r.row_number, field=r.field, reason=r.reason)
            for r in report.rejected[:MAX_REJECTED_LISTED]
        ],
        ignored_columns=list(report.ignored_columns),
        latest_cursor=str(report.last_seq),
    )


def row_to_proto(row: SliceRow) -> pb.DatasetRow:
    return pb.DatasetRow(
        key=row.key,
        tenant=row.tenant,
        building=row.building,
        values=row.values,
        deleted=row.deleted,
        masked=row.masked,
        cursor=str(row.seq),
        row_id=row.row_id,
    )


class DatasetsServicer(pb_grpc.DatasetsServiceServicer):
    def __init__(self, desk: DatasetDesk) -> None:
        self.desk = desk

    async def CreateDataset(self, request: pb.CreateDatasetRequest, context: object) -> pb.Dataset:
        draft = dataset_from_proto(request.dataset)
        created = await self.desk.create_dataset(
            require_principal(), tenancy.parse_parent(request.parent), request.dataset_id, draft
        )
        return dataset_to_proto(created)

    async def GetDataset(self, request: pb.GetDatasetRequest, context: object) -> pb.Dataset:
        return dataset_to_proto(await self.desk.get_dataset(require_principal(), request.name))

    async def ListDatasets(
        self, request: pb.ListDatasetsRequest, context: object
    ) -> pb.ListDatasetsResponse:
        found, token = await self.desk.list_datasets(
            require_principal(),
            tenancy.parse_parent(request.parent),
            request.page_size,
            request.page_token,
        )
        return pb.ListDatasetsResponse(
            datasets=[dataset_to_proto(d) for d in found], next_page_token=token
        )

    async def ImportDatasetRows(
        self, request: pb.ImportDatasetRowsRequest, context: object
    ) -> pb.ImportDatasetRowsResponse:
        file_format = _FORMATS.get(request.format)
        if file_format is None:
            raise InvalidArgument.field("format", "CSV, XLSX or GEOPACKAGE")
        report = await self.desk.import_rows(
            require_principal(),
            request.dataset,
            request.content,
            file_format,
            snapshot=request.snapshot,
        )
        return report_to_proto(report)

    async def CreateSubscription(
        self, request: pb.CreateSubscriptionRequest, context: object
    ) -> pb.Subscription:
        created = await self.desk.subscribe(
            require_principal(),
            tenancy.parse_parent(request.parent),
            request.subscription.dataset,
        )
        return subscription_to_proto(created)

    async def ListSubscriptions(
        self, request: pb.ListSubscriptionsRequest, context: object
    ) -> pb.ListSubscriptionsResponse:
        found, token = await self.desk.list_subscriptions(
            require_principal(),
            tenancy.parse_parent(request.parent),
            request.page_size,
            request.page_token,
        )
        return pb.ListSubscriptionsResponse(
            subscriptions=[subscription_to_proto(s) for s in found], next_page_token=token
        )

    async def DeleteSubscription(
        self, request: pb.DeleteSubscriptionRequest, context: object
    ) -> empty_pb2.Empty:
        tenant, sub_id = parse_subscription_name(request.name)
        await self.desk.unsubscribe(require_principal(), tenant, sub_id)
        return empty_pb2.Empty()

    async def SyncDatasetRows(
        self, request: pb.SyncDatasetRowsRequest, context: object
    ) -> pb.SyncDatasetRowsResponse:
        tenant, sub_id = parse_subscription_name(request.subscription, "subscription")
        page = await self.desk.sync(
            require_principal(),
            tenant,
            sub_id,
            request.cursor,
            request.page_size,
            request.purpose,
        )
        return pb.SyncDatasetRowsResponse(
            rows=[row_to_proto(r) for r in page.rows],
            next_cursor=str(page.next_seq),
            more=page.more,
        )


__all__ = ["DatasetsServicer", "dataset_from_proto"]
