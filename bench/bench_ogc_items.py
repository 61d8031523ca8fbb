"""OGC API - Features items, 100 features a page: our gateway against pygeoapi.

Both serve the same features: Xingming's buildings from the demo village (collection
`sh-jiading-anting-xingming.buildings` in our API). Ours is the whole platform as real
processes (`devstack.stack.Stack`, gateway -> map service over gRPC); pygeoapi (from
PyPI) runs under uvicorn from its own virtual environment, `.bench/pygeoapi-venv`, which
this script creates on first use so that pygeoapi never lands in the project's
environment. pygeoapi 0.22 and later need Python 3.12; the venv is made with the newest
Python here whose sqlite3 can load extensions, so on Debian 12 that is python3 3.11 and
pygeoapi 0.21.

pygeoapi reads the same features through its `SQLiteGPKG` provider when SpatiaLite is
installed (`apt-get install -y libsqlite3-mod-spatialite`), twice: from a GeoPackage
(`pygeoapi`), and from a SpatiaLite copy (`pygeoapi-sl`, the provider's faster and
concurrency-safe case). Without SpatiaLite it uses `OGR` when GDAL's Python bindings are
there, and failing both its GeoJSON provider on a GeoJSON export, which the output flags.

One client (httpx, N concurrent workers) drives every server with
`/collections/{id}/items?limit=100&offset=K&f=json`, K cycling over the pages: a warm-up,
then the servers take turns in short slices of the measured duration, so load from other
processes on the machine falls on all of them alike. Servers and client share the same
cores, so the CPU time each server's processes spent per request (from /proc) is
printed too: it is the steadier figure.

    .venv/bin/python bench/bench_ogc_items.py [--duration 10] [--warmup 2] [--workers 1 8]

Issue target: ours at least 5x pygeoapi's requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyogrio.raw
import shapely
from common import QUICK, UNTHROTTLED_GATEWAY_ENV

from devstack import demo_village
from devstack.stack import Stack, StackConfig, free_port

REPO = Path(__file__).resolve().parent.parent

VENV = REPO / ".bench" / "pygeoapi-venv"
VENV_PYTHON = VENV / "bin" / "python"
# uvicorn[standard] gives pygeoapi the same uvloop + httptools server our gateway runs on;
# starlette is pygeoapi's ASGI flavour and not among its own requirements.
VENV_PACKAGES = ("pygeoapi>=0.21,<0.25", "uvicorn[standard]", "starlette")
TENANT = "sh/jiading/anting/xingming"
COLLECTION = "sh-jiading-anting-xingming.buildings"
ID_FIELD = "building_id"
PROPERTIES = ("grid_cell_id", "floors", "use", "households")  # as our buildings layer has
PAGE = 100
TARGET_RATIO = 5.0
CHECK_OFFSET = 200
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Runs in a candidate interpreter: its version, and whether its sqlite3 loads extensions.
PROBE_PYTHON = """
import sqlite3, sys
try:
    sqlite3.connect(":memory:").enable_load_extension(True)
    ok = True
except AttributeError:
    ok = False
print(sys.version_info[0], sys.version_info[1], int(ok))
"""
# Runs in the pygeoapi venv: what its providers can use here.
PROBE_PROVIDERS = """
import json, os, platform, sqlite3
import pygeoapi
found = {"version": pygeoapi.__version__, "python": platform.python_version(),
         "load_extension": False, "spatialite": False, "gdal": False}
conn = sqlite3.connect(":memory:")
try:
    conn.enable_load_extension(True)
    found["load_extension"] = True
    conn.load_extension(os.environ.get("SPATIALITE_LIBRARY_PATH", "mod_spatialite"))
    found["spatialite"] = True
except Exception:
    pass
try:
    from osgeo import ogr  # noqa: F401
    found["gdal"] = True
except Exception:
    pass
