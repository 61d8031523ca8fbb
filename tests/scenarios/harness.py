"""One running platform for every scenario loop test, and what the tests do with it.

The platform is the real one (every component, the gateway, SQLite stores, the local
bus) started once per test session on free ports, with the demo town's people and
handlers installed. Scenarios are installed through the composer; loops are driven
through the gateway's REST API as a resident's phone, a grid worker's app or the
town's dashboard would. Command's clock reads an offset file, so a test moves SLA
clocks forward (`platform.advance(minutes=6)`) instead of sleeping.

Loop tests share the platform, so each test works in its own grid cells (`cell(...)`
hands out a different one per call) and asserts on its own events and tasks only;
moving the clock forward escalates other open tasks too, which no test relies on.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pyogrio
import shapely

from devstack import demo_identity
from devstack.stack import SERVICES, Stack, StackConfig
from scenarios.composer import Applied, Composer, Plan, catalog
from services.kit import signing, tenancy
from services.kit.clock import move_forward

XINGMING = "sh/jiading/anting/xingming"
XIANGYANG = "sh/jiading/anting/xiangyang"
TOWN = "sh/jiading/anting"
T = TypeVar("T")

# Loop tests drive many calls quickly; the per-tenant budget is not what they test.
LIMITS = {
    "GRASSROOTS_GATEWAY_TENANT_REQUESTS_PER_MINUTE": "10000000",
    "GRASSROOTS_GATEWAY_ANONYMOUS_REQUESTS_PER_MINUTE": "100000",
}


@dataclass(frozen=True)
class Cell:
    """A grid cell of the demo town, a point inside it, and its grid worker."""

    village: str
    cell_id: str
    lon: float
    lat: float
    grid_worker: str


def demo_cells(demo_gpkg: Path) -> list[Cell]:
    meta, _fids, geometry, columns = pyogrio.raw.read(str(demo_gpkg), layer="grid_cells")
    fields = list(meta["fields"])
    points = shapely.point_on_surface(shapely.from_wkb(geometry))
    return [
        Cell(str(t), str(c), float(p.x), float(p.y), str(w))
        for t, c, w, p in zip(
            columns[fields.index("tenant")],
            columns[fields.index("grid_cell_id")],
            columns[fields.index("grid_worker_id")],
            points,
            strict=True,
        )
    ]


def patiently(send: Callable[[], httpx.Response], within: float = 60.0) -> httpx.Response:
    """Send again after the wait a 503 asks for (Retry-After), as a well-behaved client
    does: password checks are queued and a busy machine answers 'try again' (ADR 24)."""
    deadline = time.monotonic() + within
    while True:
        response = send()
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(min(float(response.headers.get("retry-after", "1") or 1), 5.0))


class Api(httpx.Client):
    """The gateway as one caller sees it; `ok` asserts a 2xx and returns the JSON."""

    def ok(self, method: str, url: str, **kwargs: Any) -> Any:
        response = patiently(lambda: self.request(method, url, **kwargs))
        assert response.is_success, f"{method} {url} -> {response.status_code} {response.text}"
        return response.json() if response.content else None


@dataclass
class Platform:
    stack: Stack
    clock_file: Path
    cells: list[Cell]
    used_file: Path | None = None  # cells taken, kept across processes that attach
    _given: list[str] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict)
    _residents: dict[str, str] = field(default_factory=dict)
    user_names: dict[str, str] = field(default_factory=dict)  # username -> users/...

    # ---- who calls ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.stack.config.gateway_url

    def credentials(self) -> demo_identity.DemoCredentials:
        return demo_identity.DemoCredentials.load(self.stack.credentials_file)

    def town_app(self) -> Api:
        """The town's operations dashboard (an app key)."""
        return Api(base_url=self.url, headers=self.stack.api_headers(), timeout=20)

    def user(self, username: str) -> Api:
        """A demo account signed in (its first password changed if it must be)."""
        token = self._tokens.get(username) or self._sign_in(username)
        return Api(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=20)

    def _sign_in(self, username: str) -> str:
        credentials = self.credentials()
        account = next(a for a in credentials.accounts if a.username == username)
        issued = patiently(
            lambda: httpx.post(
                f"{self.url}/v1/auth/token",
                data={
                    "grant_type": "password",
                    "username": username,
                    "password": account.password,
                },
                timeout=20,
            )
        )
        assert issued.is_success, issued.text
        body = issued.json()
        if body.get("password_change_required"):
            new = secrets.token_urlsafe(18)
            changed = patiently(
                lambda: httpx.post(
                    f"{self.url}/v1/me:changePassword",
                    json={"current_password": account.password, "new_password": new},
                    headers={"Authorization": f"Bearer {body['access_token']}"},
                    timeout=20,
                )
            )
            assert changed.is_success, changed.text
            body = changed.json()
            account.password = new  # later sign-ins (and attached test runs) use it
            credentials.save(self.stack.credentials_file)
        self._tokens[username] = body["access_token"]
        return str(body["access_token"])

    def resident(self, village: str = XINGMING, n: int = 0) -> Api:
        """The session's n-th resident account of a village (made once, then reused:
        each account costs password hashing)."""
        key = f"{village}#resident{n}"
        if key not in self._residents:
            self._residents[key] = self.new_user(village, ["resident"])
        return self.user(self._residents[key])

    def new_user(self, village: str, roles: list[str], kind: str = "resident") -> str:
        """A fresh account in the village, appointed by its secretary; its username."""
        slug = village.rsplit("/", 1)[-1]
        username = f"{slug}.{roles[0]}.{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(18)
        secretary = self.user(f"{slug}.secretary")
        made = secretary.ok(
            "POST",
            f"/v1/tenants/{tenancy.path_to_id(village)}/users",
            json={
                "username": username,
                "display_name": username,
                "kind": kind,
                "roles": roles,
                "password": password,
            },
        )
        credentials = self.credentials()
        credentials.accounts.append(demo_identity.DemoAccount(username, password, village, roles))
        credentials.save(self.stack.credentials_file)
        self.user_names[username] = f"users/{made['id']}"  # as a token names its subject
        return username

    def new_handler_user(self, village: str, roles: list[str]) -> tuple[str, str]:
        """A fresh staff account that can hold a handler profile: (its username, and its
        user name `users/...`, which the profile names; command checks it with identity)."""
        username = self.new_user(village, roles, kind="staff")
        return username, self.user_names[username]

    def handler_user(self, village: str, username: str) -> str:
        """The user name (`users/...`) of a demo handler, as tasks name their handler."""
        found = self.town_app().ok(
            "GET", f"/v1/tenants/{tenancy.path_to_id(village)}/handlers/{username}"
        )
        return str(found["user"])

    # ---- what happened ------------------------------------------------------------------

    def events(self, village: str = XINGMING, **query: str) -> list[dict[str, Any]]:
        """Events of a village as the town sees them (`category=`, `grid_cell=`, `state=`)."""
        listed = self.town_app().ok(
            "GET", f"/v1/tenants/{tenancy.path_to_id(village)}/events", params=query
        )
        return list(listed["events"])

    def task_of(self, event: str, within: float = 20.0) -> dict[str, Any]:
        """The task command made for an event (waits for dispatch)."""
        village_id = event.split("/")[1]
        town = self.town_app()

        def find() -> dict[str, Any] | None:
            tasks = town.ok("GET", f"/v1/tenants/{village_id}/tasks", params={"event": event})
            return next(iter(tasks["tasks"]), None)

        return eventually(find, within)

    # ---- where --------------------------------------------------------------------------

    def cell(self, village: str = XINGMING) -> Cell:
        """A grid cell of the village no other test has been given yet, or, once every
        cell has been given, the one given longest ago (so tests rarely meet)."""
        given: list[str] = []
        if self.used_file is not None and self.used_file.exists():
            given = self.used_file.read_text().split()
        given = given or self._given
        ours = [c for c in self.cells if c.village == village]
        if not ours:
            raise AssertionError(f"no grid cell in {village}")
        fresh = [c for c in ours if c.cell_id not in given]
        chosen = fresh[0] if fresh else min(ours, key=lambda c: given.index(c.cell_id))
        given = [g for g in given if g != chosen.cell_id] + [chosen.cell_id]
        self._given = given
        if self.used_file is not None:
            self.used_file.write_text("\n".join(given))
        return chosen

    # ---- time ---------------------------------------------------------------------------

    def advance(self, *, hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
        """Move command's clock (SLA deadlines, timers, plans) and the twin's inactivity
        checks forward."""
        move_forward(self.clock_file, hours * 3600 + minutes * 60 + seconds)

    def now_ms(self) -> int:
        """The platform's time (the wall clock moved by `advance`), in milliseconds: the
        observed time a device reporting now would give its readings."""
        try:
            offset = float(self.clock_file.read_text().strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return int((time.time() + offset) * 1000)

    def now(self) -> datetime:
        """Command's clock: the wall clock plus what tests have moved it forward."""
        try:
            offset = float(self.clock_file.read_text().strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return datetime.now(UTC) + timedelta(seconds=offset)

    # ---- scenarios ----------------------------------------------------------------------

    def _run(self, work: Callable[[Composer], Any]) -> Any:
        async def run() -> Any:
            addresses = {name: self.stack.config.address(name) for name in SERVICES}
            async with Composer.connect(addresses) as composer:
                return await work(composer)

        return asyncio.run(run())

    def install(
        self, scenario: str, village: str = XINGMING, overrides: Mapping[str, Any] | None = None
    ) -> Applied:
        manifest = catalog.get(scenario)
        applied: Applied = self._run(lambda c: c.apply(village, manifest, overrides))
        assert applied.state == "complete", applied
        return applied

    def plan(
        self, scenario: str, village: str = XINGMING, overrides: Mapping[str, Any] | None = None
    ) -> Plan:
        manifest = catalog.get(scenario)
        plan: Plan = self._run(lambda c: c.plan(village, manifest, overrides))
        return plan

    def composer(self, work: Callable[[Composer], Any]) -> Any:
        """Run `work(composer)` (a coroutine function) against the platform."""
        return self._run(work)


def eventually(check: Callable[[], T | None], within: float = 20.0, every: float = 0.1) -> T:
    """The first truthy answer of `check`, polled; fails naming what was last seen."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"not reached within {within}s; last seen: {last!r}")


ATTACH_VARIABLE = "GRASSROOTS_SCENARIO_PLATFORM"


def _describe(config: StackConfig, clock_file: Path) -> dict[str, Any]:
    return {
        "data_dir": str(config.data_dir),
        "gateway_port": config.gateway_port,
        "edge_port": config.edge_port,
        "grpc_ports": config.grpc_ports,
        "metrics_ports": config.metrics_ports,
        "clock_file": str(clock_file),
        # The throwaway key ring the processes verify with, so an attached test signs alike.
        "key_ring": config.dev_secrets()[signing.KEYS_VARIABLE],
    }


def attach(description: Path) -> Platform:
    """A platform another process started (`python -m tests.scenarios.harness`), so a
    scenario author re-runs one loop test in seconds instead of starting everything."""
    data = json.loads(description.read_text())
    config = StackConfig(
        data_dir=Path(data["data_dir"]),
        gateway_port=data["gateway_port"],
        edge_port=data["edge_port"],
        grpc_ports=data["grpc_ports"],
        metrics_ports=data["metrics_ports"],
    )
    signing.configure(signing.KeyRing.parse(data["key_ring"]))
    return Platform(
        Stack(config),
        Path(data["clock_file"]),
        demo_cells(config.map_file),
        used_file=description.with_name("used-cells.txt"),
    )


@contextmanager
def running_platform(demo_gpkg: Path, root: Path) -> Iterator[Platform]:
    """Start every component and the gateway on SQLite with the demo town's people."""
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    clock_file = root / "command-clock-offset"
    config.extra_env.update(LIMITS)
    config.extra_env["GRASSROOTS_COMMAND_CLOCK_OFFSET_FILE"] = str(clock_file)
    # The twin's inactivity checks follow the same clock, looked at every second.
    config.extra_env["GRASSROOTS_TWIN_CLOCK_OFFSET_FILE"] = str(clock_file)
    config.extra_env["GRASSROOTS_TWIN_SILENCE_CHECK_SECONDS"] = "1"
    # No shared Redis bus tells the twin of layer edits here: it looks every second.
    config.extra_env["GRASSROOTS_TWIN_LAYER_RECHECK_SECONDS"] = "1"
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    stack = Stack(config)
    # Loop tests use the gateway's REST API; the gRPC edge for apps is not started.
    for name in (*SERVICES, "gateway"):
        stack.start(name)
    try:
        stack.wait_ready(90)
        stack.install_demo_identities()
        stack.install_demo_command()
        # The composer in this process signs with the stack's key ring.
        signing.configure(signing.KeyRing.parse(config.dev_secrets()[signing.KEYS_VARIABLE]))
        described = root / "platform.json"
        described.touch(mode=0o600)
        described.write_text(json.dumps(_describe(config, clock_file)))
        yield Platform(stack, clock_file, demo_cells(config.map_file))
    finally:
        stack.stop_all()


def main() -> None:
    """Start a platform for loop tests and keep it up until Ctrl-C; point the tests at it
    with GRASSROOTS_SCENARIO_PLATFORM=<root>/platform.json."""
    import argparse
    import tempfile

    from devstack import demo_village

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", type=Path, nargs="?", default=None)
    root = parser.parse_args().root or Path(tempfile.mkdtemp(prefix="scenarios-"))
    root.mkdir(parents=True, exist_ok=True)
    gpkg = root / "demo-village.gpkg"
    if not gpkg.exists():
        demo_village.generate(gpkg)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # `kill <pid>` stops the platform's processes too
    with running_platform(gpkg, root / "platform") as _:
        print(f"export {ATTACH_VARIABLE}={root / 'platform' / 'platform.json'}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
