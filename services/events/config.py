"""Settings of the events service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.kit.components import component
from services.kit.config import ServiceSettings

_ROW = component("events")


class EventsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_EVENTS_", extra="ignore", frozen=True)

    grpc_port: int = Field(_ROW.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(_ROW.metrics_port, ge=0, le=65535)
    map_address: str = Field(..., min_length=1, description="host:port of the map service")
    backend: Literal["sqlite", "postgres"] = Field(
        "sqlite",
        description="where events live: one SQLite file (one replica) or PostgreSQL (several)",
    )
    database: Path = Field(Path("var/events.sqlite3"), description="SQLite file")
    postgres_dsn: str = Field(
        "", description="libpq DSN of the events database; required when backend is postgres"
    )
    sqlite_synchronous: str = Field("FULL", pattern="^(FULL|NORMAL)$")
    bus_url: str = Field(
        "",
        description="redis://host:port/db for Redis Streams, or a file path for the local "
        "log; empty means a local log next to the database",
    )
    outbox_batch: int = Field(500, gt=0)
    auto_close_after_hours: float = Field(
        72.0, ge=0, description="close resolved events not evaluated within this; 0: never"
    )
    auto_close_check_seconds: float = Field(60.0, gt=0)
    seal_keys: SecretStr = Field(
        ...,
        description="AES-256 keys for reporter contacts at rest: 'kid:base64[,kid:base64...]', "
        "the first one encrypts",
    )
