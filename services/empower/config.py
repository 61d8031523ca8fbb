"""Settings of the empower service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.kit.components import component
from services.kit.config import ServiceSettings

_ROW = component("empower")


class EmpowerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_EMPOWER_", extra="ignore", frozen=True)

    grpc_port: int = Field(_ROW.grpc_port, ge=0, le=65535)
    metrics_port: int = Field(_ROW.metrics_port, ge=0, le=65535)
    backend: Literal["sqlite", "postgres"] = Field(
        "sqlite", description="one SQLite file (one replica) or PostgreSQL (several)"
    )
    database: Path = Field(Path("var/empower.sqlite3"), description="SQLite file")
    postgres_dsn: str = Field(
        "", description="libpq DSN of the empower database; required when backend is postgres"
    )
    seal_keys: SecretStr = Field(
        ...,
        description="AES-256 keys for personal fields at rest: 'kid:base64[,kid:base64...]', "
        "the first one encrypts",
    )
    index_key: SecretStr = Field(
        ..., description="base64 HMAC key of the blind index for exact lookups"
    )
    access_token_minutes: int = Field(15, ge=1, le=60)
    signing_key_rotation_hours: float = Field(24.0, gt=0)
    sign_in_first_delay_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="the wait after a name's free failed sign-ins; it doubles with each "
        "further failure",
    )
    bus_url: str = Field(
        "",
        description="redis://host:port/db for Redis Streams, or a file path for the local "
        "log; empty means bus.sqlite3 next to the database",
    )
    points_fact_streams: str = Field(
        "command",
        description="comma-separated bus streams whose facts points rules pay for",
    )
    plan_fact_streams: str = Field(
        "command",
        description="comma-separated bus streams whose emergency.level_changed facts are "
        "sent as the village's notices",
    )
    report_schedule_seconds: float = Field(
        60.0, gt=0, description="how often scheduled reports are checked for being due"
    )
    notice_dispatch_seconds: float = Field(
        1.0, gt=0, description="how often due notice deliveries are attempted"
    )
    sms_gateway_url: str = Field("", description="the SMS gateway's send URL; empty: no SMS")
    sms_gateway_key: SecretStr = Field(SecretStr(""), description="bearer key of the SMS gateway")
    wechat_gateway_url: str = Field(
        "", description="the WeChat template-message gateway's URL; empty: no WeChat"
    )
    wechat_gateway_key: SecretStr = Field(SecretStr(""), description="its bearer key")
    consumer_name: str = Field("empower-1", description="this replica's name in consumer groups")
    # Peers: the map's buildings are the datasets' address list; the catalog describes
    # every component by reflection. Empty: that part says the peer is not configured.
    map_address: str = Field("", description="host:port of the map service")
    events_address: str = Field("", description="host:port of the events service")
    command_address: str = Field("", description="host:port of the command service")
    twin_address: str = Field("", description="host:port of the twin service")
    gateway_url: str = Field(
        "",
        description="the gateway's base URL: the catalog reads its REST routes (/openapi.json) "
        "and the calls per village (/metrics) there",
    )
    gateway_metrics_url: str = Field(
        "", description="the gateway's /metrics when it serves them on their own port"
    )
    scenarios_dir: Path = Field(
        Path("scenarios"), description="folder of scenario template manifests (may not exist)"
    )
    sign_in_parallel_checks: int = Field(
        2, ge=1, le=64, description="password checks that run at once (about the CPU count)"
    )
    sign_in_queue: int = Field(
        8, ge=0, le=1000, description="password checks that may wait; beyond, 429 at once"
    )
    sign_in_checks_per_source: int = Field(
        2, ge=1, le=100, description="password checks one client address may have in the queue"
    )
    sign_in_max_wait_seconds: float = Field(
        2.0,
        gt=0,
        le=30,
        description="longest wait for a check to start before 503 (keep it well inside the "
        "gateway's deadline)",
    )
