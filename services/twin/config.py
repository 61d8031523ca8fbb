"""Settings of the twin service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.kit.config import ServiceSettings


class TwinSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_TWIN_", extra="ignore", frozen=True)

    grpc_port: int = Field(50054, ge=0, le=65535)
    metrics_port: int = Field(9104, ge=0, le=65535)
