"""Typed answers of the gateway's main resources.

Each model mirrors a schema of the gateway's OpenAPI document (named in `SCHEMA`), with
the fields a village app reads; fields the gateway adds later are kept (`extra="allow"`),
so an older SDK keeps working against a newer gateway. `tests/sdk/test_models.py`
fails when a field here is not in its schema, or a field the schema requires is missing.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class GeoPoint(Model):
    longitude: float
    latitude: float
    crs: str = "WGS84"


class TimelineEntry(Model):
    actor: str
    time: str
    from_state: str | None = None
    to_state: str
    note: str = ""


class Comment(Model):
    author: str
    text: str
    create_time: str


class Evaluation(Model):
    score: int
    text: str = ""
    time: str


class Event(Model):
    """A report, patrol finding or sensor alarm, located and in its lifecycle."""

    id: str
    name: str
    category: str
    description: str
    location: GeoPoint
    source: str
    state: str
    village: str
    grid_cell: str
    grid_worker: str
    create_time: str
    update_time: str
    etag: str
    severity: int = 0
    address: str = ""
    reporter_contact: str = ""
    duplicate_of: str | None = None
    media_uris: list[str] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    comments: list[Comment] = Field(default_factory=list)
    evaluation: Evaluation | None = None

    @property
    def tenant(self) -> str:
        """The tenant id the event answers under (`tenants/{tenant}/events/{id}`)."""
        return self.name.split("/")[1]


class EventChange(Model):
    """One item of the events stream: the offset to resume after, the fact, the event."""

    offset: int
    type: str
    event: Event


class RoutingDecision(Model):
    routing_rule: str
    explanation: str
    handler_role: str
    team: str


class Task(Model):
    """Command's work for a handler: an event's (one task per event), or one an emergency
    plan's level opened (`emergency_plan` set, no event); who handles it and its SLA clock."""

    id: str
    name: str
    event: str
    handler: str
    handler_role: str
    team: str
    state: str
    category: str
    severity: int
    grid_cell: str
    village: str
    routing: RoutingDecision
    sla_status: str
    escalation_level: int
    escalated_to: str
    supervisor: str
    etag: str
    location: GeoPoint | None = None
    create_time: str | None = None
    due_time: str | None = None
    response_due_time: str | None = None
    resolve_time: str | None = None
    resolution_note: str = ""
    emergency_plan: str = ""
    emergency_item: str = ""
    description: str = ""


class FieldSpec(Model):
    name: str
    type: str
    required: bool = False
    description: str = ""


class Layer(Model):
    """A map layer owned by a tenant node."""

    name: str
    tenant: str
    layer_id: str
    display_name: str
    kind: str
    geometry_type: str
    fields: list[FieldSpec] = Field(default_factory=list)
    sensitivity: str
    shared: bool
    feature_count: int
    extent: list[float] | None = None


class ImportResult(Model):
    layer: Layer
    imported_count: int
    repaired_count: int


class PointLocation(Model):
    """Where one point falls: its village, grid cell and grid worker (`found` false: nowhere)."""

    found: bool
    village: str | None = None
    grid_cell: str | None = None
    grid_worker: str | None = None
    grid_worker_name: str | None = None


class PropertyValue(Model):
    property: str
    value: float = 0.0
    unit: str = ""
    observe_time: str | None = None


class TwinEntity(Model):
    """A digital twin entity with the latest value of each property."""

    name: str
    entity_type: str = ""
    display_name: str = ""
    location: GeoPoint | None = None
    building: str = ""
    properties: list[PropertyValue] = Field(default_factory=list)
    update_time: str | None = None

    @property
    def id(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def value(self, prop: str) -> float | None:
        """The latest value of `prop`, or None when none was observed."""
        return next((p.value for p in self.properties if p.property == prop), None)


class IngestResult(Model):
    accepted_count: int
    rejected_count: int
    stale_count: int = 0
    rejections: list[dict[str, Any]] = Field(default_factory=list)


class PointsAccount(Model):
    id: str
    name: str
    holder_kind: str
    holder: str
    display_name: str = ""
    balance: int
    create_time: str


class LedgerEntry(Model):
    id: str
    name: str
    kind: str
    amount: int
    balance_after: int
    idempotency_key: str
    memo: str = ""
    create_time: str


class FormField(Model):
    key: str
    label: str
    type: str
    required: bool
    options: list[str] = Field(default_factory=list)


class Form(Model):
    id: str
    name: str
    display_name: str
    fields: list[FormField]
    create_time: str


class FormRecord(Model):
    id: str
    name: str
    tenant: str
    values: dict[str, Any]
    grid_cell: str = ""
    author: str = ""
    create_time: str


class Principal(Model):
    """Who the credentials are: `GET /v1/me`."""

    subject: str
    kind: str
    tenant: str
    roles: list[str]
    scopes: list[str]
    app: str = ""

    @property
    def tenant_id(self) -> str:
        return self.tenant.replace("/", "-")


class Page(BaseModel, Generic[T]):
    """One page of a list: its items and the token of the next page ("" on the last)."""

    items: list[T]
    next_page_token: str = ""


# Model -> the schema of the gateway's OpenAPI document it mirrors.
SCHEMA: dict[type[Model], str] = {
    GeoPoint: "GeoPointOut",
    TimelineEntry: "TimelineEntryOut",
    Comment: "CommentOut",
    Evaluation: "EvaluationOut",
    Event: "EventOut",
    RoutingDecision: "RoutingDecisionOut",
    Task: "TaskOut",
    FieldSpec: "FieldSpecIn",
    Layer: "LayerOut",
    ImportResult: "ImportOut",
    PointLocation: "PointLocationOut",
    PointsAccount: "PointsAccountOut",
    LedgerEntry: "LedgerEntryOut",
    FormField: "FormFieldOut",
    Form: "FormOut",
    FormRecord: "FormRecordOut",
    Principal: "PrincipalOut",
}