print(json.dumps(found))
"""


# -- pygeoapi's environment -----------------------------------------------------------


def _probe(python: str) -> tuple[tuple[int, int], bool] | None:
    try:
        out = subprocess.run(
            [python, "-c", PROBE_PYTHON], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return (int(out[0]), int(out[1])), out[2] == "1"


def choose_python() -> str:
    """An interpreter for the venv: one whose sqlite3 loads extensions, newest first.

    pygeoapi 0.22 and later need Python 3.12; pyenv-built Pythons often lack loadable
    SQLite extensions while the distribution's python3 has them.
    """
    names = ["python3.14", "python3.13", "python3.12", "python3", "/usr/bin/python3"]
    base = getattr(sys, "_base_executable", sys.executable)
    seen: dict[str, tuple[tuple[int, int], bool]] = {}
    for name in [*names, base]:
        path = shutil.which(name)
        if path is None or os.path.realpath(path) in seen:
            continue
        found = _probe(path)
        if found is not None:
            seen[os.path.realpath(path)] = found
    if not seen:
        raise RuntimeError("no Python 3 interpreter found to create the pygeoapi venv")
    best = max(seen.items(), key=lambda item: (item[1][1], item[1][0]))
    return best[0]


def ensure_venv() -> None:
    if not VENV_PYTHON.exists():
        python = choose_python()
        print(f"creating {VENV.relative_to(REPO)} with {python} (first run only)", flush=True)
        VENV.parent.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run([python, "-m", "venv", str(VENV)], check=True)
        except subprocess.CalledProcessError:
            shutil.rmtree(VENV, ignore_errors=True)
            sys.exit(
                f"could not create the venv with {python}: on Debian/Ubuntu, install "
                "python3-venv (apt-get install -y python3-venv) and rerun"
            )
    probe = subprocess.run(
        [str(VENV_PYTHON), "-c", "import pygeoapi, starlette, uvicorn, uvloop, httptools"],
        capture_output=True,
    )
    if probe.returncode != 0:
        print(f"installing {' '.join(VENV_PACKAGES)} into the venv", flush=True)
        pip = subprocess.run(
            [str(VENV_PYTHON), "-m", "pip", "install", "-q", *VENV_PACKAGES],
            capture_output=True,
            text=True,
        )
        if pip.returncode != 0:
            print(pip.stdout[-3000:], pip.stderr[-3000:], file=sys.stderr)
            sys.exit(f"pip could not install {' '.join(VENV_PACKAGES)} into {VENV}")


@dataclass(frozen=True)
class Backend:
    version: str  # pygeoapi's
    python: str  # the venv's
    provider: str  # pygeoapi provider name


@dataclass(frozen=True)
class Variant:
    """One pygeoapi setup: provider, file and what to call it in the output."""

    label: str
    provider: str
    data: Path
    note: str
    caveat: str = ""  # printed with every ratio against it
    on_errors: str = ""  # printed when it answered with errors


def choose_backend() -> Backend:
    out = subprocess.run(
        [str(VENV_PYTHON), "-c", PROBE_PROVIDERS],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = json.loads(out)
    version, python = found["version"], found["python"]
    if found["spatialite"]:
        return Backend(version, python, "SQLiteGPKG")
    if not found["load_extension"]:
        why = (
            f"the venv's Python ({os.path.realpath(VENV_PYTHON)}) cannot load SQLite "
            f"extensions; delete {VENV.relative_to(REPO)} and rerun on a machine whose "
            "python3 can (Debian's /usr/bin/python3 can)"
        )
    else:
        why = (
            "SpatiaLite is not installed: run `apt-get install -y libsqlite3-mod-spatialite` "
            "(Debian/Ubuntu) and rerun"
        )
    print(f"NOTE: pygeoapi's SQLiteGPKG provider cannot run here: {why}.", flush=True)
    if found["gdal"]:
        return Backend(version, python, "OGR")
    print(
        "NOTE: GDAL's Python bindings (osgeo) are missing too: FALLING BACK to pygeoapi's "
        "GeoJSON provider on the same features exported to GeoJSON. It rereads the whole "
        "file on every request, so its figures are no fair GeoPackage comparison.",
        flush=True,
    )
    return Backend(version, python, "GeoJSON")


# -- data -------------------------------------------------------------------------------


def export_village(demo: Path, out_dir: Path, backend: Backend) -> list[Variant]:
    """Xingming's buildings with our layer's fields, in the files pygeoapi will serve.

    With SpatiaLite there are two: the GeoPackage, and the same rows in a SpatiaLite
    database. pygeoapi's SQLiteGPKG provider opens a connection per request and, on a
    GeoPackage, drops and re-creates a VirtualGPKG table in the file each time (a write
    transaction per read, which concurrent requests race on: HTTP 500 "no such table");
    on a SpatiaLite database it only reads, which is its best case.
    """
    meta, _fids, geometry, fields = pyogrio.raw.read(
        demo,
        layer="buildings",
        columns=[ID_FIELD, *PROPERTIES],
        where=f"tenant = '{TENANT}'",
    )

    def write(name: str, driver: str, **options: str) -> Path:
        path = out_dir / name
        pyogrio.raw.write(
            str(path),
            geometry=geometry,
            field_data=list(fields),
            fields=list(meta["fields"]),
            layer="buildings",
            driver=driver,
            geometry_type=meta["geometry_type"],
            crs=meta["crs"],
            dataset_options=options or None,
        )
        return path

    if backend.provider == "GeoJSON":
        path = write("xingming-buildings.geojson", "GeoJSON")
        caveat = "FALLBACK: GeoJSON provider, no GeoPackage comparison"
        return [Variant("pygeoapi", "GeoJSON", path, "GeoJSON provider, FALLBACK", caveat)]
    gpkg = write("xingming-buildings.gpkg", "GPKG")
    if backend.provider == "OGR":
        return [Variant("pygeoapi", "OGR", gpkg, "OGR provider on the GeoPackage")]
    spatialite = write("xingming-buildings.sqlite", "SQLite", SPATIALITE="YES")
    return [
        Variant(
            "pygeoapi",
            "SQLiteGPKG",
            gpkg,
            "SQLiteGPKG provider on the GeoPackage",
            on_errors="its SQLiteGPKG provider drops and re-creates a VirtualGPKG table in "
            "the GeoPackage on every request, and concurrent requests race on it (HTTP 500: "
            "'no such table: vgpkg_buildings', InvalidPluginError)",
        ),
        Variant(
            "pygeoapi-sl", "SQLiteGPKG", spatialite, "SQLiteGPKG provider on a SpatiaLite copy"
        ),
    ]


def write_config(directory: Path, port: int, variant: Variant) -> Path:
    """pygeoapi's configuration; JSON is YAML, so no YAML writer is needed."""
    url = f"http://127.0.0.1:{port}"
    provider: dict[str, object] = {
        "type": "feature",
        "name": variant.provider,
        "data": str(variant.data),
        "id_field": ID_FIELD,
    }
    if variant.provider == "SQLiteGPKG":
        provider["table"] = "buildings"
    elif variant.provider == "OGR":
        provider["data"] = {"source_type": "GPKG", "source": str(variant.data)}
        provider["layer"] = "buildings"
    info = pyogrio.read_info(variant.data, force_total_bounds=True)
    config = {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": url,
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "language": "en-US",
            "cors": False,
            "pretty_print": False,
            "limits": {"default_items": 10, "max_items": 10_000},
            "map": {"url": f"{url}/tiles/{{z}}/{{x}}/{{y}}.png", "attribution": "none"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "Grassroots benchmark",
                "description": "Synthetic demo village buildings",
                "keywords": ["benchmark"],
                "keywords_type": "theme",
                "terms_of_service": url,
                "url": url,
            },
            "license": {"name": "synthetic data", "url": url},
            "provider": {"name": "Grassroots", "url": url},
            "contact": {"name": "Bench, Grassroots", "url": url},
        },
        "resources": {
            COLLECTION: {
                "type": "collection",
                "title": "Buildings (sh/jiading/anting/xingming)",
                "description": "SYNTHETIC demo buildings",
                "keywords": ["buildings"],
                "extents": {
                    "spatial": {
                        "bbox": [float(v) for v in info["total_bounds"]],
                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
                    }
                },
                "providers": [provider],
            }
        },
    }
    path = directory / "pygeoapi-config.yml"
    path.write_text(json.dumps(config, indent=2))
    return path


