"""Settings of the map service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.kit.components import component
from services.kit.config import ServiceSettings

_ROW = component("map")


class MapSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_MAP_", extra="ignore", frozen=True)

    grpc_port: int = Field(_ROW.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(_ROW.metrics_port, ge=0, le=65535)
    backend: Literal["geopackage", "postgis"] = "geopackage"
    store_file: Path = Field(Path("var/map.gpkg"), description="GeoPackage of the embedded store")
    postgres_dsn: str = Field("", description="PostGIS connection string when backend=postgis")
    seed_file: Path | None = Field(
        None, description="demo GeoPackage whose layers are installed at start if missing"
    )
    max_locate_batch: int = Field(100_000, gt=0)
    bus_url: str = Field(
        "",
        description="redis://host:port/db: replicas tell each other of layer changes there; "
        "empty for a single replica (no notices)",
    )
