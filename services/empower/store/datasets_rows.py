"""How datasets, their rows and subscriptions map to rows: statements both stores run,
written once in the kit's dialect notation (services.kit.sqldialect)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from services.empower.domain.catalog import (
    Installation,
    InstallDetails,
    InstalledResource,
    InstallState,
)
from services.empower.domain.datasets.model import (
    Classification,
    Dataset,
    DatasetField,
    FieldType,
    StoredRow,
    Subscription,
)

DATASET_COLUMNS = (
    "tenant, dataset_id, name, display_name, description, classification, fields, key_field, "
    "area, row_count, last_seq, create_us, update_us"
)
ROW_COLUMNS = "tenant, key_index, building, plain, sealed, digest, seq, deleted"
SUBSCRIPTION_COLUMNS = "id, tenant, dataset, subscriber, create_us"
# `subtree` is the store's own rendering of the tenant-subtree condition.
INSERT_DATASET = f"INSERT INTO datasets ({DATASET_COLUMNS}) VALUES ({', '.join('?' * 13)})"
GET_DATASET = f"SELECT {DATASET_COLUMNS} FROM datasets WHERE tenant = ? AND dataset_id = ?"
MOVE_SEQ = (
    "UPDATE datasets SET last_seq = ?, row_count = ?, update_us = ? WHERE name = ? AND last_seq = ?"
)
LIVE_ROWS = "SELECT key_index, tenant, digest FROM dataset_rows WHERE dataset = ? AND deleted = 0"
# A dataset's first import (sequence 0: no row, live or tombstone, exists yet) inserts
# without looking for a conflict; later imports merge by key.
INSERT_ROW = (
    "INSERT INTO dataset_rows (dataset, tenant, key_index, building, plain, sealed, digest, seq, "
    "deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)"
)
ON_KEY_CONFLICT = (
    " ON CONFLICT (dataset, tenant, key_index) DO UPDATE SET building = excluded.building, "
    "plain = excluded.plain, sealed = excluded.sealed, digest = excluded.digest, "
    "seq = excluded.seq, deleted = 0"
)
UPSERT_ROW = INSERT_ROW + ON_KEY_CONFLICT
TOMBSTONE_ROW = (
    "UPDATE dataset_rows SET deleted = 1, plain = '', sealed = '', building = '', seq = ? "
    "WHERE dataset = ? AND tenant = ? AND key_index = ?"
)
INSTALLATION_COLUMNS = "id, tenant, catalog_item, installer, create_us, detail, update_us"
INSERT_INSTALLATION = (
    f"INSERT INTO catalog_installations ({INSTALLATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_SUBSCRIPTION = (
    f"INSERT INTO dataset_subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
)


def us(moment: datetime | None) -> int:
    return int((moment or datetime.now(UTC)).timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def dataset_values(dataset: Dataset) -> tuple[object, ...]:
    fields = [
        {
            "name": f.name,
            "type": f.type.value,
            "required": f.required,
            "personal": f.personal,
            "description": f.description,
        }
        for f in dataset.fields
    ]
    return (
        dataset.tenant,
        dataset.dataset_id,
        dataset.resource_name,
        dataset.display_name,
        dataset.description,
        dataset.classification.value,
        json.dumps(fields, ensure_ascii=False),
        dataset.key_field,
        dataset.area,
        dataset.row_count,
        dataset.last_seq,
        us(dataset.create_time),
        us(dataset.update_time),
    )


def row_to_dataset(row: Mapping[str, Any]) -> Dataset:
    fields = tuple(
        DatasetField(
            name=f["name"],
            type=FieldType(f["type"]),
            required=bool(f["required"]),
            personal=bool(f["personal"]),
            description=f.get("description", ""),
        )
        for f in json.loads(row["fields"])
    )
    return Dataset(
        tenant=row["tenant"],
        dataset_id=row["dataset_id"],
        display_name=row["display_name"],
        description=row["description"],
        classification=Classification(row["classification"]),
        fields=fields,
        key_field=row["key_field"],
        area=row["area"],
        row_count=int(row["row_count"]),
        last_seq=int(row["last_seq"]),
        create_time=from_us(int(row["create_us"])),
        update_time=from_us(int(row["update_us"])),
    )


def row_to_stored(row: Mapping[str, Any]) -> StoredRow:
    return StoredRow(
        row_id=row["key_index"],
        tenant=row["tenant"],
        key_index=row["key_index"],
        building=row["building"],
        plain=row["plain"],
        sealed=row["sealed"],
        digest=int(row["digest"]),
        seq=int(row["seq"]),
        deleted=bool(row["deleted"]),
    )


def subscription_values(subscription: Subscription) -> tuple[object, ...]:
    return (
        subscription.subscription_id,
        subscription.tenant,
        subscription.dataset,
        subscription.subscriber,
        us(subscription.create_time),
    )


def row_to_subscription(row: Mapping[str, Any]) -> Subscription:
    return Subscription(
        tenant=row["tenant"],
        subscription_id=row["id"],
        dataset=row["dataset"],
        subscriber=row["subscriber"],
        create_time=from_us(int(row["create_us"])),
    )


UPDATE_INSTALLATION = (
    "UPDATE catalog_installations SET detail = ?, update_us = ? WHERE tenant = ? AND id = ?"
)
# Records made before the composer kept details: the columns are added in place.
INSTALLATION_MIGRATIONS = (
    ("detail", "ALTER TABLE catalog_installations ADD COLUMN detail TEXT NOT NULL DEFAULT '{}'"),
    ("update_us", "ALTER TABLE catalog_installations ADD COLUMN update_us BIGINT"),
)


def details_json(details: InstallDetails) -> str:
    return json.dumps(
        {
            "version": details.version,
            "state": details.state.value,
            "settings": dict(details.settings),
            "resources": [[r.name, r.kind, r.key, r.digest, r.owned] for r in details.resources],
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def details_of(text: str) -> InstallDetails:
    data = json.loads(text or "{}")
    return InstallDetails(
        version=data.get("version", ""),
        state=InstallState(data.get("state", "")),
        settings=data.get("settings", {}),
        resources=tuple(
            InstalledResource(name, kind, key, digest, bool(owned))
            for name, kind, key, digest, owned in data.get("resources", ())
        ),
    )


def installation_values(installation: Installation) -> tuple[object, ...]:
    return (
        installation.installation_id,
        installation.tenant,
        installation.catalog_item,
        installation.installer,
        us(installation.create_time),
        details_json(installation.details),
        us(installation.update_time or installation.create_time),
    )


def update_values(installation: Installation) -> tuple[object, ...]:
    return (
        details_json(installation.details),
        us(installation.update_time or installation.create_time),
        installation.tenant,
        installation.installation_id,
    )


def row_to_installation(row: Mapping[str, Any]) -> Installation:
    updated = row["update_us"]
    return Installation(
        tenant=row["tenant"],
        installation_id=row["id"],
        catalog_item=row["catalog_item"],
        installer=row["installer"],
        create_time=from_us(int(row["create_us"])),
        details=details_of(row["detail"]),
        update_time=from_us(int(updated)) if updated is not None else None,
    )
