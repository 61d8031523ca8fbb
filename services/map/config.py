"""Settings of the map service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.kit.config import ServiceSettings


class MapSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_MAP_", extra="ignore", frozen=True)

    grpc_port: int = Field(50051, ge=0, le=65535)
    metrics_port: int = Field(9101, ge=0, le=65535)
    data_file: Path = Field(
        Path("var/demo-village.gpkg"), description="GeoPackage with the grid_cells layer"
    )
    max_locate_batch: int = Field(100_000, gt=0)
