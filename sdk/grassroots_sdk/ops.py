"""The gateway's routes a village app uses most, each as a function returning a `Call`.

Paths follow ADR 9: a resource's name under `/v1/`. Every function takes `tenant` as a
tenant id or path; left out, the client's own tenant (from its key or sign-in) is used.
Anything not here is reachable with `client.request(...)`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from grassroots_sdk import models as m
from grassroots_sdk._call import (
    Call,
    as_json,
    body,
    collection_path,
    json_as,
    nothing,
    page_of,
    params,
    resource_path,
    tenant_id,
)

Tenant = str | None


def me() -> Call[m.Principal]:
    """Who the credentials are: subject, tenant, roles and scopes."""
    return Call("GET", "/v1/me", json_as(m.Principal))


# --- events -------------------------------------------------------------------------


def create_event(
    category: str,
    description: str,
    longitude: float,
    latitude: float,
    *,
    tenant: Tenant = None,
    crs: str | None = None,
    address: str | None = None,
    severity: int | None = None,
    source: str | None = None,
    media_uris: list[str] | None = None,
    reporter_contact: str | None = None,
    request_id: str | None = None,
) -> Call[m.Event]:
    """Report an event. `request_id` makes a retry return the same event; when left out
    the client makes one and keeps it across its own retries."""
    location = body(longitude=longitude, latitude=latitude, crs=crs)
    return Call(
        "POST",
        collection_path("events", tenant),
        json_as(m.Event),
        json=body(
            category=category,
            description=description,
            location=location,
            address=address,
            severity=severity,
            source=source,
            media_uris=media_uris,
            reporter_contact=reporter_contact,
            request_id=request_id,
        ),
        create=True,
        idempotency_key=request_id,
    )


def get_event(event: str, *, tenant: Tenant = None) -> Call[m.Event]:
    return Call("GET", resource_path(event, "events", tenant), json_as(m.Event))


def list_events(
    *,
    tenant: Tenant = None,
    state: str | None = None,
    category: str | None = None,
    grid_cell: str | None = None,
    village: str | None = None,
    q: str | None = None,
    order: str | None = None,
    page_size: int | None = None,
    page_token: str | None = None,
) -> Call[m.Page[m.Event]]:
    return Call(
        "GET",
        collection_path("events", tenant),
        page_of(m.Event, "events"),
        params=params(
            state=state,
            category=category,
            grid_cell=grid_cell,
            village=village,
            q=q,
            order=order,
            page_size=page_size,
            page_token=page_token or None,
        ),
    )


def transition_event(
    event: str,
    state: str,
    *,
    tenant: Tenant = None,
    note: str | None = None,
    etag: str | None = None,
    duplicate_of: str | None = None,
) -> Call[m.Event]:
    """Move an event along its lifecycle; pass the etag you read to refuse lost updates."""
    return Call(
        "POST",
        resource_path(event, "events", tenant) + ":transition",
        json_as(m.Event),
        json=body(state=state, note=note, etag=etag, duplicate_of=duplicate_of),
    )


def comment_event(event: str, text: str, *, tenant: Tenant = None) -> Call[Any]:
    return Call(
        "POST",
        resource_path(event, "events", tenant) + "/comments",
        as_json,
        json={"text": text},
        create=True,
    )


def evaluate_event(
    event: str, score: int, *, text: str | None = None, tenant: Tenant = None
) -> Call[m.Event]:
    return Call(
        "POST",
        resource_path(event, "events", tenant) + ":evaluate",
        json_as(m.Event),
        json=body(score=score, text=text),
    )


def event_statistics(*, tenant: Tenant = None) -> Call[Any]:
    return Call("GET", collection_path("events", tenant) + ":statistics", as_json)


def events_stream_path(tenant: Tenant = None) -> str:
    return collection_path("events", tenant) + ":stream"


# --- command: tasks -----------------------------------------------------------------


def list_tasks(
    *,
    tenant: Tenant = None,
    event: str | None = None,
    state: str | None = None,
    handler: str | None = None,
    sla_status: str | None = None,
    emergency_plan: str | None = None,
    order_by: str | None = None,
    page_size: int | None = None,
    page_token: str | None = None,
) -> Call[m.Page[m.Task]]:
    """Tasks of your subtree, newest first; `event` (a resource name) narrows to the
    event's one task, `emergency_plan` (a plan's name) to the tasks its levels opened;
    `order_by="due_time"` puts the next one due first."""
    return Call(
        "GET",
        collection_path("tasks", tenant),
        page_of(m.Task, "tasks"),
        params=params(
            event=event,
            state=state,
            handler=handler,
            sla_status=sla_status,
            emergency_plan=emergency_plan,
            order_by=order_by,
            page_size=page_size,
            page_token=page_token or None,
        ),
    )


def get_task(task: str, *, tenant: Tenant = None) -> Call[m.Task]:
    return Call("GET", resource_path(task, "tasks", tenant), json_as(m.Task))


def _task_move(task: str, verb: str, tenant: Tenant, payload: dict[str, Any]) -> Call[m.Task]:
    return Call(
        "POST", resource_path(task, "tasks", tenant) + f":{verb}", json_as(m.Task), json=payload
    )


def accept_task(task: str, *, tenant: Tenant = None) -> Call[m.Task]:
    return _task_move(task, "accept", tenant, {})


def start_task(task: str, *, tenant: Tenant = None) -> Call[m.Task]:
    return _task_move(task, "start", tenant, {})


def resolve_task(
    task: str, note: str, *, media_uris: list[str] | None = None, tenant: Tenant = None
) -> Call[m.Task]:
    return _task_move(task, "resolve", tenant, body(note=note, media_uris=media_uris))


def decline_task(task: str, *, reason: str | None = None, tenant: Tenant = None) -> Call[m.Task]:
    return _task_move(task, "decline", tenant, body(reason=reason))


# --- map ----------------------------------------------------------------------------


def list_layers(
    *, tenant: Tenant = None, page_size: int | None = None, page_token: str | None = None
) -> Call[m.Page[m.Layer]]:
    """Layers you can see: your node's own and the shared layers above it."""
    return Call(
        "GET",
        collection_path("layers", tenant),
        page_of(m.Layer, "layers"),
        params=params(page_size=page_size, page_token=page_token or None),
    )


