"""Where peers live.

Every outbound call goes through `services.kit.client.open_channel(target)`. A target is
a static address (`host:port`, `ipv4:a:p,b:p`), a Kubernetes DNS name
(`dns:///events:50052`, headless Services give every replica), or, when
`GRASSROOTS_DISCOVERY=consul`, `consul:///<component>`: the passing instances of that
component in Consul's health API, kept in a cached view that a blocking query per
component refreshes (`ConsulWatch`). The channel for such a target follows the view:
when instances come or go, new calls use a channel to the new set and the old channel
closes after its calls finish (`DiscoveredChannel`).

With Consul each service also registers itself at start (a gRPC health check on its
own service name, deregistered by Consul after a minute of failing) and deregisters
before it drains (`ConsulRegistration`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import consul
import grpc
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kit.config import load_settings
from services.kit.errors import Unavailable

log = logging.getLogger("grassroots.discovery")

CONSUL_SCHEME = "consul:///"


class Discovery(Protocol):
    def resolve(self, service: str) -> str:
        """Return a gRPC target (host:port or a resolver URI) for a service name."""
        ...


class StaticDiscovery:
    """Addresses given in configuration, for example {"map": "127.0.0.1:50051"}."""

    def __init__(self, addresses: Mapping[str, str]) -> None:
        self._addresses = dict(addresses)

    def resolve(self, service: str) -> str:
        try:
            return self._addresses[service]
        except KeyError:
            raise Unavailable(f"no address configured for service {service!r}") from None


class DiscoverySettings(BaseSettings):
    """How a process finds its peers and is found: read by every process."""

    model_config = SettingsConfigDict(env_prefix="GRASSROOTS_", extra="ignore", frozen=True)

    discovery: Literal["static", "consul"] = Field(
        "static",
        description="static: peer addresses as configured (host:port or dns:///); consul: "
        "register in Consul and resolve consul:/// peers through its health API",
    )
    consul_url: str = Field("http://127.0.0.1:8500", description="the local Consul agent")
    consul_token: SecretStr = Field(SecretStr(""), description="ACL token, if Consul uses ACLs")
    advertise_address: str = Field(
        "", description="the address peers reach this process on; empty: this host's address"
    )
    consul_wait_seconds: int = Field(
        30, ge=1, le=600, description="how long one blocking query waits for a change"
    )


def consul_client(settings: DiscoverySettings) -> consul.Consul:
    url = urlsplit(settings.consul_url)
    return consul.Consul(
        host=url.hostname or "127.0.0.1",
        port=url.port or 8500,
        scheme=url.scheme or "http",
        token=settings.consul_token.get_secret_value() or None,
        # A blocking query may take its wait plus Consul's jitter (wait / 16).
        connections_timeout=10,
    )


def advertised_address(settings: DiscoverySettings, host: str) -> str:
    """The address this process is reachable at: configured, its bind address, or the
    address its host name resolves to (a pod's IP)."""
    if settings.advertise_address:
        return settings.advertise_address
    if host not in ("", "0.0.0.0", "::"):
        return host
    return socket.gethostbyname(socket.gethostname())


class ConsulRegistration:
    """This process as one instance of its component in the local Consul agent."""

    def __init__(self, client: consul.Consul, component: str, service_name: str) -> None:
        self.client = client
        self.component = component
        self.service_name = service_name
        self.service_id = ""

    async def register(self, address: str, port: int) -> str:
        self.service_id = f"{self.component}-{address}-{port}"
        check = consul.Check.grpc(
            f"{address}:{port}/{self.service_name}", "10s", timeout="5s", deregister="1m"
        )
        await asyncio.to_thread(
            self.client.agent.service.register,
            self.component,
            service_id=self.service_id,
            address=address,
            port=port,
            tags=["grpc"],
            check=check,
        )
        log.info("registered in Consul as %s", self.service_id)
        return self.service_id

    async def deregister(self) -> None:
        if self.service_id:
            await asyncio.to_thread(self.client.agent.service.deregister, self.service_id)
            log.info("deregistered %s from Consul", self.service_id)


def _passing_addresses(entries: list[dict[str, Any]]) -> tuple[str, ...]:
    """host:port of each entry of /v1/health/service (the service's address, else its
    node's, as Consul documents), IPs resolved, sorted so that equal views compare equal."""
    found = set()
    for entry in entries:
        service = entry.get("Service") or {}
        host = service.get("Address") or (entry.get("Node") or {}).get("Address") or ""
        port = service.get("Port")
        if not host or not port:
            continue
        try:
            ipaddress.ip_address(host)
        except ValueError:
            try:
                host = socket.gethostbyname(host)
            except OSError:
                log.warning("cannot resolve %s of a Consul instance; skipped", host)
                continue
        found.add(f"{host}:{port}")
    return tuple(sorted(found))


class ConsulWatch:
    """The passing instances of one component, refreshed by blocking queries.

    A daemon thread asks `/v1/health/service/<name>?passing` with the last
    `X-Consul-Index` and a wait, so it returns as soon as Consul's view changes (or the
    wait ends); listeners hear of every change of the address set.
    """

    def __init__(self, client: consul.Consul, service: str, wait_seconds: int = 30) -> None:
        self.client = client
        self.service = service
        self.wait = f"{wait_seconds}s"
        self.addresses: tuple[str, ...] = ()
        self._index: str | None = None
        self._listeners: list[Callable[[tuple[str, ...]], None]] = []
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def on_change(self, listener: Callable[[tuple[str, ...]], None]) -> None:
        self._listeners.append(listener)

    def refresh(self) -> bool:
        """One query (blocking when an index is known); whether the addresses changed."""
        index, entries = self.client.health.service(
            self.service, index=self._index, wait=self.wait, passing=True
        )
        # An index that goes backwards (a Consul restart) starts the wait over.
        self._index = (
            None if index is None or (self._index and int(index) < int(self._index)) else index
        )
        addresses = _passing_addresses(entries or [])
        if addresses == self.addresses:
            return False
        self.addresses = addresses
        for listener in self._listeners:
            listener(addresses)
        return True

    def start(self) -> None:
        """Read the view once now (so the first call has it), then keep it fresh."""
        try:
            self.refresh()
        except Exception as exc:  # Consul down at start: the thread keeps trying
            log.warning("Consul unavailable for %s (%s); retrying", self.service, exc)
        self._thread = threading.Thread(
            target=self._run, name=f"consul-watch-{self.service}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                self.refresh()
            except Exception as exc:
                log.warning("Consul query for %s failed (%s); retrying", self.service, exc)
                self._index = None
                self._closed.wait(1.0)

    def close(self) -> None:
        """Stop refreshing (a query in flight ends with its wait; the thread is a daemon)."""
        self._closed.set()


class ConsulDirectory:
    """One watch per component this process calls, shared by its channels."""

    def __init__(self, client: consul.Consul, wait_seconds: int = 30) -> None:
        self.client = client
        self.wait_seconds = wait_seconds
        self._watches: dict[str, ConsulWatch] = {}
        self._lock = threading.Lock()

    def watch(self, service: str) -> ConsulWatch:
        with self._lock:
            found = self._watches.get(service)
            if found is None:
                found = self._watches[service] = ConsulWatch(
                    self.client, service, self.wait_seconds
                )
                found.start()
            return found

    def close(self) -> None:
        for watch in self._watches.values():
            watch.close()


_directory: ConsulDirectory | None = None


def directory() -> ConsulDirectory:
    """The process's Consul directory, from `DiscoverySettings` on first use."""
    global _directory
    if _directory is None:
        settings = load_settings(DiscoverySettings)
        _directory = ConsulDirectory(consul_client(settings), settings.consul_wait_seconds)
    return _directory


def use_directory(found: ConsulDirectory | None) -> None:
    """Set the process's directory (tests point it at a stand-in agent)."""
    global _directory
    _directory = found


def ipv4_target(addresses: tuple[str, ...]) -> str:
    """A gRPC target balancing over `addresses` (the channel's round robin)."""
    return "ipv4:" + ",".join(addresses)


ChannelFactory = Callable[[str], grpc.aio.Channel]


class _Deferred:
    """A stub's method that picks the channel of the current view at each call."""

    def __init__(
        self, owner: DiscoveredChannel, kind: str, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> None:
        self.owner, self.kind, self.args, self.kw = owner, kind, args, kw
        self._bound: tuple[grpc.aio.Channel, Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        channel = self.owner.current()
        bound = self._bound
        if bound is None or bound[0] is not channel:
            bound = (channel, getattr(channel, self.kind)(*self.args, **self.kw))
            self._bound = bound
        return bound[1](*args, **kwargs)


class DiscoveredChannel(grpc.aio.Channel):
    """A channel to every passing instance of a component, following Consul's view."""

    def __init__(self, watch: ConsulWatch, make: ChannelFactory, grace: float = 30.0) -> None:
        self.watch = watch
        self.service = watch.service
        self._make = make
        self._grace = grace
        self._loop = asyncio.get_running_loop()
        self._addresses: tuple[str, ...] = ()
        self._channel: grpc.aio.Channel | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self._found = asyncio.Event()
        watch.on_change(self._changed_elsewhere)
        self._switch(watch.addresses)

    def _changed_elsewhere(self, addresses: tuple[str, ...]) -> None:
        """From the watch's thread: switch on the channel's own loop."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._switch, addresses)

    def _switch(self, addresses: tuple[str, ...]) -> None:
        if addresses == self._addresses and self._channel is not None:
            return
        old, self._addresses = self._channel, addresses
        self._channel = self._make(ipv4_target(addresses)) if addresses else None
        if self._channel is None:
            self._found.clear()
        else:
            self._found.set()
        log.info("%s instances from Consul: %s", self.service, ", ".join(addresses) or "none")
        if old is not None:  # its calls in flight finish; new ones use the new channel
            task = self._loop.create_task(old.close(self._grace))
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    @property
    def addresses(self) -> tuple[str, ...]:
        return self._addresses

    def current(self) -> grpc.aio.Channel:
        if self._channel is None:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details=f"no passing instance of {self.service} in Consul",
            )
        return self._channel

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(self, "unary_unary", args, kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(self, "unary_stream", args, kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(self, "stream_unary", args, kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(self, "stream_stream", args, kwargs)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        if self._channel is None:
            return grpc.ChannelConnectivity.TRANSIENT_FAILURE
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current().wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        """Ready once some instance passes and its channel connects."""
        await self._found.wait()
        await self.current().channel_ready()

    async def close(self, grace: float | None = None) -> None:
        if self._channel is not None:
            await self._channel.close(grace)
            self._channel = None
        for task in list(self._retired):
            task.cancel()

    async def __aenter__(self) -> DiscoveredChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(None)
