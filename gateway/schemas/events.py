"""JSON shapes of the events API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import GeoPointIn, GeoPointOut

SourceName = Literal["resident", "grid_patrol", "twin_rule", "enterprise", "open311"]
StateName = Literal[
    "reported",
    "accepted",
    "dispatched",
    "in_progress",
    "resolved",
    "closed",
    "rejected",
    "duplicate",
]


class EventCreate(BaseModel):
    """A report: what, where, and a key that makes retrying safe."""

    model_config = ConfigDict(extra="forbid", strict=True)

    category: str = Field(..., min_length=1, max_length=64, examples=["environment.garbage"])
    description: str = Field(..., min_length=1, max_length=4000)
    location: GeoPointIn
    request_id: str = Field(
        ...,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="client-chosen key; a retry with the same key returns the same event",
    )
    source: SourceName = "resident"


class EventOut(BaseModel):
    id: str
    name: str
    category: str
    description: str
    location: GeoPointOut
    source: SourceName
    state: StateName
    village: str
    grid_cell: str
    grid_worker: str
    create_time: datetime
    update_time: datetime
    etag: str


class EventList(BaseModel):
    events: list[EventOut]
    next_page_token: str = ""
