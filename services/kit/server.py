"""Server bootstrap shared by every service.

`run_service` starts a grpc.aio server with the platform interceptor, the standard
health service (SERVING once ready, NOT_SERVING while draining), server reflection,
Prometheus metrics on their own port, and a graceful shutdown on SIGTERM or SIGINT
in which in-flight calls get `grace_seconds` to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from pydantic_settings import BaseSettings

from services.kit import discovery, metrics, signing, tracing
from services.kit.config import ServiceSettings, load_settings
from services.kit.interceptors import ServerInterceptor
from services.kit.logging import configure_logging
from services.kit.private_files import data_folders, make_all_private, restrict_umask

log = logging.getLogger("grassroots.server")

SERVER_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
    # Clients reconnect (and resolve again) every few minutes, so new replicas get
    # traffic without a restart of their callers; in-flight calls get a grace period.
    ("grpc.max_connection_age_ms", 300_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
)


def port_taken(name: str, settings: BaseSettings, field: str) -> str:
    """One line for a port another process holds: which, and how to choose another."""
    prefix = settings.model_config.get("env_prefix", "")
    host, port = getattr(settings, "host", ""), getattr(settings, field)
    return (
        f"{name}: cannot listen on {host}:{port}, another process is using it; "
        f"stop that process, start the platform with `python -m devstack --free-ports`, "
        f"or choose another port with {prefix}{field.upper()}"
    )


class Component(Protocol):
    """What a service hands to the bootstrap: its gRPC services and how to close them."""

    @property
    def service_names(self) -> Sequence[str]:
        """Fully qualified gRPC service names, for health and reflection."""
        ...

    def register(self, server: grpc.aio.Server) -> None: ...

    async def close(self) -> None: ...


class RunningServer:
    """A started server; `stop()` drains it the same way SIGTERM does."""

    def __init__(
        self, server: grpc.aio.Server, health: HealthServicer, port: int, grace: float
    ) -> None:
        self.server = server
        self.health = health
        self.port = port
        self.grace = grace

    async def stop(self) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.grace)


async def start_server(name: str, settings: ServiceSettings, component: Component) -> RunningServer:
    interceptor = ServerInterceptor(name, getattr(component, "method_scopes", {}))
    server = grpc.aio.server(
        interceptors=[*tracing.server_interceptors(), interceptor], options=SERVER_OPTIONS
    )
    component.register(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [
            *component.service_names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    try:
        port = server.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
    except RuntimeError:  # grpc's "Failed to bind": the port is taken
        port = 0
    if port == 0:
        raise SystemExit(port_taken(name, settings, "grpc_port"))
    await server.start()
    for service_name in ("", *component.service_names):
        await health.set(service_name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "%s serving on %s:%d",
        name,
        settings.host,
        port,
        extra={"grpc_port": port, "metrics_port": settings.metrics_port},
    )
    return RunningServer(server, health, port, settings.grace_seconds)


async def serve_until_signalled(
    name: str, settings: ServiceSettings, build: Callable[[], Awaitable[Component]]
) -> None:
    component = await build()
    running = await start_server(name, settings, component)
    registration = await register_in_consul(name, settings, component, running.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if registration is not None:  # callers stop choosing this instance before it drains
        with contextlib.suppress(Exception):
            await registration.deregister()
    log.info("%s draining (grace %.1fs)", name, settings.grace_seconds)
    await running.stop()
    await component.close()
    log.info("%s stopped", name)


async def register_in_consul(
    name: str, settings: ServiceSettings, component: Component, port: int
) -> discovery.ConsulRegistration | None:
    """With `GRASSROOTS_DISCOVERY=consul`: this instance in the local agent, checked by
    Consul over gRPC health on the component's own service name."""
    chosen = load_settings(discovery.DiscoverySettings)
    if chosen.discovery != "consul":
        return None
    registration = discovery.ConsulRegistration(
        discovery.consul_client(chosen), name, component.service_names[0]
    )
    await registration.register(discovery.advertised_address(chosen, settings.host), port)
    return registration


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (uvicorn[standard] brings it, and the
    gateway already runs on it), else asyncio's own.

    The loop's own work (polling, scheduling callbacks, socket writes) is a large part of
    a service's CPU per call under load; uvloop does it in C.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _dsn_variable(settings: BaseSettings) -> str:
    return f"{settings.model_config.get('env_prefix', '')}POSTGRES_DSN"


def check_start_settings(settings: BaseSettings) -> None:
    """Refuse to start, in one line naming the variable, on settings that would otherwise
    fail later: discovery, the principal key ring (read lazily on the first call) and a
    DSN libpq cannot parse."""
    load_settings(discovery.DiscoverySettings)
    try:
        signing.keyring()
    except signing.KeyRingError as exc:
        raise SystemExit(f"invalid configuration: {exc}") from None
    dsn = str(getattr(settings, "postgres_dsn", "") or "")
    if dsn:
        from psycopg import conninfo

        try:
            conninfo.conninfo_to_dict(dsn)
        except Exception:  # the parser's message may quote the DSN, password included
            raise SystemExit(
                f"invalid configuration for {type(settings).__name__}: "
                f"{_dsn_variable(settings)} is not a libpq connection string or URI"
            ) from None


def database_error(settings: ServiceSettings, exc: BaseException) -> str | None:
    """One line for a database that refuses the process at start (down, unknown role,
    wrong password), naming the setting; None for anything else."""
    if not getattr(settings, "postgres_dsn", ""):
        return None
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return None
    reason = " ".join(str(exc).split())
    return f"cannot open the database named by {_dsn_variable(settings)}: {reason}"


def run_service(
    name: str, settings: ServiceSettings, build: Callable[[], Awaitable[Component]]
) -> None:
    """Process entry point: owner-only files, logs, metrics, serve until SIGTERM."""
    check_start_settings(settings)
    restrict_umask()
    configure_logging(name, settings.log_level)
    tracing.configure_tracing(name)
    make_all_private(data_folders(settings))
    try:
        metrics.serve_metrics(settings.metrics_port, settings.host)
    except OSError:
        raise SystemExit(port_taken(name, settings, "metrics_port")) from None
    try:
        with (
            contextlib.suppress(KeyboardInterrupt),
            asyncio.Runner(loop_factory=loop_factory()) as runner,
        ):
            runner.run(serve_until_signalled(name, settings, build))
    except Exception as exc:
        unreachable = database_error(settings, exc)
        if unreachable is None:
            raise
        raise SystemExit(unreachable) from None
    finally:
        tracing.shutdown()
