"""A stand-in for a Consul agent's HTTP API, for tests: no Consul binary is on these
machines.

NOT Consul. It implements, from Consul's HTTP API documentation, only what the
platform's discovery adapter uses:

* `PUT /v1/agent/service/register`: a service instance with its checks (keys of the
  JSON body are case-insensitive, as Consul reads them). A gRPC check (`GRPC`:
  `host:port[/service]`) is run like Consul runs it: a `grpc.health.v1.Health/Check` on
  that service every `Interval`; a check starts `critical` until its first pass;
  `DeregisterCriticalServiceAfter` removes an instance critical for that long.
* `PUT /v1/agent/service/deregister/<id>`.
* `GET /v1/health/service/<name>`: entries of `Node`, `Service` and `Checks`;
  `?passing` keeps instances whose checks all pass; a blocking query (`?index=N` with
  an optional `?wait=`, default 5 minutes) waits until the state changes past N or the
  wait ends; the answer carries `X-Consul-Index`.

Indexes are one counter for the whole agent (a change anywhere wakes every blocking
query), which Consul's documentation allows: a blocking query's return is no promise
of a change. `check_every` overrides check intervals so tests need not wait 10 s.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

NODE = {"ID": "stand-in-node", "Node": "stand-in", "Address": "127.0.0.1", "Datacenter": "dc1"}


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _seconds(duration: str | None, default: float) -> float:
    """Consul durations as the platform sends them: '10s', '5m', '1h', '500ms'."""
    if not duration:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    if match is None:
        raise ValueError(f"bad duration {duration!r}")
    number, unit = float(match[1]), match[2]
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


@dataclass
class Check:
    id: str
    name: str
    grpc: str
    interval: float
    deregister_after: float | None
    status: str = "critical"
    critical_since: float = field(default_factory=time.monotonic)


@dataclass
class Instance:
    id: str
    name: str
    address: str
    port: int
    tags: list[str]
    checks: list[Check]


class ConsulStandIn:
    """Start with `start()`; `url` is the agent's address; `stop()` ends it."""

    def __init__(self, check_every: float | None = 0.2) -> None:
        self.check_every = check_every
        self.instances: dict[str, Instance] = {}
        self.index = 1
        self.requests: list[str] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._threads: list[threading.Thread] = []

    # -- state ----------------------------------------------------------------------

    def _bump(self) -> None:
        with self._changed:
            self.index += 1
            self._changed.notify_all()

    def register(self, body: dict[str, Any]) -> None:
        spec = _lower_keys(body)
        name = spec["name"]
        service_id = spec.get("id") or name
        raw_checks = ([spec["check"]] if spec.get("check") else []) + list(spec.get("checks") or [])
        checks = []
        for n, raw in enumerate(raw_checks):
            if "grpc" not in raw:
                raise ValueError("the stand-in runs gRPC checks only")
            checks.append(
                Check(
                    id=raw.get("checkid") or raw.get("id") or f"service:{service_id}:{n + 1}",
                    name=raw.get("name") or f"Service '{name}' check",
                    grpc=raw["grpc"],
                    interval=_seconds(raw.get("interval"), 10),
                    deregister_after=(
                        _seconds(raw["deregistercriticalserviceafter"], 0)
                        if raw.get("deregistercriticalserviceafter")
                        else None
                    ),
                )
            )
        with self._changed:
            self.instances[service_id] = Instance(
                service_id,
                name,
                spec.get("address") or "",
                int(spec.get("port") or 0),
                list(spec.get("tags") or []),
                checks,
            )
        self._bump()

    def deregister(self, service_id: str) -> bool:
        with self._changed:
            found = self.instances.pop(service_id, None)
        if found is not None:
            self._bump()
        return found is not None

    def health(self, name: str, passing: bool) -> list[dict[str, Any]]:
        with self._changed:
            chosen = [i for i in self.instances.values() if i.name == name]
        entries = []
        for instance in sorted(chosen, key=lambda i: i.id):
            if passing and any(c.status != "passing" for c in instance.checks):
                continue
            entries.append(
                {
                    "Node": NODE,
                    "Service": {
                        "ID": instance.id,
                        "Service": instance.name,
                        "Tags": instance.tags,
                        "Address": instance.address,
                        "Port": instance.port,
                    },
                    "Checks": [
                        {
                            "Node": NODE["Node"],
                            "CheckID": check.id,
                            "Name": check.name,
                            "Status": check.status,
                            "ServiceID": instance.id,
                            "ServiceName": instance.name,
                            "Type": "grpc",
                        }
                        for check in instance.checks
                    ],
                }
            )
        return entries

    def wait_past(self, index: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self._changed:
            while self.index <= index and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(min(left, 0.5))

    # -- checks ---------------------------------------------------------------------

    def _run_checks(self) -> None:
        last: dict[str, float] = {}
        while not self._stop.is_set():
            with self._changed:
                pending = [(i, c) for i in self.instances.values() for c in i.checks]
            now = time.monotonic()
            for instance, check in pending:
                every = self.check_every or check.interval
                if now - last.get(check.id, 0.0) < every:
                    continue
                last[check.id] = now
                status = _grpc_status(check.grpc)
                if status != check.status:
                    check.status = status
                    check.critical_since = now
                    self._bump()
                if (
                    check.status == "critical"
                    and check.deregister_after is not None
                    and now - check.critical_since >= check.deregister_after
                ):
                    self.deregister(instance.id)
            self._stop.wait(0.05)

    # -- HTTP -----------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def _answer(self, status: int, body: Any, index: int | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if index is not None:
                    self.send_header("X-Consul-Index", str(index))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                url = urlsplit(self.path)
                agent.requests.append(f"PUT {url.path}")
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if url.path == "/v1/agent/service/register":
                    try:
                        agent.register(json.loads(raw))
                    except (ValueError, KeyError) as exc:
                        self._answer(400, {"error": str(exc)})
                        return
                    self._answer(200, None)
                elif url.path.startswith("/v1/agent/service/deregister/"):
                    service_id = url.path.rsplit("/", 1)[1]
                    if agent.deregister(service_id):
                        self._answer(200, None)
                    else:
                        self._answer(404, {"error": f"Unknown service ID {service_id!r}"})
                else:
                    self._answer(404, {"error": "not in the stand-in"})

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                agent.requests.append(f"GET {url.path}?{url.query}")
                query = parse_qs(url.query, keep_blank_values=True)
                if not url.path.startswith("/v1/health/service/"):
                    self._answer(404, {"error": "not in the stand-in"})
                    return
                name = url.path.rsplit("/", 1)[1]
                if "index" in query:
                    wait = _seconds(query.get("wait", [""])[0], 300)
                    agent.wait_past(int(query["index"][0]), min(wait, 600))
                index = agent.index
                passing = "passing" in query and query["passing"][0] not in ("false", "0")
                self._answer(200, agent.health(name, passing), index)

        return Handler

    def start(self) -> ConsulStandIn:
        for target in (self._server.serve_forever, self._run_checks):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()


def _grpc_status(target: str) -> str:
    """Consul's gRPC check: `host:port[/service]`, SERVING passes, anything else fails."""
    address, _, service = target.partition("/")
    try:
        with grpc.insecure_channel(address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1
            )
    except grpc.RpcError:
        return "critical"
    return "passing" if answer.status == health_pb2.HealthCheckResponse.SERVING else "critical"
