"""Settings of the command service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.kit.components import component
from services.kit.config import ServiceSettings

_ROW = component("command")


class CommandSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_COMMAND_", extra="ignore", frozen=True)

    grpc_port: int = Field(_ROW.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(_ROW.metrics_port, ge=0, le=65535)
    events_address: str = Field(
        ..., min_length=1, description="host:port of the events service (moves events along)"
    )
    empower_address: str = Field(
        "",
        description="host:port of the empower service, whose identity says that the user a "
        "handler profile or a transfer names exists at the tenant or above; empty checks no "
        "user (only for running the command service alone)",
    )
    map_address: str = Field(
        "",
        description="host:port of the map service, for distances by road over each village's "
        "road layer; empty measures every distance in a straight line",
    )
    road_layer: str = Field(
        "roads",
        pattern="^[a-z0-9]+(-[a-z0-9]+)*$",
        max_length=63,
        description="id of the layer holding a village's roads (line features)",
    )
    layer_recheck_seconds: float = Field(
        60.0, gt=0, description="how often a kept road layer is checked for changes"
    )
    backend: Literal["sqlite", "postgres"] = Field(
        "sqlite", description="one SQLite file (one replica) or PostgreSQL (several)"
    )
    database: Path = Field(Path("var/command.sqlite3"), description="SQLite file")
    postgres_dsn: str = Field(
        "", description="libpq DSN of the command database; required when backend is postgres"
    )
    sqlite_synchronous: str = Field("FULL", pattern="^(FULL|NORMAL)$")
    bus_url: str = Field(
        "",
        description="redis://host:port/db for Redis Streams, or a file path for the local log; "
        "empty means the events service's local log next to the command database",
    )
    events_stream: str = Field("events", description="stream the events service publishes on")
    consumer_group: str = Field("command-dispatch", min_length=1)
    consumer_name: str = Field("", description="member name in the group; empty: host and pid")
    redelivery_idle_ms: int = Field(
        5_000, gt=0, description="a delivery pending this long is taken over and retried"
    )
    timer_batch: int = Field(1000, gt=0, description="timers claimed per round")
    timer_poll_seconds: float = Field(0.5, gt=0)
    timer_lease_seconds: float = Field(30.0, gt=0)
    outbox_batch: int = Field(500, gt=0)
    intake_members: int = Field(
        2, ge=1, le=64, description="consumers of event.reported this process runs at once"
    )
    intake_batch: int = Field(
        50,
        ge=1,
        le=500,
        description="reports one consumer reads and dispatches in one store transaction",
    )
    roster_seconds: float = Field(
        2.0, ge=0, description="how long dispatch reuses a routing target's candidates"
    )
    service_order_lead_hours: float = Field(
        24.0, ge=0, description="service orders are made this long before their visit"
    )
    clock_offset_file: Path | None = Field(
        None,
        description="drills and end-to-end tests only: a file holding seconds by which SLA "
        "clocks, timers and plans run ahead of the wall clock",
    )
    plans_poll_seconds: float = Field(
        1.0, gt=0, description="how often the plans outbox looks for unpublished facts"
    )