# -- processes --------------------------------------------------------------------------


def wait_http(url: str, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not answer {url} within {timeout:.0f}s")


@contextlib.contextmanager
def pygeoapi_server(work: Path, variant: Variant) -> Iterator[tuple[str, int]]:
    """pygeoapi under uvicorn on a free loopback port; yields its base URL and pid."""
    work = work / variant.label
    work.mkdir()
    port = free_port()
    config = write_config(work, port, variant)
    openapi = work / "pygeoapi-openapi.yml"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYGEOAPI_CONFIG=str(config), PYGEOAPI_OPENAPI=str(openapi))
    subprocess.run(
        [str(VENV / "bin" / "pygeoapi"), "openapi", "generate", str(config), "-of", str(openapi)],
        env=env,
        check=True,
        cwd=work,
        stdout=subprocess.DEVNULL,
    )
    log_path = work / "pygeoapi.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            *(str(VENV_PYTHON), "-m", "uvicorn", "pygeoapi.starlette_app:APP"),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--no-access-log", "--log-level", "warning"),
        ],
        env=env,
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/collections?f=json", process, variant.label, 60)
        yield url, process.pid
    except Exception:
        log.flush()
        tail = log_path.read_text(errors="replace")[-4000:]
        print(f"-- end of {variant.label}'s log:\n{tail}", file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@contextlib.contextmanager
def our_platform(work: Path, demo: Path) -> Iterator[Stack]:
    config = StackConfig.on_free_ports(work / "data", log_dir=work / "logs")
    config.extra_env.update(UNTHROTTLED_GATEWAY_ENV)
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo, config.map_file)
    stack = Stack(config)
    try:
        stack.start_all()
        stack.wait_ready(90)
        stack.install_demo_identities()  # its key reads the village's layers
        yield stack
    finally:
        stack.stop_all()


