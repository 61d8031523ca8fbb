"""Settings of the twin service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.kit.components import component
from services.kit.config import ServiceSettings

_ROW = component("twin")


class TwinSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_TWIN_", extra="ignore", frozen=True)

    grpc_port: int = Field(_ROW.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(_ROW.metrics_port, ge=0, le=65535)
