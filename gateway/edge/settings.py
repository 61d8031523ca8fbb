"""Settings of the gRPC edge process (GRASSROOTS_EDGE_*).

Everything about admitting callers - component addresses, rate limits, the Redis
that shares buckets, key caching - is the gateway's (GRASSROOTS_GATEWAY_*), read by
both, so REST and gRPC cannot drift apart.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 50050


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_EDGE_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="interface to bind; 0.0.0.0 in containers")
    grpc_port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    metrics_port: int = Field(0, ge=0, le=65535, description="0 disables /metrics")
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    grace_seconds: float = Field(10.0, gt=0, description="time in-flight calls get on SIGTERM")
