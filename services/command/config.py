"""Settings of the command service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.kit.components import component
from services.kit.config import ServiceSettings

_ROW = component("command")


class CommandSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_COMMAND_", extra="ignore", frozen=True)

    grpc_port: int = Field(_ROW.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(_ROW.metrics_port, ge=0, le=65535)
