"""Shapes of the datasets and catalog routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.contract import limited
from grassroots.empower.v1 import catalog_service_pb2 as catalog_pb
from grassroots.empower.v1 import datasets_service_pb2 as pb

FieldType = Literal[
    "string",
    "integer",
    "number",
    "date",
    "boolean",
    "id_number",
    "mobile",
    "person_name",
    "address",
]
Level = Literal["public", "internal", "sensitive", "core"]


class DatasetFieldIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = limited(pb.DatasetField, "name", examples=["id_number"])
    type: FieldType
    required: bool = False
    personal: bool = False  # masked like personal data whatever its type
    description: str = limited(pb.DatasetField, "description", "")


class DatasetCreate(BaseModel):
    """A register to publish: its columns, key, classification and area of work."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dataset_id: str = limited(pb.CreateDatasetRequest, "dataset_id", examples=["residents"])
    display_name: str = limited(pb.Dataset, "display_name", examples=["Residents register"])
    description: str = limited(pb.Dataset, "description", "")
    classification: Level
    key_field: str = limited(pb.Dataset, "key_field", examples=["id_number"])
    area: str = limited(pb.Dataset, "area", "", examples=["elderly care"])
    fields: list[DatasetFieldIn] = limited(pb.Dataset, "fields")


class DatasetFieldOut(BaseModel):
    name: str
    type: FieldType
    required: bool
    personal: bool
    description: str


class DatasetOut(BaseModel):
    name: str
    display_name: str
    description: str
    classification: Level
    key_field: str
    area: str
    fields: list[DatasetFieldOut]
    row_count: int
    latest_cursor: str
    create_time: str
    update_time: str


class DatasetList(BaseModel):
    datasets: list[DatasetOut]
    next_page_token: str


class RejectedRowOut(BaseModel):
    row_number: int
    field: str
    reason: str


class ImportReportOut(BaseModel):
    read_count: int
    inserted_count: int
    updated_count: int
    unchanged_count: int
    deleted_count: int
    rejected_count: int
    rejected_rows: list[RejectedRowOut]
    ignored_columns: list[str]
    latest_cursor: str


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    dataset: str = limited(
        pb.Subscription, "dataset", examples=["tenants/sh-jiading/datasets/residents"]
    )


class SubscriptionOut(BaseModel):
    name: str
    dataset: str
    subscriber: str
    create_time: str


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionOut]
    next_page_token: str


class DatasetRowOut(BaseModel):
    row_id: str
    key: str
    tenant: str
    building: str
    values: dict[str, str]
    deleted: bool
    masked: bool
    cursor: str


class SyncPage(BaseModel):
    rows: list[DatasetRowOut]
    next_cursor: str
    more: bool


class InstallationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    catalog_item: str = limited(
        catalog_pb.Installation, "catalog_item", examples=["catalogItems/scenario-elderly-care"]
    )


class InstalledResourceOut(BaseModel):
    name: str
    kind: str
    key: str
    owned: bool = Field(description="made by this install; false: it was there before")


class InstallationOut(BaseModel):
    name: str
    catalog_item: str
    installer: str
    create_time: str
    version: str = Field("", description="the scenario's manifest version installed")
    state: Literal["complete", "incomplete"] = Field(
        "complete", description="incomplete: an apply stopped half-way; the next one finishes it"
    )
    resources: list[InstalledResourceOut] = Field(
        default_factory=list, description="what the scenario put in place or uses"
    )


class InstallationList(BaseModel):
    installations: list[InstallationOut]
    next_page_token: str


class GrpcServiceOut(BaseModel):
    name: str
    methods: list[str]


class CatalogItemOut(BaseModel):
    name: str
    kind: Literal["component", "scenario", "dataset"]
    display_name: str
    description: str
    version: str
    area: str
    grpc_services: list[GrpcServiceOut]
    rest_routes: list[str]
    docs_uri: str
    health: str
    resource: str
    components: list[str]
    classification: str


class CatalogItemList(BaseModel):
    catalog_items: list[CatalogItemOut]
    next_page_token: str


class NodeAdoptionOut(BaseModel):
    tenant: str
    datasets: list[str]
    scenarios: list[str]
    calls: dict[str, int]


class AdoptionOut(BaseModel):
    name: str
    nodes: list[NodeAdoptionOut]
    calls_available: bool