def get_layer(layer: str, *, tenant: Tenant = None) -> Call[m.Layer]:
    return Call("GET", resource_path(layer, "layers", tenant), json_as(m.Layer))


def create_layer(
    layer_id: str,
    display_name: str,
    kind: str,
    geometry_type: str,
    *,
    fields: list[dict[str, Any]] | None = None,
    sensitivity: str | None = None,
    shared: bool | None = None,
    tenant: Tenant = None,
) -> Call[m.Layer]:
    return Call(
        "POST",
        collection_path("layers", tenant),
        json_as(m.Layer),
        json=body(
            layer_id=layer_id,
            display_name=display_name,
            kind=kind,
            geometry_type=geometry_type,
            fields=fields,
            sensitivity=sensitivity,
            shared=shared,
        ),
        create=True,
    )


def delete_layer(layer: str, *, tenant: Tenant = None) -> Call[None]:
    return Call("DELETE", resource_path(layer, "layers", tenant), nothing)


def import_features(
    layer: str,
    file: str | Path | bytes,
    *,
    format: str | None = None,
    source_crs: str | None = None,
    id_field: str | None = None,
    replace: bool = False,
    repair_invalid: bool = False,
    ignore_unknown_fields: bool = False,
    tenant: Tenant = None,
) -> Call[m.ImportResult]:
    """Import a file (GeoJSON, GeoPackage, zipped Shapefile, CSV) into a layer, all or
    nothing. `format` defaults to the file's suffix."""
    if isinstance(file, bytes):
        data, filename = file, f"upload.{format or 'geojson'}"
    else:
        path = Path(file)
        data, filename = path.read_bytes(), path.name
    chosen = format or _format_of(filename)
    form = params(
        format=chosen,
        source_crs=source_crs,
        id_field=id_field,
        replace=_flag(replace),
        repair_invalid=_flag(repair_invalid),
        ignore_unknown_fields=_flag(ignore_unknown_fields),
    )
    return Call(
        "POST",
        resource_path(layer, "layers", tenant) + "/features:import",
        json_as(m.ImportResult),
        data=form,
        files={"file": (filename, data)},
        timeout=180.0,
    )


def _flag(value: bool) -> str | None:
    return "true" if value else None


def _format_of(filename: str) -> str:
    suffix = filename.lower().rsplit(".", 1)[-1]
    return {"json": "geojson", "zip": "shapefile", "shp": "shapefile"}.get(suffix, suffix)


def locate(
    points: list[tuple[float, float]], *, crs: str | None = None, tenant: Tenant = None
) -> Call[list[m.PointLocation]]:
    """Village, grid cell and grid worker of each (longitude, latitude)."""

    def parse(response: Any) -> list[m.PointLocation]:
        found = response.json()["locations"]
        return [m.PointLocation.model_validate(item) for item in found]

    return Call(
        "POST",
        f"/v1/tenants/{tenant_id(tenant)}:locatePoints",
        parse,
        json=body(
            longitudes=[lon for lon, _ in points], latitudes=[lat for _, lat in points], crs=crs
        ),
    )


# --- twin ---------------------------------------------------------------------------


def list_entities(
    *,
    tenant: Tenant = None,
    entity_type: str | None = None,
    page_size: int | None = None,
    page_token: str | None = None,
) -> Call[m.Page[m.TwinEntity]]:
    return Call(
        "GET",
        collection_path("entities", tenant),
        page_of(m.TwinEntity, "entities"),
        params=params(entity_type=entity_type, page_size=page_size, page_token=page_token or None),
    )


