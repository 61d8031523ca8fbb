"""The datasets' vocabulary: schema, classification, rows, subscriptions, sync pages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from services.kit import tenancy
from services.kit.errors import InvalidArgument


class Classification(StrEnum):
    """Sensitivity levels; `classification.RULES` says what each one allows."""

    PUBLIC = "public"
    INTERNAL = "internal"
    SENSITIVE = "sensitive"
    CORE = "core"


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    DATE = "date"
    BOOLEAN = "boolean"
    ID_NUMBER = "id_number"
    MOBILE = "mobile"
    PERSON_NAME = "person_name"
    ADDRESS = "address"


# Types that are personal data whatever the field says.
PERSONAL_TYPES = frozenset({FieldType.ID_NUMBER, FieldType.MOBILE, FieldType.PERSON_NAME})


@dataclass(frozen=True)
class DatasetField:
    name: str
    type: FieldType
    required: bool = False
    personal: bool = False
    description: str = ""

    @property
    def is_personal(self) -> bool:
        return self.personal or self.type in PERSONAL_TYPES


@dataclass(frozen=True)
class Dataset:
    tenant: str  # the publishing node's path
    dataset_id: str
    display_name: str
    description: str
    classification: Classification
    fields: tuple[DatasetField, ...]
    key_field: str
    area: str = ""
    row_count: int = 0
    last_seq: int = 0
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def resource_name(self) -> str:
        return dataset_name(self.tenant, self.dataset_id)

    @property
    def address_field(self) -> str:
        """The column that places a row in a village (the schema has exactly one)."""
        return next(f.name for f in self.fields if f.type is FieldType.ADDRESS)

    @property
    def personal_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.is_personal)

    @property
    def plain_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if not f.is_personal)

    def field(self, name: str) -> DatasetField:
        return next(f for f in self.fields if f.name == name)


@dataclass(frozen=True)
class StoredRow:
    """A row as stored: personal values sealed, the key as a blind index when personal."""

    row_id: str
    tenant: str  # the village the row belongs to
    key_index: str
    building: str
    plain: str  # JSON of the non-personal values
    sealed: str  # the personal values' JSON, sealed for (dataset, row_id); "" if none
    digest: int  # of the cleaned values, to tell changed rows from unchanged ones
    seq: int
    deleted: bool = False


@dataclass(frozen=True)
class RejectedRow:
    row_number: int  # in the file, the header being row 1
    field: str
    reason: str


@dataclass
class ImportReport:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    ignored_columns: tuple[str, ...] = ()
    last_seq: int = 0


@dataclass(frozen=True)
class Subscription:
    tenant: str
    subscription_id: str
    dataset: str  # the dataset's resource name
    subscriber: str
    create_time: datetime

    @property
    def resource_name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/subscriptions/{self.subscription_id}"


@dataclass(frozen=True)
class SliceRow:
    """One change of a village's slice as the reader may see it."""

    row_id: str
    key: str
    tenant: str
    building: str
    values: dict[str, str]
    deleted: bool
    masked: bool
    seq: int


@dataclass(frozen=True)
class SlicePage:
    rows: list[SliceRow]
    next_seq: int
    more: bool


_DATASET_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}\Z")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
_NAME = re.compile(r"^tenants/([a-z0-9-]+)/datasets/([a-z][a-z0-9-]{0,62})\Z")
_SUBSCRIPTION = re.compile(r"^tenants/([a-z0-9-]+)/subscriptions/([A-Za-z0-9_-]{1,64})\Z")


def dataset_name(tenant: str, dataset_id: str) -> str:
    return f"{tenancy.tenant_name(tenant)}/datasets/{dataset_id}"


def check_dataset_id(value: str, field_name: str = "dataset_id") -> str:
    if not _DATASET_ID.match(value):
        raise InvalidArgument.field(
            field_name, "1 to 63 lower-case letters, digits and hyphens, starting with a letter"
        )
    return value


def check_field_name(value: str, field_name: str) -> str:
    if not _FIELD_NAME.match(value):
        raise InvalidArgument.field(
            field_name, "1 to 63 lower-case letters, digits and underscores, starting with a letter"
        )
    return value


def parse_dataset_name(name: str, field_name: str = "dataset") -> tuple[str, str]:
    """(publishing tenant path, dataset id) of `tenants/{tenant}/datasets/{dataset}`."""
    match = _NAME.match(name)
    if not match:
        raise InvalidArgument.field(field_name, "must be tenants/{tenant}/datasets/{dataset}")
    return tenancy.id_to_path(match.group(1)), match.group(2)


def parse_subscription_name(name: str, field_name: str = "name") -> tuple[str, str]:
    match = _SUBSCRIPTION.match(name)
    if not match:
        raise InvalidArgument.field(
            field_name, "must be tenants/{tenant}/subscriptions/{subscription}"
        )
    return tenancy.id_to_path(match.group(1)), match.group(2)
