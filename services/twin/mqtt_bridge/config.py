"""Settings of the MQTT bridge (`GRASSROOTS_TWIN_MQTT_*`); off unless `enabled`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.twin.mqtt_bridge.payload import DEFAULT_ROOT, MAX_PAYLOAD_BYTES


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRASSROOTS_TWIN_MQTT_", extra="ignore", frozen=True
    )

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    # Broker credentials of the bridge itself (a production broker refuses anonymous clients).
    username: str = ""
    password: str = ""
    # One persistent session (clean start off): the broker keeps what arrives while the
    # twin restarts and redelivers what it had sent but the bridge had not acknowledged.
    client_id: str = "grassroots-twin-bridge"
    # How long the broker keeps the session after the bridge disconnects (MQTT 5).
    session_expiry_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=0xFFFFFFFF)
    # Unacknowledged messages the broker may send ahead (MQTT 5 Receive Maximum). Under
    # MQTT 3.1.1 Mosquitto allows 20 and queues 1,000 behind them, then drops; this window
    # holds minutes of a village's readings while a commit is slow.
    receive_maximum: int = Field(default=65_535, ge=1, le=65_535)
    topic_root: str = Field(default=DEFAULT_ROOT, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    max_payload_bytes: int = Field(default=MAX_PAYLOAD_BYTES, ge=64, le=262_144)
    # Messages handed to the twin in one ingest call (one commit).
    max_batch: int = Field(default=500, ge=1, le=10_000)
