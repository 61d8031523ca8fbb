"""Settings of the twin service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.kit.components import component
from services.kit.config import ServiceSettings
from services.kit.config import redis_url as check_redis_url

_ROW = component("twin")


class TwinSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_TWIN_", extra="ignore", frozen=True)

    grpc_port: int = Field(_ROW.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(_ROW.metrics_port, ge=0, le=65535)
    backend: Literal["sqlite", "postgres"] = Field(
        "sqlite", description="where entities, rules and history live"
    )
    database: Path = Field(Path("var/twin.sqlite3"), description="SQLite file")
    postgres_dsn: str = Field("", description="libpq DSN; required when backend is postgres")
    sqlite_synchronous: str = Field("NORMAL", pattern="^(FULL|NORMAL)$")
    redis_url: str = Field(
        "", description="redis://host:port/db for the latest state; empty keeps it in memory"
    )
    events_address: str = Field("", description="host:port of the events service")
    map_address: str = Field(
        "", description="host:port of the map service; empty refuses geofence rules"
    )
    layer_recheck_seconds: float = Field(
        60.0, gt=0, description="how often a kept geofence layer is checked for changes"
    )
    bus_url: str = Field(
        "", description="redis://... or a file path; empty means a local log next to the database"
    )
    compact_every_seconds: float = Field(
        1.0, gt=0, description="how often logged batches are regrouped into per-series chunks"
    )
    silence_check_seconds: float = Field(60.0, gt=0, description="how often inactivity is checked")
    clock_offset_file: Path | None = Field(
        None,
        description="drills and end-to-end tests only: a file holding seconds by which "
        "the twin's time (inactivity checks, the bound on readings ahead) runs ahead of "
        "the wall clock",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return check_redis_url(value)
