"""The `grassroots` command line against a running platform: tailing events from where a
stream stopped, importing a GeoJSON file into a new layer, and errors as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import SDK, XINGMING_ID, Platform
from grassroots_sdk import Client
from grassroots_sdk.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def cli(platform: Platform, *args: str, key: str | None = None):
    env = {"GRASSROOTS_URL": platform.url, "GRASSROOTS_API_KEY": key or platform.village_key}
    return runner.invoke(app, list(args), env=env)


def test_events_tail_resumes_after_the_last_event_id(platform: Platform) -> None:
    with Client(platform.url, api_key=platform.village_key) as client:
        first = client.events.create("roads.damage", "Tail check one", 121.159, 31.289)
        stream = client.events.stream(last_event_id="0")
        for change in stream:
            if change.event.id == first.id:
                break
        stream.close()
        resume_at = stream.last_event_id
        assert resume_at is not None
        second = client.events.create("roads.damage", "Tail check two", 121.159, 31.289)

    tail = ["events", "tail", "--last-event-id", resume_at, "--count", "1"]
    as_json = cli(platform, "--json", *tail)
    assert as_json.exit_code == 0, as_json.stderr
    change = json.loads(as_json.stdout.strip())
    assert change["event"]["id"] == second.id and change["type"] == "event.reported"
    assert change["offset"] > int(resume_at)

    readable = cli(platform, *tail)
    assert readable.exit_code == 0, readable.stderr
    assert second.id in readable.stdout and "Tail check two" in readable.stdout
    assert f"--last-event-id {change['offset']}" in readable.stderr


def test_layers_import_creates_the_layer_from_a_geojson_file(
    platform: Platform, tmp_path: Path
) -> None:
    wells = tmp_path / "wells.geojson"
    wells.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "id": f"well-{n}",
                        "geometry": {"type": "Point", "coordinates": [121.1601 + n / 1000, 31.29]},
                        "properties": {"depth_m": 12.5 + n, "name": f"Well {n}"},
                    }
                    for n in range(3)
                ],
            }
        )
    )
    args = ["--tenant", XINGMING_ID, "--json", "layers", "import", str(wells)]
    result = cli(platform, *args, "--layer", "wells", "--create", key=platform.town_key)
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["files"] == [{"file": str(wells), "imported": 3, "repaired": 0}]
    assert answer["layer"]["geometry_type"] == "Point"
    assert {f["name"]: f["type"] for f in answer["layer"]["fields"]} == {
        "depth_m": "number",
        "name": "string",
    }
    with Client(platform.url, api_key=platform.village_key) as client:
        assert client.layers.get("wells").feature_count == 3

    table = cli(platform, "--tenant", XINGMING_ID, "layers", "list", key=platform.town_key)
    assert table.exit_code == 0 and "wells" in table.stdout


def test_a_missing_layer_is_one_line_on_stderr(platform: Platform, tmp_path: Path) -> None:
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    result = cli(platform, "layers", "import", str(empty), "--layer", "no-such-layer")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: layer 'no-such-layer' not found (add --create to make it)"
    ]


def test_a_refused_import_names_the_field_and_request_id(
    platform: Platform, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "geo')
    args = ["--tenant", XINGMING_ID, "layers", "import", str(broken), "--layer", "wells"]
    result = cli(platform, *args, key=platform.town_key)
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: 400 INVALID_ARGUMENT: ") and "[request " in line


def test_the_installed_command_fails_in_one_line_without_a_key(platform: Platform) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")}
    env["GRASSROOTS_URL"] = platform.url
    env["PYTHONPATH"] = str(SDK)
    done = subprocess.run(
        [sys.executable, "-m", "grassroots_sdk.cli", "layers", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and done.stderr.startswith(
        "error: 401 UNAUTHENTICATED: "
    )
    assert done.stdout == ""
