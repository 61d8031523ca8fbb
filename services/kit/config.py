"""Typed settings per service, read from the environment and validated at start-up.

Each service subclasses `ServiceSettings` with its own env prefix
(`GRASSROOTS_MAP_`, `GRASSROOTS_EVENTS_`, ...). A peer address without a default is
required: a service that lacks one refuses to start and says which variable to set.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every gRPC service is configured with."""

    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="interface to bind; 0.0.0.0 in containers")
    grpc_port: int = Field(..., ge=0, le=65535)
    metrics_port: int = Field(0, ge=0, le=65535, description="0 disables /metrics")
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    grace_seconds: float = Field(10.0, gt=0, description="time in-flight calls get on SIGTERM")
    call_timeout_seconds: float = Field(5.0, gt=0, description="deadline on outbound calls")
    data_dir: Path = Field(Path("var"), description="where embedded stores keep their files")
    lease_seconds: float = Field(
        15.0,
        ge=1,
        le=300,
        description="how long a replica holds a singleton job (outbox relays, sweeps, "
        "schedulers); another takes it over this long after the holder dies",
    )


S = TypeVar("S", bound=BaseSettings)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def redis_url(value: str) -> str:
    """A Redis URL setting: empty (not used) or one the Redis client can open; checked
    at start so a typo stops the process instead of failing its first request."""
    if value and not value.startswith(REDIS_SCHEMES):
        raise ValueError("must be empty or start with redis://, rediss:// or unix://")
    return value


def load_settings(cls: type[S]) -> S:
    """Build settings or exit with a readable list of what is missing or wrong."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"invalid configuration for {cls.__name__}:"]
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            lines.append(f"  {prefix}{field.upper()}: {error['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
