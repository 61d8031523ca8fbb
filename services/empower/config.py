"""Settings of the empower service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.kit.config import ServiceSettings


class EmpowerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_EMPOWER_", extra="ignore", frozen=True)

    grpc_port: int = Field(50055, ge=0, le=65535)
    metrics_port: int = Field(9105, ge=0, le=65535)