# -- measuring --------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass(frozen=True)
class Run:
    label: str
    requests: int  # answered with HTTP 200
    errors: int  # any other status, or the connection dropped
    seconds: float
    latencies: np.ndarray  # seconds, of the 200s
    cpu: dict[str, float]  # server process -> CPU seconds over the run
    client_cpu: float
    causes: Counter[str]  # error cause -> count

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def cpu_ms_per_request(self) -> float:
        return 1000 * sum(self.cpu.values()) / max(self.requests + self.errors, 1)


@dataclass
class Tally:
    latencies: list[float]
    errors: int = 0
    # What the errors were: an HTTP status, or "dropped" for a lost connection.
    causes: Counter[str] = field(default_factory=Counter)

    def failed(self, cause: str) -> None:
        self.errors += 1
        self.causes[cause] += 1


async def drive(
    client: httpx.AsyncClient, urls: list[str], workers: int, seconds: float
) -> tuple[Tally, float]:
    """`workers` concurrent loops over `urls` for `seconds`."""
    tally = Tally([])
    counter = iter(range(1 << 62))
    end = time.perf_counter() + seconds

    async def worker() -> None:
        while True:
            started = time.perf_counter()
            if started >= end:
                return
            try:
                response = await client.get(urls[next(counter) % len(urls)])
            except httpx.TransportError:  # the server dropped the connection
                tally.failed("dropped")
                continue
            if response.status_code == 200:
                tally.latencies.append(time.perf_counter() - started)
            else:
                tally.failed(str(response.status_code))

    begun = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return tally, time.perf_counter() - begun


@dataclass(frozen=True)
class Target:
    label: str
    urls: list[str]
    pids: dict[str, int]  # the processes whose CPU time counts for this server
    headers: dict[str, str] = field(default_factory=dict)  # credentials, for ours


