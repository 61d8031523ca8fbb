"""What runs in a cluster, derived from the component table and the settings classes.

Nothing here is written twice: ports come from `services.kit.components`, the calls a
process makes from the `*_address` settings it reads, the secrets it needs from its
`SecretStr` settings, and the files it writes from its `var/...` path defaults. The
manifests (`render`) and the policy tests both read this module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from gateway.edge.settings import EdgeSettings
from gateway.settings import GatewaySettings
from services.kit import signing
from services.kit.components import COMPONENTS
from services.kit.config import ServiceSettings
from services.kit.discovery import DiscoverySettings
from services.twin.mqtt_bridge.config import BridgeSettings

DATA_DIR = PurePosixPath("/data")  # an emptyDir: the root filesystem is read-only
GATEWAY_HTTP_PORT = 8080
GATEWAY_METRICS_PORT = 9100
EDGE_METRICS_PORT = 9106
# The one secret every process reads: principals are signed and verified with it.
SHARED_SECRETS = (signing.KEYS_VARIABLE,)


@dataclass(frozen=True)
class Workload:
    """One Deployment: a process of the platform and what it needs around it."""

    name: str
    module: str  # what `python -m` starts
    settings: tuple[type[BaseSettings], ...]  # every settings class the process loads
    ports: dict[str, int]  # port name (grpc, http, metrics) -> container port
    grpc_service: str = ""  # the service a readiness probe asks about; "" for HTTP
    memory_limit: str = "1Gi"
    peers: tuple[str, ...] = field(default=())

    @property
    def serving_port(self) -> tuple[str, int]:
        """The port callers use: `grpc` or `http`."""
        name = "grpc" if "grpc" in self.ports else "http"
        return name, self.ports[name]


def _settings_class(component: str) -> type[ServiceSettings]:
    """The `ServiceSettings` subclass of `services.<component>.config`."""
    module = importlib.import_module(f"services.{component}.config")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value is not ServiceSettings
    ]
    if len(found) != 1:
        raise LookupError(f"services.{component}.config should define one settings class")
    return found[0]


def prefix(settings: type[BaseSettings]) -> str:
    return str(settings.model_config.get("env_prefix", ""))


def peers_of(settings: tuple[type[BaseSettings], ...]) -> tuple[str, ...]:
    """Components a process calls: one `<component>_address` setting each."""
    return tuple(
        sorted(
            {
                name.removesuffix("_address")
                for cls in settings
                for name in cls.model_fields
                if name.endswith("_address") and name.removesuffix("_address") in COMPONENTS
            }
        )
    )


# Read by the process beside its own settings: every process may find its peers through
# Consul; the twin runs the MQTT bridge in process when it is enabled.
EXTRA_SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {"twin": (BridgeSettings,)}


def _workload(
    name: str,
    module: str,
    settings: tuple[type[BaseSettings], ...],
    ports: dict[str, int],
    grpc_service: str = "",
    memory_limit: str = "1Gi",
) -> Workload:
    settings = (*settings, *EXTRA_SETTINGS.get(name, ()), DiscoverySettings)
    return Workload(name, module, settings, ports, grpc_service, memory_limit, peers_of(settings))


def _all() -> dict[str, Workload]:
    rows = [
        _workload(
            row.name,
            row.module,
            (_settings_class(row.name),),
            {"grpc": row.grpc_port, "metrics": row.metrics_port},
            row.service_names[0],
            # The map answers point lookups from an in-memory index of every layer.
            "2Gi" if row.name == "map" else "1Gi",
        )
        for row in COMPONENTS.values()
    ]
    rows.append(
        _workload(
            "gateway",
            "gateway",
            (GatewaySettings,),
            {"http": GATEWAY_HTTP_PORT, "metrics": GATEWAY_METRICS_PORT},
        )
    )
    edge_port = EdgeSettings.model_fields["grpc_port"].default
    rows.append(
        _workload(
            "edge",
            "gateway.edge",
            # The edge authenticates and forwards as the gateway does, from its settings.
            (EdgeSettings, GatewaySettings),
            {"grpc": edge_port, "metrics": EDGE_METRICS_PORT},
            "grpc.health.v1.Health",
        )
    )
    return {row.name: row for row in rows}


WORKLOADS: dict[str, Workload] = _all()


def callers_of(target: str) -> tuple[str, ...]:
    """Workloads that call `target` (from their address settings)."""
    return tuple(sorted(w.name for w in WORKLOADS.values() if target in w.peers))


def config_of(workload: Workload) -> dict[str, str]:
    """The non-secret environment of a workload in a cluster: where to listen, where its
    peers are (Kubernetes DNS names), and where its embedded stores write."""
    env: dict[str, str] = {}
    own = workload.settings[0]
    own_prefix = prefix(own)
    fields = own.model_fields
    if "host" in fields:
        env[own_prefix + "HOST"] = "0.0.0.0"  # a container listens on its pod's address
    if "metrics_port" in fields:
        env[own_prefix + "METRICS_PORT"] = str(workload.ports["metrics"])
    for cls in workload.settings:
        for name, info in cls.model_fields.items():
            key = prefix(cls) + name.upper()
            if name.endswith("_address") and name.removesuffix("_address") in COMPONENTS:
                peer = WORKLOADS[name.removesuffix("_address")]
                # Headless Service: DNS answers every replica, the channel balances.
                env[key] = f"dns:///{peer.name}:{peer.serving_port[1]}"
            elif cls is own and name == "data_dir":
                env[key] = str(DATA_DIR)
            elif (
                cls is own and isinstance(info.default, Path) and info.default.parts[:1] == ("var",)
            ):
                env[key] = str(DATA_DIR.joinpath(*info.default.parts[1:]))
    return dict(sorted(env.items()))


def secrets_of(workload: Workload) -> tuple[str, ...]:
    """Variables a workload reads from its Secret: the key ring and its `SecretStr`s."""
    own = workload.settings[0]
    named = [
        prefix(own) + name.upper()
        for name, info in own.model_fields.items()
        if info.annotation is SecretStr
    ]
    return (*SHARED_SECRETS, *sorted(named))


def required_of(workload: Workload) -> tuple[str, ...]:
    """Variables without a default: the process refuses to start without them."""
    return tuple(
        sorted(
            prefix(cls) + name.upper()
            for cls in workload.settings
            for name, info in cls.model_fields.items()
            if info.is_required()
        )
    )


def known_variables(workload: Workload) -> frozenset[str]:
    """Every variable the workload's settings read."""
    return frozenset(
        prefix(cls) + name.upper() for cls in workload.settings for name in cls.model_fields
    ) | frozenset(SHARED_SECRETS)
