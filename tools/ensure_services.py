"""Make sure the servers the test suite talks to are there before `make test` runs it.

PostgreSQL with PostGIS (map store suite), Redis (bus and rate-limit suites) and
Mosquitto (the twin's MQTT ingestion) must answer on 127.0.0.1, and Chromium (the
browser suite) and Mosquitto's clients (`mosquitto_pub`, which the README's device
example runs) must be installed. wrk (the events benchmark's load generator) is
installed too where it can be; without it that benchmark says so and skips its wrk
figures, so its absence alone does not stop the suite. On a fresh Debian
machine, as root, this installs the missing packages and starts the servers; as anyone
else it starts what is installed and otherwise stops with one line naming what to
install. Only the standard library is used, so it runs before the virtualenv exists.

The decision (`plan`) is a pure function of what was found, so it is unit tested
without touching the machine; `main` probes, plans and carries the plan out.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
POSTGRES_PORT = 5432
REDIS_PORT = 6379
MOSQUITTO_PORT = 1883
MOSQUITTO_CONFIG = "/etc/mosquitto/mosquitto.conf"
CJK_FONT_PACKAGE = "fonts-noto-cjk"
CJK_FONT_FILES = "/usr/share/fonts/opentype/noto/NotoSans*CJK*"


@dataclass(frozen=True)
class Found:
    """What the probes saw on this machine."""

    root: bool
    apt: bool
    postgres_version: str | None  # newest installed cluster version, None when absent
    postgis_installed: bool
    postgres_up: bool
    redis_installed: bool
    redis_up: bool
    mosquitto_installed: bool
    mosquitto_up: bool
    # Debian's Chromium, which the browser suite drives (never a downloaded browser).
    chromium_installed: bool = True
    mosquitto_clients_installed: bool = True
    wrk_installed: bool = True
    # A CJK font, so the browser suite's screenshots show Chinese, not boxes.
    cjk_font_installed: bool = True


@dataclass(frozen=True)
class Action:
    """One step: `install` Debian packages, `start` a server, `fail` with a message, or
    `note` one (something optional is missing)."""

    kind: str  # "install" | "start" | "fail" | "note"
    target: str  # packages (space separated) for install, server name for start
    message: str = ""


def plan(found: Found) -> list[Action]:
    """The steps that bring the machine to a state where the suite can run."""
    can_install = found.root and found.apt
    packages: list[str] = []
    missing: list[str] = []
    if found.postgres_version is None and not found.postgres_up:
        packages.append("postgresql postgresql-postgis")
        missing.append("PostgreSQL with PostGIS")
    elif found.postgres_version is not None and not found.postgis_installed:
        packages.append(f"postgresql-{found.postgres_version}-postgis-3")
        missing.append("PostGIS")
    if not found.redis_installed and not found.redis_up:
        packages.append("redis-server")
        missing.append("Redis")
    if not found.mosquitto_installed and not found.mosquitto_up:
        packages.append("mosquitto")
        missing.append("Mosquitto")
    if not found.chromium_installed:
        packages.append("chromium")
        missing.append("Chromium")
    if not found.mosquitto_clients_installed:
        packages.append("mosquitto-clients")
        missing.append("mosquitto_pub")
    optional: list[Action] = []
    if not found.wrk_installed:
        if can_install:
            packages.append("wrk")
        else:
            optional.append(
                Action(
                    "note",
                    "wrk",
                    "the events benchmark skips its wrk figures: wrk is not installed "
                    "(Debian: apt-get install wrk)",
                )
            )
    if not found.cjk_font_installed:
        if can_install:
            packages.append(CJK_FONT_PACKAGE)
        else:
            optional.append(
                Action(
                    "note",
                    CJK_FONT_PACKAGE,
                    "the browser suite's screenshots show boxes for Chinese: no CJK font "
                    f"is installed (Debian: apt-get install {CJK_FONT_PACKAGE})",
                )
            )
    if packages and not can_install:
        return [
            Action(
                "fail",
                " ".join(packages),
                f"tests need {', '.join(missing)} on {HOST}: install them "
                f"(Debian: apt-get install {' '.join(packages)}) or run `make test` as root",
            )
        ]
    actions = [Action("install", " ".join(packages))] if packages else []
    actions.extend(optional)
    if not found.postgres_up:
        actions.append(Action("start", "postgresql"))
    if not found.redis_up:
        actions.append(Action("start", "redis"))
    if not found.mosquitto_up:
        actions.append(Action("start", "mosquitto"))
    return actions


# -- probing and doing -------------------------------------------------------------------


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def postgres_version() -> str | None:
    versions = sorted(
        (os.path.basename(p) for p in glob.glob("/usr/lib/postgresql/*")),
        key=lambda v: [int(part) for part in v.split(".") if part.isdigit()],
    )
    return versions[-1] if versions else None


def probe() -> Found:
    version = postgres_version()
    return Found(
        root=os.geteuid() == 0,
        apt=shutil.which("apt-get") is not None,
        postgres_version=version,
        postgis_installed=bool(
            version and os.path.exists(f"/usr/share/postgresql/{version}/extension/postgis.control")
        ),
        postgres_up=listening(POSTGRES_PORT),
        redis_installed=shutil.which("redis-server") is not None,
        redis_up=listening(REDIS_PORT),
        mosquitto_installed=_mosquitto() is not None,
        mosquitto_up=listening(MOSQUITTO_PORT),
        chromium_installed=shutil.which("chromium") is not None,
        mosquitto_clients_installed=shutil.which("mosquitto_pub") is not None,
        wrk_installed=shutil.which("wrk") is not None,
        cjk_font_installed=bool(glob.glob(CJK_FONT_FILES)),
    )


def _mosquitto() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def _wait(port: int, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if listening(port):
            return
        time.sleep(0.3)
    raise SystemExit(f"{what} did not start listening on {HOST}:{port}")


def install(packages: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    names = packages.split()
    version = postgres_version()
    if "postgresql-postgis" in names:
        # The PostGIS package carries the server's major version in its name, known
        # only once the server package is in.
        names.remove("postgresql-postgis")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *names], check=True, env=env)
        version = postgres_version()
        names = [f"postgresql-{version}-postgis-3"]
    else:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *names], check=True, env=env)


def start(server: str) -> None:
    if server == "postgresql":
        version = postgres_version()
        _run("pg_ctlcluster", "--skip-systemctl-redirect", str(version), "main", "start")
        _wait(POSTGRES_PORT, "PostgreSQL")
        _trust_loopback(str(version))
    elif server == "redis":
        _run(
            "redis-server",
            *("--daemonize", "yes", "--bind", HOST, "--port", str(REDIS_PORT)),
            *("--save", "", "--appendonly", "no"),
        )
        _wait(REDIS_PORT, "Redis")
    elif server == "mosquitto":
        if os.path.exists(MOSQUITTO_CONFIG) and os.geteuid() == 0:
            # Debian's configuration keeps the broker's queue on disk (persistence) and
            # writes its pid under /run/mosquitto, which a reboot empties.
            os.makedirs("/run/mosquitto", exist_ok=True)
            shutil.chown("/run/mosquitto", "mosquitto")
        _run(*mosquitto_command(str(_mosquitto()), os.path.exists(MOSQUITTO_CONFIG)))
        _wait(MOSQUITTO_PORT, "Mosquitto")


def mosquitto_command(binary: str, config_exists: bool) -> list[str]:
    """The broker as a daemon: with the packaged configuration when there is one
    (loopback listener, persistent queue), else on the loopback port alone."""
    if config_exists:
        return [binary, "-d", "-c", MOSQUITTO_CONFIG]
    return [binary, "-d", "-p", str(MOSQUITTO_PORT)]


def _trust_loopback(version: str) -> None:
    """A fresh Debian cluster asks for a password on TCP; the suite logs in as postgres
    from loopback without one, as development machines do."""
    probe_login = subprocess.run(
        ["psql", "-h", HOST, "-U", "postgres", "-d", "postgres", "-tAc", "select 1"],
        capture_output=True,
        env=dict(os.environ, PGCONNECT_TIMEOUT="3"),
        stdin=subprocess.DEVNULL,
    )
    if probe_login.returncode == 0 or os.geteuid() != 0:
        return
    hba = f"/etc/postgresql/{version}/main/pg_hba.conf"
    with open(hba) as handle:
        text = handle.read()
    with open(hba, "w") as handle:
        handle.write(f"host all postgres {HOST}/32 trust\n" + text)
    _run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "reload")
    time.sleep(1)


def main() -> int:
    for action in plan(probe()):
        if action.kind == "fail":
            print(f"make test: {action.message}", file=sys.stderr)
            return 1
        if action.kind == "note":
            print(f"make test: {action.message}", flush=True)
        elif action.kind == "install":
            print(f"make test: installing {action.target}", flush=True)
            install(action.target)
        else:
            print(f"make test: starting {action.target}", flush=True)
            start(action.target)
    version = postgres_version()
    if version is not None and os.geteuid() == 0:
        _trust_loopback(version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
