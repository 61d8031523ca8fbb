"""Settings of the gateway, validated at start-up (GRASSROOTS_GATEWAY_*)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.security.client_address import parse_networks
from services.kit.components import NAMES
from services.kit.config import redis_url as check_redis_url
from services.kit.crs import normalise_crs
from services.kit.errors import InvalidArgument


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_GATEWAY_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="serve /metrics on this port only (behind an Ingress the public port "
        "must not show it); 0 serves it on the main port",
    )
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    # One address per row of services.kit.components (a test keeps them in step).
    map_address: str = Field(..., min_length=1)
    events_address: str = Field(..., min_length=1)
    command_address: str = Field(..., min_length=1)
    twin_address: str = Field(..., min_length=1)
    empower_address: str = Field(..., min_length=1)
    call_timeout_seconds: float = Field(5.0, gt=0, description="deadline on every gRPC call")
    readiness_timeout_seconds: float = Field(1.0, gt=0)
    max_body_bytes: int = Field(1_048_576, gt=0, description="larger request bodies get 413")
    max_upload_bytes: int = Field(50 * 1_048_576, gt=0, description="limit for file imports")
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="a request's headers must arrive within this, else 408"
    )
    body_idle_timeout_seconds: float = Field(
        15.0, gt=0, description="a request body may pause this long between bytes, else 408"
    )
    body_timeout_seconds: float = Field(
        600.0, gt=0, description="a whole request body (uploads too) must arrive within this"
    )
    max_concurrency: int = Field(
        1000, ge=1, description="open connections and requests; beyond it 503"
    )
    cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8080", "http://127.0.0.1:8080"],
        description="origins allowed to call from a browser; '*' is refused",
    )
    redis_url: str = Field(
        "",
        description="shared rate-limit buckets (redis://host:6379/0); empty keeps them "
        "in this process, which suits one replica",
    )
    user_requests_per_minute: int = Field(600, ge=1, description="per signed-in person")
    tenant_requests_per_minute: int = Field(6000, ge=1, description="per tenant node")
    anonymous_requests_per_minute: int = Field(60, ge=1, description="per client address")
    anonymous_reports_per_hour: int = Field(
        10,
        ge=1,
        description="per client address: reports without an account (ADR 35); each "
        "village's own hourly number is the events service's",
    )
    unauthenticated_requests_per_minute: int = Field(
        60,
        ge=1,
        description="per client address: requests without valid credentials (none, bad or "
        "unknown keys and tokens); beyond it the address gets 429 before authentication",
    )
    api_key_cache_seconds: float = Field(
        2.0, gt=0, le=5, description="a revoked key is refused by every replica within this"
    )
    api_key_cache_size: int = Field(
        10_000, ge=1, description="key ids remembered at most (answers for unknown ids too)"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs of the proxies in front of the gateway (an Ingress, a load "
        "balancer) whose X-Forwarded-For is believed; empty ignores the header",
    )
    public_tenant: str = Field("sh", description="whose shared data anonymous callers see")
    service_tenant: str = Field("sh", description="the gateway's own principal's tenant")
    # The web pages' base map (gateway.pages): a local tile server on offline intranets.
    tile_url: str = Field(
        "",
        max_length=500,
        pattern=r"^$|^(https?://[^\s/]+)?/[^\s]*\{z\}[^\s]*$",
        description="XYZ tile URL template such as http://tiles.intranet/{z}/{x}/{y}.png; "
        "empty draws a plain base from the tenant's own layers",
    )
    tile_attribution: str = Field("", max_length=200, description="shown under the tiles")
    tile_crs: str = Field(
        "EPSG:4326",
        description="the CRS the tiles' coordinates are in (GCJ-02 for AMap-style tiles); "
        "a tap on the map is sent in it",
    )
    device_crs: str = Field(
        "EPSG:4326",
        description="the CRS phones' positions arrive in (W3C says WGS84; many phone "
        "browsers in China report GCJ-02); sent with each position, converted by the API",
    )

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, origins: list[str]) -> list[str]:
        if any(origin.strip() == "*" for origin in origins):
            raise ValueError("'*' would let any web page call with a user's credentials")
        return origins

    @field_validator("tile_crs", "device_crs")
    @classmethod
    def _crs(cls, name: str) -> str:
        try:
            return normalise_crs(name)
        except InvalidArgument as exc:
            raise ValueError(str(exc)) from None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return check_redis_url(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        parse_networks(cidrs)
        return cidrs

    def addresses(self) -> dict[str, str]:
        return {name: getattr(self, f"{name}_address") for name in NAMES}