async def measure(
    targets: list[Target], workers: int, warmup: float, duration: float, rounds: int
) -> list[Run]:
    """Warm every server up, then measure them in turns, `rounds` slices of the duration
    each, so that load from elsewhere on the machine falls on all of them alike."""
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    clients = [httpx.AsyncClient(limits=limits, timeout=60, headers=t.headers) for t in targets]
    tallies = [Tally([]) for _ in targets]
    seconds = [0.0] * len(targets)
    cpu = [dict.fromkeys(t.pids, 0.0) for t in targets]
    client_cpu = [0.0] * len(targets)
    try:
        for client, target in zip(clients, targets, strict=True):
            await drive(client, target.urls, workers, warmup)
        for _ in range(rounds):
            for i, (client, target) in enumerate(zip(clients, targets, strict=True)):
                cpu_before = {name: cpu_seconds(pid) for name, pid in target.pids.items()}
                client_before = time.process_time()
                tally, spent = await drive(client, target.urls, workers, duration / rounds)
                client_cpu[i] += time.process_time() - client_before
                for name, pid in target.pids.items():
                    cpu[i][name] += cpu_seconds(pid) - cpu_before[name]
                tallies[i].latencies += tally.latencies
                tallies[i].errors += tally.errors
                tallies[i].causes += tally.causes
                seconds[i] += spent
    finally:
        for client in clients:
            await client.aclose()
    return [
        Run(t.label, len(y.latencies), y.errors, s, np.array(y.latencies), c, cc, y.causes)
        for t, y, s, c, cc in zip(targets, tallies, seconds, cpu, client_cpu, strict=True)
    ]


def our_page(ours: str, headers: dict[str, str]) -> dict[str, Any]:
    """The page every server is checked on, from ours (which must answer it in full)."""
    query = f"limit={PAGE}&offset={CHECK_OFFSET}&f=json"
    answer = httpx.get(
        f"{ours}/collections/{COLLECTION}/items?{query}", headers=headers, timeout=30
    )
    assert answer.status_code == 200, f"ours answered {answer.status_code}: {answer.text[:200]}"
    page: dict[str, Any] = answer.json()
    assert len(page["features"]) == PAGE, f"ours returned {len(page['features'])} features"
    return page


def check_same_page(a: dict[str, Any], label: str, theirs: str) -> int:
    """Assert one page holds the same 100 features from both; returns numberMatched."""
    query = f"limit={PAGE}&offset={CHECK_OFFSET}&f=json"
    b = httpx.get(f"{theirs}/collections/{COLLECTION}/items?{query}", timeout=30).json()
    assert len(a["features"]) == PAGE, f"ours returned {len(a['features'])} features"
    assert len(b["features"]) == PAGE, f"{label} returned {len(b['features'])} features"
    ids_a = [str(f["id"]) for f in a["features"]]
    ids_b = [str(f["id"]) for f in b["features"]]
    assert ids_a == ids_b, f"{label}: other features: {ids_a[:3]}... vs {ids_b[:3]}..."
    for fa, fb in zip(a["features"], b["features"], strict=True):
        ga = shapely.geometry.shape(fa["geometry"])
        gb = shapely.geometry.shape(fb["geometry"])
        assert shapely.equals_exact(ga, gb, tolerance=1e-9), f"{fa['id']}: geometries differ"
        for name in PROPERTIES:
            assert fa["properties"][name] == fb["properties"][name], f"{fa['id']}.{name}"
    return int(a["numberMatched"])


def describe(run: Run) -> str:
    p50, p99 = np.percentile(run.latencies * 1000, [50, 99]) if run.requests else (0, 0)
    total = max(run.requests + run.errors, 1)
    per_process = ", ".join(f"{k} {1000 * v / total:.2f}" for k, v in run.cpu.items())
    causes = ", ".join(f"{cause} x{n}" for cause, n in run.causes.most_common())
    errors = (
        f"   {run.errors} HTTP errors ({run.errors / total:.0%}: {causes})" if run.errors else ""
    )
    return (
        f"  {run.label:<12}{run.rate:8.1f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   "
        f"server CPU {run.cpu_ms_per_request():6.2f} ms/req ({per_process}); "
        f"client CPU {1000 * run.client_cpu / total:.2f} ms/req{errors}"
    )


