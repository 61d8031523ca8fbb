"""Start, watch and stop the platform's processes.

Used by `make run` and by the integration tests, so the tests exercise the same
wiring a developer runs: real processes, real ports, embedded backends.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack import keys
from services.kit import private_files, signing
from services.kit.components import COMPONENTS, NAMES

if TYPE_CHECKING:
    from devstack.demo_identity import DemoCredentials

REPO = Path(__file__).resolve().parent.parent
SERVICES = NAMES
DEFAULT_GRPC_PORTS = {row.name: row.grpc_port for row in COMPONENTS.values()}
DEFAULT_METRICS_PORTS = {row.name: row.metrics_port for row in COMPONENTS.values()}
# The gRPC edge for village developers; GRASSROOTS_EDGE_GRPC_PORT moves it.
DEFAULT_EDGE_PORT = 50050


def free_port() -> int:
    return free_ports(1)[0]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


PORT_SLICE_VARIABLE = "GRASSROOTS_PORT_SLICE"


def _port_slice(bottom: int, top: int) -> tuple[int, int]:
    """The part of [bottom, top) this process picks from: all of it, or slice k of n
    when GRASSROOTS_PORT_SLICE is `k/n` (test sessions side by side never pick the same
    port between a pick and a service's bind)."""
    given = os.environ.get(PORT_SLICE_VARIABLE, "")
    if not given:
        return bottom, top
    index, _, parts = given.partition("/")
    if not (index.isdigit() and parts.isdigit() and int(index) < int(parts)):
        raise ValueError(f"{PORT_SLICE_VARIABLE} is k/n with k < n, not {given!r}")
    width = (top - bottom) // int(parts)
    start = bottom + int(index) * width
    return start, start + width


def free_ports(count: int) -> list[int]:
    """Distinct free ports below the kernel's ephemeral range, where no outbound
    connection can take one between this pick and the service's bind (a port the kernel
    picked for us could be: a busy machine then fails the start with EADDRINUSE). Every
    socket stays bound until all are picked, so none is handed out twice."""
    bottom, top = _port_slice(max(1024, _ephemeral_low() - 12_000), _ephemeral_low())
    picked: list[socket.socket] = []
    try:
        for _ in range(count * 100):
            if len(picked) == count:
                break
            port = random.randrange(bottom, top)  # noqa: S311 (not a secret)
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            picked.append(sock)
        if len(picked) < count:
            raise RuntimeError(f"fewer than {count} free ports in {bottom}-{top - 1}")
        return [int(sock.getsockname()[1]) for sock in picked]
    finally:
        for sock in picked:
            sock.close()


@dataclass
class StackConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    gateway_port: int = 8080
    edge_port: int = DEFAULT_EDGE_PORT
    grpc_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_GRPC_PORTS))
    metrics_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_METRICS_PORTS))
    log_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def on_free_ports(cls, data_dir: Path, log_dir: Path | None = None) -> StackConfig:
        ports = iter(free_ports(2 + 2 * len(SERVICES)))
        return cls(
            data_dir=data_dir,
            gateway_port=next(ports),
            edge_port=next(ports),
            grpc_ports={name: next(ports) for name in SERVICES},
            metrics_ports={name: next(ports) for name in SERVICES},
            log_dir=log_dir,
        )

    @classmethod
    def from_environment(
        cls, data_dir: Path, gateway_port: int | None = None, log_dir: Path | None = None
    ) -> StackConfig:
        """`make run`'s ports: the defaults, unless `GRASSROOTS_*_PORT` variables say otherwise."""
        environ = os.environ
        return cls(
            data_dir=data_dir,
            gateway_port=gateway_port or int(environ.get("GRASSROOTS_GATEWAY_PORT", "8080")),
            edge_port=int(environ.get("GRASSROOTS_EDGE_GRPC_PORT", DEFAULT_EDGE_PORT)),
            grpc_ports={
                name: int(environ.get(f"GRASSROOTS_{name.upper()}_GRPC_PORT", port))
                for name, port in DEFAULT_GRPC_PORTS.items()
            },
            metrics_ports={
                name: int(environ.get(f"GRASSROOTS_{name.upper()}_METRICS_PORT", port))
                for name, port in DEFAULT_METRICS_PORTS.items()
            },
            log_dir=log_dir,
        )

    def address(self, service: str) -> str:
        return f"{self.host}:{self.grpc_ports[service]}"

    @property
    def edge_address(self) -> str:
        return f"{self.host}:{self.edge_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    def client_exports(self) -> str:
        """The line a shell runs so the CLI and SDK find this stack (`--free-ports` moves it)."""
        found = [f"GRASSROOTS_URL={self.gateway_url}"]
        found += [f"GRASSROOTS_{name.upper()}_ADDRESS={self.address(name)}" for name in SERVICES]
        return "export " + " ".join(found)

    @property
    def map_file(self) -> Path:
        return self.data_dir / "demo-village.gpkg"

    def dev_secrets(self) -> dict[str, str]:
        """Keys the processes share, made once per data directory and kept beside the data.

        Encrypted personal data outlives a restart only with the same keys, so they are
        written (owner-only) next to the stores; production reads them from a Secret.
        A key ring already in the environment (a test run) is used as it is.
        """
        path = self.data_dir / "dev-secrets.json"
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        wanted = keys.GENERATORS
        missing = [name for name in wanted if name not in stored]
        if missing:  # a new data directory, or one made before a key was needed
            stored.update({name: wanted[name]() for name in missing})
            self.data_dir.mkdir(mode=private_files.FOLDER_MODE, parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(json.dumps(stored, indent=2))
        if os.environ.get(signing.KEYS_VARIABLE):
            stored[signing.KEYS_VARIABLE] = os.environ[signing.KEYS_VARIABLE]
        return stored

    def env_for(self, process: str) -> dict[str, str]:
        """The environment of one process: devstack's defaults, then every `GRASSROOTS_*`
        variable of this environment (they win, so a setting changes without code),
        then the wiring (ports and peer addresses, which this config decides so that every
        process agrees), then `extra_env`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")}
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        shared = self.dev_secrets()
        defaults: dict[str, str] = {signing.KEYS_VARIABLE: shared[signing.KEYS_VARIABLE]}
        wiring: dict[str, str] = {}
        if process in ("gateway", "edge"):
            # The edge admits callers with the gateway's settings: same limits, same keys.
            prefix = "GRASSROOTS_GATEWAY_"
            defaults[prefix + "HOST"] = self.host
            wiring[prefix + "PORT"] = str(self.gateway_port)
            for name in SERVICES:
                wiring[f"{prefix}{name.upper()}_ADDRESS"] = self.address(name)
            if process == "edge":
                defaults["GRASSROOTS_EDGE_HOST"] = self.host
                wiring["GRASSROOTS_EDGE_GRPC_PORT"] = str(self.edge_port)
        else:
            prefix = f"GRASSROOTS_{process.upper()}_"
            defaults[prefix + "HOST"] = self.host
            wiring[prefix + "GRPC_PORT"] = str(self.grpc_ports[process])
            wiring[prefix + "METRICS_PORT"] = str(self.metrics_ports[process])
            defaults[prefix + "DATA_DIR"] = str(self.data_dir)
            if process == "map":
                defaults[prefix + "STORE_FILE"] = str(self.data_dir / "map.gpkg")
                defaults[prefix + "SEED_FILE"] = str(self.map_file)
            if process == "empower":
                defaults[prefix + "DATABASE"] = str(self.data_dir / "empower.sqlite3")
                # Points pay for command's facts: read the log events and command share.
                defaults[prefix + "BUS_URL"] = str(self.data_dir / "events-bus.sqlite3")
                # The catalog reads the gateway's routes and calls per village there.
                defaults[prefix + "GATEWAY_URL"] = self.gateway_url
                for name in ("GRASSROOTS_EMPOWER_SEAL_KEYS", "GRASSROOTS_EMPOWER_INDEX_KEY"):
                    defaults[name] = shared[name]
            if process == "command":
                defaults[prefix + "DATABASE"] = str(self.data_dir / "command.sqlite3")
            if process == "twin":
                defaults[prefix + "DATABASE"] = str(self.data_dir / "twin.sqlite3")
                # Command follows twin.level_changed on its own bus (emergency plans move
                # with a level rule): twin publishes there, not on a bus nobody reads.
                defaults[prefix + "BUS_URL"] = str(self.data_dir / "events-bus.sqlite3")
                # Devices publish to the machine's broker; one MQTT session per stack.
                defaults[prefix + "MQTT_ENABLED"] = "true"
                defaults[prefix + "MQTT_CLIENT_ID"] = (
                    "grassroots-twin-"
                    + hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:12]
                )
            if process == "events":
                defaults[prefix + "DATABASE"] = str(self.data_dir / "events.sqlite3")
                defaults["GRASSROOTS_EVENTS_SEAL_KEYS"] = shared["GRASSROOTS_EVENTS_SEAL_KEYS"]
            row = COMPONENTS[process]
            for peer in (*row.peers, *row.request_peers):
                wiring[f"{prefix}{peer.upper()}_ADDRESS"] = self.address(peer)
        env.update(defaults)
        env.update({k: v for k, v in os.environ.items() if k.startswith("GRASSROOTS_")})
        env.update(wiring)
        env.update(self.extra_env)
        return env


class Stack:
    """The platform's processes. Not thread-safe; one owner drives it."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, BinaryIO] = {}

    def ensure_demo_data(self) -> None:
        """Write the demo GeoPackage, or write it again when an older version left the
        residents' personal columns in it or has no road layer (the same seed gives the
        same town)."""
        from devstack import demo_village

        path = self.config.map_file
        if (
            path.exists()
            and not demo_village.holds_personal_columns(path)
            and demo_village.has_roads(path)
        ):
            return
        self.config.data_dir.mkdir(mode=private_files.FOLDER_MODE, parents=True, exist_ok=True)
        demo_village.generate(self.config.map_file)

    def start(self, name: str) -> None:
        module = {"gateway": "gateway", "edge": "gateway.edge"}.get(name) or COMPONENTS[name].module
        stdout: BinaryIO | None = None
        if self.config.log_dir is not None:
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            stdout = open(self.config.log_dir / f"{name}.log", "ab")  # noqa: SIM115
            self._logs[name] = stdout
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO,
            env=self.config.env_for(name),
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            umask=private_files.UMASK,  # the services set it too; this covers the gateway's start
        )

    @property
    def credentials_file(self) -> Path:
        return self.config.data_dir / "demo-credentials.json"

    def install_demo_identities(self) -> DemoCredentials:
        """Tenants, staff, grid workers, residents and app keys of the demo town (once;
        an install that was interrupted is finished)."""
        from devstack import demo_identity

        # This process signs the bootstrap principal with the stack's own key ring.
        signing.configure(signing.KeyRing.parse(self.config.dev_secrets()[signing.KEYS_VARIABLE]))
        saved = (
            demo_identity.DemoCredentials.load(self.credentials_file)
            if self.credentials_file.exists()
            else None
        )

        async def run() -> demo_identity.DemoCredentials:
            async with grpc.aio.insecure_channel(self.config.address("empower")) as channel:
                return await demo_identity.install(
                    channel,
                    self.config.map_file,
                    saved,
                    lambda credentials: credentials.save(self.credentials_file),
                )

        return asyncio.run(run())

    def install_demo_events(self) -> dict[str, int]:
        """The demo town's past four weeks of reports (replayed, not repeated, later)."""
        from devstack import demo_events

        signing.configure(signing.KeyRing.parse(self.config.dev_secrets()[signing.KEYS_VARIABLE]))

        async def run() -> dict[str, int]:
            async with grpc.aio.insecure_channel(self.config.address("events")) as channel:
                return await demo_events.install(channel, self.config.map_file)

        return asyncio.run(run())

    def install_demo_command(self) -> dict[str, int]:
        """Handler profiles for the demo town's grid workers, volunteers and carers, and
        the town's routing rules (made once)."""
        from devstack import demo_command

        signing.configure(signing.KeyRing.parse(self.config.dev_secrets()[signing.KEYS_VARIABLE]))

        async def run() -> dict[str, int]:
            async with (
                grpc.aio.insecure_channel(self.config.address("empower")) as empower,
                grpc.aio.insecure_channel(self.config.address("command")) as command,
            ):
                return await demo_command.install(empower, command, self.config.map_file)

        return asyncio.run(run())

    def install_demo_plans(self) -> tuple[str, str]:
        """The village's crowd-surge emergency plan and daily visits (the same on every start)."""
        from devstack import demo_plans

        signing.configure(signing.KeyRing.parse(self.config.dev_secrets()[signing.KEYS_VARIABLE]))

        async def run() -> tuple[str, str]:
            async with (
                grpc.aio.insecure_channel(self.config.address("command")) as command,
                grpc.aio.insecure_channel(self.config.address("empower")) as empower,
            ):
                return await demo_plans.install(command, empower)

        return asyncio.run(run())

    def install_required_scenarios(self) -> list[str]:
        """The catalog's required scenarios in both demo villages, through the composer
        (ADR 26): a village that has them already is planned, found unchanged and left."""
        from devstack.demo_identity import VILLAGES
        from scenarios.composer import Composer, catalog

        signing.configure(signing.KeyRing.parse(self.config.dev_secrets()[signing.KEYS_VARIABLE]))
        required = sorted(
            (m for m in catalog.available().values() if m.scenario_class == "required"),
            key=lambda m: m.id,
        )

        async def run() -> None:
            addresses = {name: self.config.address(name) for name in SERVICES}
            async with Composer.connect(addresses) as composer:
                for village in VILLAGES:
                    for manifest in required:
                        await composer.apply(village, manifest, None)

        asyncio.run(run())
        return [m.id for m in required]

    def install_demo_forms(self) -> dict[str, int]:
        """The town's fire-safety inspection form, its records and its three reports."""
        from devstack import demo_forms

        signing.configure(signing.KeyRing.parse(self.config.dev_secrets()[signing.KEYS_VARIABLE]))

        async def run() -> dict[str, int]:
            async with grpc.aio.insecure_channel(self.config.address("empower")) as channel:
                return await demo_forms.install(channel, self.config.map_file, date.today())

        return asyncio.run(run())

    def install_demo_twin(self) -> int:
        """The demo village's sensors, their links and rules, and a day of readings (once)."""
        from devstack import demo_twin

        signing.configure(signing.KeyRing.parse(self.config.dev_secrets()[signing.KEYS_VARIABLE]))

        async def run() -> int:
            async with (
                grpc.aio.insecure_channel(self.config.address("twin")) as channel,
                grpc.aio.insecure_channel(self.config.address("map")) as map_channel,
            ):
                return await demo_twin.install(channel, self.config.map_file, map_channel)

        return asyncio.run(run())

    def api_headers(self) -> dict[str, str]:
        """Headers that call the gateway as the demo town's operations app."""
        from devstack import demo_identity

        credentials = demo_identity.DemoCredentials.load(self.credentials_file)
        return {"X-API-Key": credentials.app_keys[demo_identity.TOWN]}

    def listeners(self) -> list[tuple[str, int, str]]:
        """Every port the stack listens on: what listens, the port, the variable moving it."""
        found = [
            ("gateway HTTP", self.config.gateway_port, "GRASSROOTS_GATEWAY_PORT"),
            ("edge gRPC", self.config.edge_port, "GRASSROOTS_EDGE_GRPC_PORT"),
        ]
        for name in SERVICES:
            variable = f"GRASSROOTS_{name.upper()}_"
            found.append((f"{name} gRPC", self.config.grpc_ports[name], variable + "GRPC_PORT"))
            found.append(
                (f"{name} metrics", self.config.metrics_ports[name], variable + "METRICS_PORT")
            )
        return found

    def check_ports(self) -> None:
        """Refuse to start, in one line, when another process holds a port the stack needs."""
        taken = []
        for what, port, variable in self.listeners():
            if not port:
                continue
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
                try:
                    probe.bind((self.config.host, port))
                except OSError:
                    taken.append(f"{what} {self.config.host}:{port} ({variable})")
        if taken:
            raise RuntimeError(
                f"another process holds {', '.join(taken)}; stop it (an earlier `make run`?), "
                "start with `python -m devstack --free-ports`, or move each port with its variable"
            )

    def start_all(self) -> None:
        self.check_ports()
        self.ensure_demo_data()
        for name in (*SERVICES, "gateway", "edge"):
            self.start(name)

    def service_serving(self, name: str, timeout: float = 0.5) -> bool:
        address = self.config.edge_address if name == "edge" else self.config.address(name)
        with grpc.insecure_channel(address) as channel:
            try:
                response = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout
                )
            except grpc.RpcError:
                return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    def gateway_ready(self, timeout: float = 2.0) -> bool:
        try:
            response = httpx.get(f"{self.config.gateway_url}/readyz", timeout=timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def wait_ready(self, timeout: float = 60.0, services: tuple[str, ...] = SERVICES) -> None:
        """Block until every service and a started edge are SERVING and the gateway is ready."""
        deadline = time.monotonic() + timeout
        pending = [*services, *(["edge"] if "edge" in self.processes else [])]
        while time.monotonic() < deadline:
            self.check_alive()
            pending = [name for name in pending if not self.service_serving(name)]
            if not pending and ("gateway" not in self.processes or self.gateway_ready()):
                return
            time.sleep(0.2)
        raise TimeoutError(f"not ready after {timeout:.0f}s: {pending or ['gateway']}")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            code = process.poll()
            if code is not None:
                raise RuntimeError(f"{name} exited with code {code}{self._log_tail(name)}")

    def _log_tail(self, name: str, lines: int = 40) -> str:
        """The end of a service's log, so a failed start says why without a kept log folder."""
        if self.config.log_dir is None:
            return ""
        log = self.config.log_dir / f"{name}.log"
        if not log.exists():
            return ""
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        return "; its log ends:\n" + "\n".join(tail)

    def signal(self, name: str, sig: int) -> None:
        self.processes[name].send_signal(sig)

    def stop(self, name: str, timeout: float = 15.0) -> int | None:
        process = self.processes.pop(name, None)
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()
        return process.returncode

    def stop_all(self) -> None:
        for name in ("edge", "gateway", *reversed(SERVICES)):
            self.stop(name)
