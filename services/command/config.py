"""Settings of the command service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.kit.config import ServiceSettings


class CommandSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_COMMAND_", extra="ignore", frozen=True)

    grpc_port: int = Field(50053, ge=0, le=65535)
    metrics_port: int = Field(9103, ge=0, le=65535)
