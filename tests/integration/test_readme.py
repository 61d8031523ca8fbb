"""Every README command that talks to a running platform works against `make run`'s demo.

The commands are read from README.md as it stands, so an example someone adds or
changes is tested too; each must exit 0 and get only 2xx answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import grpc
import httpx
import ngsi_ld_client
import pytest
from readme_commands import README, Command, Reader, commands

from devstack import demo_forms
from devstack.demo_identity import DemoCredentials
from devstack.stack import Stack


def test_readme_has_commands_for_every_part_a_newcomer_tries() -> None:
    text = "\n".join(c.text for c in commands(README.read_text()))
    for needle in (
        "/v1/me",
        "/auth/token",
        "/events",
        "/open311/v2",
        "/layers",
        "ogrinfo",
        "grpcurl",
        "events tail --from-start",
    ):
        assert needle in text, f"README.md shows no command for {needle}"


def test_command_splitting_keeps_quoted_newlines_and_continuations() -> None:
    text = "x\n```sh\nA=1   # it's a comment\ncurl -s a \\\n  -d '{\"b\":\n 1}'\necho done\n```\n"
    assert [c.text for c in commands(text)] == [
        "A=1   # it's a comment",
        "curl -s a \\\n  -d '{\"b\":\n 1}'",
        "echo done",
    ]
    assert commands(text)[1].line == 4


# Each command re-runs the README's earlier assignments, so the walk grows faster than
# the README; on the loaded CI machine it outgrew the suite's default five minutes.
@pytest.mark.timeout(900)
def test_every_readme_command_works_against_the_demo(stack: Stack, tmp_path: Path) -> None:
    stack.install_demo_events()  # make run's demo has its four weeks of history too
    stack.install_demo_command()  # and its handler profiles and routing rules
    stack.install_demo_plans()  # and its crowd-surge plan and daily visits
    stack.install_demo_forms()  # and its fire-safety inspections and their three reports
    stack.install_demo_twin()  # and its sensors
    demo = DemoCredentials.load(stack.credentials_file)
    reader = Reader(stack, demo, tmp_path)
    failures: list[str] = []
    ran: list[Command] = []
    for command in commands(README.read_text()):
        try:
            statuses, output = reader.run(command)
        except AssertionError as exc:
            failures.append(f"{command}\n    {exc}")
            continue
        ran.append(command)
        bad = [s for s in statuses if not 200 <= s < 300]
        if bad:
            failures.append(f"{command}\n    HTTP {bad}: {output[:300]}")
    assert not failures, f"{len(failures)} README commands fail:\n" + "\n".join(failures)
    assert len(ran) >= 30
    assert _device_event(stack), "the README's mosquitto_pub reading raised no event"


def _device_event(stack: Stack) -> dict[str, object] | None:
    """The event the README's device reading (31.5 cm on gauge-east-bridge, over the demo
    rule's 30) raised, as its `events?q=gauge-east-bridge` command lists it."""
    token = _token(stack, "xingming.secretary")
    url = f"{stack.config.gateway_url}/v1/tenants/sh-jiading-anting-xingming/events"
    deadline = time.monotonic() + 30
    while True:
        answer = httpx.get(
            url,
            params={"q": "gauge-east-bridge"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        found = [
            e
            for e in answer.json()["events"]
            if e["category"] == "safety.flooding" and "level_cm 31.5" in e["description"]
        ]
        if found or time.monotonic() > deadline:
            return found[0] if found else None
        time.sleep(0.5)


def _token(stack: Stack, username: str) -> str:
    """An access token, waiting as the platform asks while sign-in is busy (a loaded
    machine makes the password checks queue)."""
    account = DemoCredentials.load(stack.credentials_file).account(username)
    form = {"grant_type": "password", "username": username, "password": account.password}
    for _ in range(30):
        answer = httpx.post(f"{stack.config.gateway_url}/v1/auth/token", data=form, timeout=30)
        if answer.status_code not in (429, 503):
            break
        time.sleep(float(answer.headers.get("retry-after", "2")))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _python_block_with(text: str, needle: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    found = [b for b in blocks if needle in b]
    assert found, f"README.md has no Python example using {needle}"
    return found[0]


@pytest.mark.timeout(900)
def test_the_fiware_client_example_runs_with_the_key_the_readme_makes(stack: Stack) -> None:
    """The ngsildclient example once failed for a newcomer: it needs a key with
    `twin:read` (the demo keys hold none) and a virtualenv of its own. The README now
    makes the key; this runs its example unchanged but for the key and the port."""
    text = README.read_text()
    scopes = re.search(r'"display_name": "FIWARE tools", "scopes": (\[[^]]*\])', text)
    assert scopes, "README.md shows no command making the FIWARE tools' key"
    assert "pip install" in text and "ngsildclient==" in text
    base = stack.config.gateway_url
    token = _token(stack, "xingming.secretary")
    with httpx.Client(
        base_url=f"{base}/v1/tenants/sh-jiading-anting-xingming",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as http:
        app = http.post(
            "/apps", json={"display_name": "FIWARE tools", "scopes": json.loads(scopes[1])}
        )
        assert app.status_code == 201, app.text
        gauge = http.post(
            "/entities",
            json={
                "entity_id": "gauge-east-bridge",
                "entity_type": "WaterLevelGauge",
                "location": {"longitude": 121.1605, "latitude": 31.2905},
            },
        )
        assert gauge.status_code in (201, 409), gauge.text
        reading = http.post(
            f"{base}/v1/tenants/sh-jiading-anting-xingming:ingestTelemetry",
            json={"entities": ["gauge-east-bridge"], "properties": ["level_cm"], "values": [31.5]},
        )
        assert reading.status_code == 200, reading.text
    script = _python_block_with(text, "ngsildclient")
    assert '"grk_..."' in script and "port=8080" in script
    script = script.replace('"grk_..."', json.dumps(app.json()["key"]))
    script = script.replace("port=8080", f"port={stack.config.gateway_port}")
    done = subprocess.run(
        [str(ngsi_ld_client.python()), "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith(("GRASSROOTS_", "PYTHON"))},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "31.5"


def test_make_run_on_a_later_day_finds_the_demo_inspections_already_there(stack: Stack) -> None:
    """The demo dates its inspections from the day it starts, under fixed request_ids: a
    start on a later day repeats each request_id with another date, which the forms
    service refuses as not a retry; `make run` must still start, adding nothing."""
    first = stack.install_demo_forms()
    base = stack.config.gateway_url
    token = _token(stack, "anting.officer")

    def inspections() -> int:
        run = httpx.post(
            f"{base}/v1/tenants/sh-jiading-anting/reportTemplates/town-statistics:run",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert run.status_code == 201, run.text
        return int(run.json()["record_count"])

    before = inspections()
    assert before >= first["records"]

    async def later() -> dict[str, int]:
        async with grpc.aio.insecure_channel(stack.config.address("empower")) as channel:
            when = date.today() + timedelta(days=3)
            return await demo_forms.install(channel, stack.config.map_file, when)

    assert asyncio.run(later()) == first
    assert inspections() == before