def get_entity(entity: str, *, tenant: Tenant = None) -> Call[m.TwinEntity]:
    return Call("GET", resource_path(entity, "entities", tenant), json_as(m.TwinEntity))


def ingest_telemetry(
    readings: list[tuple[str, str, float]], *, tenant: Tenant = None
) -> Call[m.IngestResult]:
    """Readings as (entity id, property, value); each is accepted or refused on its own."""
    return Call(
        "POST",
        f"/v1/tenants/{tenant_id(tenant)}:ingestTelemetry",
        json_as(m.IngestResult),
        json={
            "entities": [entity for entity, _, _ in readings],
            "properties": [prop for _, prop, _ in readings],
            "values": [float(value) for _, _, value in readings],
        },
    )


# --- empower: points and forms -------------------------------------------------------


def list_points_accounts(
    *,
    tenant: Tenant = None,
    holder: str | None = None,
    page_size: int | None = None,
    page_token: str | None = None,
) -> Call[m.Page[m.PointsAccount]]:
    return Call(
        "GET",
        collection_path("pointsAccounts", tenant),
        page_of(m.PointsAccount, "points_accounts"),
        params=params(holder=holder, page_size=page_size, page_token=page_token or None),
    )


def get_points_account(account: str, *, tenant: Tenant = None) -> Call[m.PointsAccount]:
    return Call("GET", resource_path(account, "pointsAccounts", tenant), json_as(m.PointsAccount))


def create_points_account(
    holder_kind: str, holder: str, *, display_name: str | None = None, tenant: Tenant = None
) -> Call[m.PointsAccount]:
    return Call(
        "POST",
        collection_path("pointsAccounts", tenant),
        json_as(m.PointsAccount),
        json=body(holder_kind=holder_kind, holder=holder, display_name=display_name),
        create=True,
    )


def _posting(
    account: str, verb: str, amount: int, memo: str | None, request_id: str | None, tenant: Tenant
) -> Call[Any]:
    return Call(
        "POST",
        resource_path(account, "pointsAccounts", tenant) + f":{verb}",
        as_json,
        json=body(amount=amount, memo=memo, request_id=request_id or str(uuid.uuid4())),
    )


def credit_points(
    account: str,
    amount: int,
    *,
    memo: str | None = None,
    request_id: str | None = None,
    tenant: Tenant = None,
) -> Call[Any]:
    """Credit points by hand; one credit per `request_id` (made for you when left out)."""
    return _posting(account, "credit", amount, memo, request_id, tenant)


def redeem_points(
    account: str,
    amount: int,
    *,
    memo: str | None = None,
    request_id: str | None = None,
    tenant: Tenant = None,
) -> Call[Any]:
    return _posting(account, "redeem", amount, memo, request_id, tenant)


def list_ledger_entries(
    account: str,
    *,
    tenant: Tenant = None,
    page_size: int | None = None,
    page_token: str | None = None,
) -> Call[m.Page[m.LedgerEntry]]:
    return Call(
        "GET",
        resource_path(account, "pointsAccounts", tenant) + "/ledgerEntries",
        page_of(m.LedgerEntry, "ledger_entries"),
        params=params(page_size=page_size, page_token=page_token or None),
    )


def list_forms(*, tenant: Tenant = None) -> Call[list[m.Form]]:
    def parse(response: Any) -> list[m.Form]:
        return [m.Form.model_validate(item) for item in response.json()["forms"]]

    return Call("GET", collection_path("forms", tenant), parse)


def get_form(form: str, *, tenant: Tenant = None) -> Call[m.Form]:
    return Call("GET", resource_path(form, "forms", tenant), json_as(m.Form))


def create_form_record(
    form: str,
    values: dict[str, Any],
    *,
    grid_cell: str | None = None,
    request_id: str | None = None,
    tenant: Tenant = None,
) -> Call[m.FormRecord]:
    """Enter a record once: `request_id` (made for you when left out) makes retries safe."""
    key = request_id or str(uuid.uuid4())
    return Call(
        "POST",
        resource_path(form, "forms", tenant) + "/records",
        json_as(m.FormRecord),
        json=body(values=values, grid_cell=grid_cell, request_id=key),
        create=True,
        idempotency_key=key,
    )


def list_form_records(
    form: str,
    *,
    tenant: Tenant = None,
    page_size: int | None = None,
    page_token: str | None = None,
) -> Call[m.Page[m.FormRecord]]:
    return Call(
        "GET",
        resource_path(form, "forms", tenant) + "/records",
        page_of(m.FormRecord, "records"),
        params=params(page_size=page_size, page_token=page_token or None),
    )