def report(workers: int, ours: Run, theirs: list[Run], variants: dict[str, Variant]) -> None:
    print(f"{workers} concurrent worker(s):")
    for run in (ours, *theirs):
        print(describe(run))
    if ours.errors:
        raise SystemExit(f"ours failed {ours.errors} requests: the benchmark is broken")
    for run in theirs:
        variant = variants[run.label]
        ratio = ours.rate / run.rate if run.rate else float("inf")
        cpu_ratio = run.cpu_ms_per_request() / ours.cpu_ms_per_request()
        verdict = "met" if ratio >= TARGET_RATIO else "missed"
        notes = [variant.caveat] if variant.caveat else []
        if run.errors:
            notes.append(f"{run.label} failed {run.errors} requests")
        note = f" [{'; '.join(notes)}]" if notes else ""
        print(
            f"  ratio ours/{run.label}: {ratio:.2f}x req/s (target >= {TARGET_RATIO:.0f}x: "
            f"{verdict}), {cpu_ratio:.2f}x less server CPU per request{note}"
        )
    for run in theirs:
        if run.errors and variants[run.label].on_errors:
            print(f"  {run.label}'s errors: {variants[run.label].on_errors}")
    print(flush=True)


def _stop_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds measured per server and worker count"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="warm-up seconds per server and worker count"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--rounds", type=int, default=5, help="turns the servers take within each duration"
    )
    args = parser.parse_args(argv)
    # A TERM (a timeout, say) unwinds like an error, so every server is stopped.
    signal.signal(signal.SIGTERM, _stop_on_signal)

    if QUICK:
        # pygeoapi's environment takes minutes to build from the package index; quick
        # mode (make test) measures ours alone, so it needs nothing from outside.
        args.duration, args.warmup, args.workers, args.rounds = 2.0, 0.5, [4], 1
    else:
        ensure_venv()
    backend = None if QUICK else choose_backend()
    with tempfile.TemporaryDirectory(prefix="bench-ogc-") as tmp:
        work = Path(tmp)
        demo = work / "demo-village.gpkg"
        summary = demo_village.generate(demo)
        variants = [] if backend is None else export_village(demo, work, backend)
        print(f"demo village: {summary.buildings} buildings; serving {TENANT}'s:")
        print(f"  ours: gateway /ogc -> map service (gRPC), {os.cpu_count()} CPUs shared by all")
        if backend is None:
            print("  (quick mode: pygeoapi is not compared)")
        for variant in variants:
            assert backend is not None
            print(
                f"  {variant.label}: pygeoapi {backend.version} on Python {backend.python}, "
                f"{variant.note}"
            )
        with contextlib.ExitStack() as running:
            stack = running.enter_context(our_platform(work / "stack", demo))
            ours = f"{stack.config.gateway_url}/ogc"
            headers = stack.api_headers()
            page = our_page(ours, headers)
            total = int(page["numberMatched"])
            servers = {v.label: running.enter_context(pygeoapi_server(work, v)) for v in variants}
            for label, (theirs, _pid) in servers.items():
                check_same_page(page, label, theirs)
            offsets = list(range(0, total - PAGE + 1, PAGE))
            print(
                f"same {PAGE} features (ids, geometries, properties) on page offset="
                f"{CHECK_OFFSET} from every server: ok; {total} features, "
                f"cycling over {len(offsets)} full pages",
                flush=True,
            )
            path = f"/collections/{COLLECTION}/items?limit={PAGE}&offset={{}}&f=json"
            our_pids = {
                "gateway": stack.processes["gateway"].pid,
                "map": stack.processes["map"].pid,
            }
            print(
                f"\nOGC API items, {PAGE} features a page: per server {args.warmup:g}s warm-up, "
                f"then {args.duration:g}s in {args.rounds} turns; load average now "
                f"{load_average()} on {os.cpu_count()} CPUs (other processes on this machine "
                "skew req/s; server CPU per request, from /proc, is the steadier figure)"
            )
            urls = [path.format(k) for k in offsets]
            targets = [
                Target("ours", [ours + u for u in urls], our_pids, headers),
                *(
                    Target(lb, [url + u for u in urls], {lb: pid})
                    for lb, (url, pid) in servers.items()
                ),
            ]
            for workers in args.workers:
                runs = asyncio.run(
                    measure(targets, workers, args.warmup, args.duration, args.rounds)
                )
                report(workers, runs[0], runs[1:], {v.label: v for v in variants})
            print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
