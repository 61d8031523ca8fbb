"""The town's web pages in a real browser, on a real platform, at phone width.

Every page is opened at 375 px, checked with axe-core (no serious or critical
violations), screenshotted into tests/browser/artifacts/ and timed with Navigation
Timing (printed; the target is under a second).
"""

from __future__ import annotations

import re
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import shapely

from devstack.demo_identity import DemoCredentials
from devstack.stack import Stack, StackConfig
from grassroots.empower.v1 import catalog_service_pb2 as catalog_pb
from grassroots.empower.v1 import catalog_service_pb2_grpc as catalog_grpc
from grassroots.events.v1 import events_service_pb2 as events_pb
from grassroots.events.v1 import events_service_pb2_grpc as events_grpc
from grassroots.twin.v1 import twin_service_pb2 as twin_pb
from grassroots.twin.v1 import twin_service_pb2_grpc as twin_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.crs import wgs84_to_gcj02
from services.kit.principal import Principal
from tests.browser.web import (
    accessibility_problems,
    no_horizontal_scroll,
    phone,
    record,
    sign_in,
    until,
    wait_ready,
    watch,
)
from tests.conftest import seed_demo_identities
from tests.integration.conftest import GENEROUS_LIMITS

XINGMING = "sh-jiading-anting-xingming"
TOWN = "sh-jiading-anting"
XINGMING_PATH = "sh/jiading/anting/xingming"
XIANGYANG = "sh-jiading-anting-xiangyang"
XIANGYANG_PATH = "sh/jiading/anting/xiangyang"


@pytest.fixture(scope="module")
def stack(
    demo_gpkg: Path, demo_identities: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The platform with the demo town's people, handlers and routing rules; phones
    here report their position in GCJ-02, as many phone browsers in China do."""
    root = tmp_path_factory.mktemp("web-pages")
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    config.extra_env.update(GENEROUS_LIMITS)
    config.extra_env["GRASSROOTS_GATEWAY_DEVICE_CRS"] = "GCJ-02"
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    seed_demo_identities(demo_identities, config.data_dir)
    platform = Stack(config)
    platform.start_all()
    try:
        platform.wait_ready(90)
        platform.install_demo_identities()
        platform.install_demo_command()
        yield platform
    finally:
        platform.stop_all()


@pytest.fixture(scope="module")
def credentials(stack: Stack) -> DemoCredentials:
    return DemoCredentials.load(stack.credentials_file)


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> str:
    return stack.config.gateway_url


@pytest.mark.integration
def test_landing_page_links_every_page_in_the_browsers_language(gateway, browser, axe_source):
    context = phone(browser, gateway, locale="zh-CN")
    page = context.new_page()
    problems = watch(page)
    page.goto("/")
    wait_ready(page)
    assert page.locator("h1").inner_text() == "镇村页面"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    links = {a.get_attribute("href") for a in page.locator("main a").all()}
    assert {
        "/web/resident.html",
        "/web/worker.html",
        "/web/board.html",
        "/web/supermarket.html",
        "/web/signin.html",
        "/docs",
    } <= links
    page.click("#lang")  # the switch names the other language and changes to it
    page.wait_for_selector("h1:has-text('Town and village pages')")
    assert page.evaluate("localStorage.getItem('grassroots.lang')") == "en"
    assert no_horizontal_scroll(page)
    assert not accessibility_problems(page, axe_source)
    record(page, "landing")
    assert not problems, problems
    context.close()


@pytest.mark.integration
def test_sign_in_refreshes_and_signing_out_revokes_the_refresh_token(
    gateway, browser, axe_source, credentials
):
    account = credentials.account("xingming.secretary")
    context = phone(browser, gateway)
    page = context.new_page()
    problems = watch(page)
    page.goto("/web/signin.html?next=/")
    wait_ready(page)
    assert not accessibility_problems(page, axe_source)
    record(page, "signin")
    page.fill("#username", account.username)
    page.fill("#password", "not-the-password")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#alert:has-text('Sign-in failed: wrong username or password')")
    problems.clear()  # Chromium logs the expected 400 as a failed resource load
    page.fill("#password", account.password)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(f"{gateway}/")
    wait_ready(page)
    assert "sh/jiading/anting/xingming" in page.locator("#who").inner_text()
    held = page.evaluate("JSON.parse(sessionStorage.getItem('grassroots.session'))")
    assert held["me"]["tenant"] == "sh/jiading/anting/xingming"
    # An expired access token is replaced from the refresh token on the next call.
    page.evaluate(
        """() => { const key = 'grassroots.session';
                   const s = JSON.parse(sessionStorage.getItem(key));
                   s.expires_at = 0; sessionStorage.setItem(key, JSON.stringify(s)); }"""
    )
    me = page.evaluate("import('/web/js/lib/api.js').then(m => m.api('/v1/me'))")
    assert me["tenant"] == "sh/jiading/anting/xingming"
    renewed = page.evaluate("JSON.parse(sessionStorage.getItem('grassroots.session'))")
    assert renewed["access_token"] != held["access_token"]
    page.click("#signout")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('grassroots.session')") is None
    refused = httpx.post(
        f"{gateway}/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": renewed["refresh_token"]},
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert not problems, problems
    context.close()


@pytest.mark.integration
def test_pages_keep_the_strict_policy_and_may_ask_for_the_position(gateway):
    for path in ("/", "/web/resident.html", "/web/worker.html", "/web/signin.html"):
        answer = httpx.get(gateway + path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp, csp
        assert "geolocation=(self)" in answer.headers["permissions-policy"]
    api = httpx.get(gateway + "/healthz")
    assert "geolocation=()" in api.headers["permissions-policy"]
    config = httpx.get(gateway + "/web/config.json").json()
    assert config == {
        "tile_url": "",
        "tile_attribution": "",
        "tile_crs": "EPSG:4326",
        "device_crs": "GCJ-02",
        "public_tenant": "sh",
    }


@pytest.mark.integration
def test_a_passer_by_reports_without_an_account_follows_the_receipt_and_rates_it(
    gateway, browser, axe_source, credentials, grid_index
):
    """Where the village allows it (ADR 35): no sign-in, the receipt kept on the phone."""
    secretary = credentials.account("xingming.secretary")
    staff = _token(gateway, secretary.username, secretary.password)
    lon, lat = _cell_points(grid_index, 3)[2]
    glon, glat = (float(v[0]) for v in wgs84_to_gcj02(np.array([lon]), np.array([lat])))
    context = phone(
        browser,
        gateway,
        geolocation={"longitude": glon, "latitude": glat},
        permissions=["geolocation"],
    )
    page = context.new_page()
    problems = watch(page)
    page.goto("/web/resident.html")
    wait_ready(page)
    assert page.is_visible("#anonymous-note") and page.is_visible("#signin-link")
    assert not accessibility_problems(page, axe_source)
    # The map is framed to the villages' public outlines; a tap outside them is
    # refused before anything is uploaded or sent.
    assert page.get_attribute("#map", "data-villages") == "2"
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.click("#map", position={"x": 4, "y": box["height"] - 4})
    page.wait_for_selector("#alert:has-text('none of the villages')")
    page.select_option("#category", "environment.sewage")
    page.fill("#description", "Outside (browser test, never sent)")
    page.set_input_files("#photo", {"name": "x.png", "mimeType": "image/png", "buffer": _png(1)})
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "Anonymously" in r.url else None)
    page.evaluate("document.getElementById('alert').textContent = ''")
    page.click("#send")
    page.wait_for_selector("#alert:has-text('none of the villages')")
    assert not sent, sent

    def send(text: str) -> None:
        page.click("#locate")
        page.wait_for_selector("#pin:has-text('Pin at')")
        page.select_option("#category", "environment.sewage")
        page.fill("#description", text)
        page.fill("#address", "By the bridge")
        # A photo goes with it, without an account too (ADR 36).
        page.set_input_files(
            "#photo", {"name": "drain.png", "mimeType": "image/png", "buffer": _png(4)}
        )
        page.click("#send")

    # Xingming has not said yes: the page says so and nothing is stored.
    send("Drain blocked by leaves (browser test, refused)")
    page.wait_for_selector("#alert:has-text('only from signed-in residents')")
    problems.clear()  # Chromium logs the expected 403 as a failed resource load
    settings = httpx.patch(
        f"{gateway}/v1/tenants/{XINGMING}/intakeSettings",
        headers=staff,
        json={"anonymous_reports": True, "anonymous_reports_per_hour": 50},
    )
    assert settings.status_code == 200, settings.text

    send("Drain blocked by leaves (browser test, no account)")
    page.wait_for_selector("#receipt-box:not([hidden])")
    # Sent, the form starts empty: nothing of it slips into the next report.
    assert page.evaluate(
        "['category', 'description', 'address', 'photo']"
        ".map((id) => document.getElementById(id).value)"
    ) == ["", "", "", ""]
    assert page.inner_text("#pin") == "No pin yet"
    receipt = page.inner_text("#receipt")
    event_id = receipt.split(".", 1)[0]
    page.wait_for_selector(f"#mine li:has-text('{event_id}')")
    assert page.evaluate("JSON.parse(localStorage.getItem('grassroots.receipts'))") == [receipt]
    assert no_horizontal_scroll(page)
    record(page, "resident-anonymous")
    url = f"{gateway}/v1/tenants/{XINGMING}/events/{event_id}"
    stored = httpx.get(url, headers=staff).json()
    assert stored["village"] == XINGMING_PATH and stored["timeline"][0]["actor"].startswith(
        "anonymous:"
    )
    (photo,) = stored["media_uris"]  # kept by the village the place lies in
    assert photo.startswith(f"tenants/{XINGMING}/attachments/at_")
    kept = httpx.get(f"{gateway}/v1/{photo}", headers=staff)
    assert kept.status_code == 200 and kept.headers["content-type"] == "image/png"
    for state in ("accepted", "dispatched", "in_progress", "resolved"):
        current = httpx.get(url, headers=staff).json()["state"]
        if current != state:
            httpx.post(f"{url}:transition", headers=staff, json={"state": state})
    assert httpx.get(url, headers=staff).json()["state"] == "resolved"

    page.fill("#follow-id", receipt)
    page.click("#follow-form button")
    page.wait_for_selector("#evaluate-form")
    page.check("input[name=score][value='4']")
    page.dblclick("#evaluate-form button[type=submit]")  # one rating, no error
    page.wait_for_selector("#followed:has-text('You rated it 4')")
    assert httpx.get(url, headers=staff).json()["state"] == "closed"
    assert not page.inner_text("#alert"), page.inner_text("#alert")
    assert not problems, problems
    context.close()


def _png(shade: int) -> bytes:
    """A small real PNG (a browser draws it), one shade per photo."""
    width, height = 48, 32
    rows = b"".join(
        b"\x00" + bytes((40 * shade, 120, 200 - 40 * shade)) * width for _ in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _token(gateway: str, username: str, password: str) -> dict[str, str]:
    answer = httpx.post(
        f"{gateway}/v1/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _cell_points(grid_index, count: int) -> list[tuple[float, float]]:
    """WGS84 points inside different grid cells of Xingming."""
    polygons = [
        p
        for p, c in zip(grid_index.polygons, grid_index.cells, strict=True)
        if c.village == XINGMING_PATH
    ]
    return [(pt.x, pt.y) for pt in (shapely.point_on_surface(p) for p in polygons[:count])]


def _task_for(stack: Stack, event_name: str, timeout: float = 15.0) -> dict[str, Any]:
    """The task command made for the event, once it is offered to a handler."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = httpx.get(
            f"{stack.config.gateway_url}/v1/tenants/{TOWN}/tasks",
            params={"event": event_name},
            headers=stack.api_headers(),
        ).json()["tasks"]
        if tasks and tasks[0]["handler"]:
            return tasks[0]
        assert time.monotonic() < deadline, f"no task offered for {event_name}"
        time.sleep(0.2)


def _handler_username(stack: Stack, user: str) -> str:
    """The handler profile of `users/...`: its id is the grid worker's username."""
    handlers = httpx.get(
        f"{stack.config.gateway_url}/v1/tenants/{XINGMING}/handlers",
        params={"page_size": 1000},
        headers=stack.api_headers(),
    ).json()["handlers"]
    return next(h["id"] for h in handlers if h["user"] == user)


def _api(stack: Stack, path: str) -> dict[str, Any]:
    answer = httpx.get(f"{stack.config.gateway_url}{path}", headers=stack.api_headers())
    answer.raise_for_status()
    return answer.json()


@pytest.mark.integration
def test_resident_reports_the_board_sees_it_the_grid_worker_resolves_the_resident_rates_it(
    stack, gateway, browser, axe_source, credentials, grid_index
):
    secretary = credentials.account("xingming.secretary")
    made = httpx.post(
        f"{gateway}/v1/tenants/{XINGMING}/users",
        headers=_token(gateway, secretary.username, secretary.password),
        json={
            "username": "resident.li",
            "display_name": "Li (invented resident)",
            "kind": "resident",
            "roles": ["resident"],
            "password": "set-by-the-secretary",
        },
    )
    assert made.status_code == 201, made.text
    lon, lat = _cell_points(grid_index, 1)[0]
    glon, glat = (float(v[0]) for v in wgs84_to_gcj02(np.array([lon]), np.array([lat])))
    resident = phone(
        browser,
        gateway,
        geolocation={"longitude": glon, "latitude": glat},
        permissions=["geolocation"],
    )
    page = resident.new_page()
    problems = watch(page)
    page.goto("/web/resident.html")
    page.click("#signin-link")  # without it the page takes reports without an account
    sign_in(page, "resident.li", "set-by-the-secretary")
    page.wait_for_selector("#change-form:not([hidden])")  # a password someone else set
    page.fill("#new-password", "the-residents-own-1")
    page.click("#change-form button[type=submit]")
    page.wait_for_url("**/web/resident.html")
    wait_ready(page)
    assert no_horizontal_scroll(page)
    assert not accessibility_problems(page, axe_source)
    record(page, "resident")

    # The town's board watches while the report is handled.
    officer = credentials.account("anting.officer")
    watching = phone(browser, gateway)
    board = watching.new_page()
    board_problems = watch(board)
    board.goto("/web/board.html")
    sign_in(board, officer.username, officer.password)
    board.wait_for_url("**/web/board.html")
    wait_ready(board)
    board.wait_for_selector("#live-state:has-text('live')")

    # The phone's position (GCJ-02 here) pins the report; the API stores WGS84.
    page.click("#locate")
    page.wait_for_selector("#pin:has-text('Pin at')")
    page.select_option("#category", "safety.fire_hazard")
    page.fill("#description", "Firewood stacked against the kitchen wall (browser test)")
    page.set_input_files("#photo", {"name": "wall.png", "mimeType": "image/png", "buffer": _png(1)})
    page.click("#send")
    page.wait_for_selector("#receipt-box:not([hidden])")
    receipt = page.inner_text("#receipt")
    sent = time.monotonic()
    event = _api(stack, f"/v1/tenants/{TOWN}/events/{receipt}")
    assert time.monotonic() - sent < 2.0
    assert event["category"] == "safety.fire_hazard" and event["source"] == "resident"
    assert event["village"] == XINGMING_PATH
    (photo,) = event["media_uris"]  # the photo, kept by the events service (ADR 36)
    assert photo.startswith(f"tenants/{XINGMING}/attachments/at_")
    assert abs(event["location"]["longitude"] - lon) < 1e-5, (event["location"], lon)
    assert abs(event["location"]["latitude"] - lat) < 1e-5, (event["location"], lat)
    page.wait_for_selector(f"#mine li:has-text('{receipt}')")
    board.wait_for_selector(f"#live li[data-event='{receipt}']", timeout=2_000)
    record(page, "resident-sent")

    # Command offered it to the nearest grid worker, who handles it on the worker page.
    task = _task_for(stack, event["name"])
    username = _handler_username(stack, task["handler"])
    worker = phone(browser, gateway)
    wpage = worker.new_page()
    worker_problems = watch(wpage)
    wpage.goto("/web/worker.html")
    sign_in(wpage, username, credentials.account(username).password)
    wpage.wait_for_url("**/web/worker.html")
    wait_ready(wpage)
    item = f"li[data-task='{task['id']}']"
    wpage.wait_for_selector(f"{item} [data-action=accept]")
    target = task["location"]
    assert wpage.get_attribute(f"{item} a", "href").startswith(
        f"geo:{target['latitude']},{target['longitude']}"
    )
    assert "Firewood" in wpage.inner_text(item)
    assert no_horizontal_scroll(wpage)
    assert not accessibility_problems(wpage, axe_source)
    record(wpage, "worker")
    wpage.click(f"{item} [data-action=accept]")
    wpage.click(f"{item} [data-action=start]")  # check in
    wpage.wait_for_selector(f"{item} .state.in_progress")
    wpage.fill(f"{item} textarea", "Firewood moved to the yard, resident told why")
    wpage.set_input_files(
        f"{item} input[type=file]", {"name": "yard.png", "mimeType": "image/png", "buffer": _png(2)}
    )
    wpage.click(f"{item} [data-action=resolve]")
    try:  # a send refused for load (503) waits and is retried every 15 s
        wpage.wait_for_selector(item, state="detached", timeout=60_000)
    except Exception:
        raise AssertionError(wpage.inner_text("main")) from None
    done = _api(stack, f"/v1/{task['name']}")
    assert done["state"] == "done" and done["resolution_note"].startswith("Firewood moved")
    (result_photo,) = done["media_uris"]
    assert result_photo.startswith(f"tenants/{XINGMING}/attachments/at_")
    assert _api(stack, f"/v1/{event['name']}")["state"] == "resolved"
    board.wait_for_selector(f"#live li[data-event='{receipt}'] .state.resolved", timeout=5_000)
    # The board's timeline shows the report's photo and the resolution's.
    board.click(f"#live li[data-event='{receipt}'] button")
    board.wait_for_selector("#detail-photos img.photo")
    board.wait_for_selector("#detail-event li[data-state=resolved] img.photo")
    assert board.evaluate(
        "[...document.querySelectorAll('#detail-event img.photo')].every(i => i.naturalWidth > 0)"
    )
    record(board, "board-photos")

    # The resident follows the report by its receipt and rates the work.
    page.fill("#follow-id", receipt)
    page.click("#follow-form button")
    page.wait_for_selector("#evaluate-form")
    assert not accessibility_problems(page, axe_source)
    record(page, "resident-evaluate")
    page.check("input[name=score][value='5']")
    page.fill("#evaluate-text", "Quick, thank you")
    page.click("#evaluate-form button[type=submit]")
    page.wait_for_selector("#followed:has-text('You rated it 5')")
    rated = _api(stack, f"/v1/{event['name']}")
    assert rated["state"] == "closed" and rated["evaluation"]["score"] == 5
    board.wait_for_selector(f"#live li[data-event='{receipt}'] .state.closed", timeout=5_000)
    assert not problems, problems
    assert not worker_problems, worker_problems
    assert not board_problems, board_problems
    watching.close()
    resident.close()
    worker.close()


def _report(stack: Stack, point: tuple[float, float], words: str) -> dict[str, Any]:
    """A safety report made by the town's app, which command routes to a grid worker."""
    answer = httpx.post(
        f"{stack.config.gateway_url}/v1/tenants/{XINGMING}/events",
        headers={**stack.api_headers(), "Idempotency-Key": f"web-{time.time_ns()}"},
        json={
            "category": "safety.ebike_charging",
            "description": words,
            "location": {"longitude": point[0], "latitude": point[1]},
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.mark.integration
def test_offline_the_worker_resolves_and_files_a_finding_and_both_arrive_exactly_once(
    stack, gateway, browser, axe_source, credentials, grid_index
):
    point = _cell_points(grid_index, 3)[2]
    event = _report(stack, point, "E-bike charging in the stairwell (offline test)")
    task = _task_for(stack, event["name"])
    username = _handler_username(stack, task["handler"])
    password = credentials.account(username).password
    accepted = httpx.post(
        f"{gateway}/v1/{task['name']}:accept", headers=_token(gateway, username, password)
    )
    assert accepted.status_code == 200, accepted.text

    glon, glat = (float(v[0]) for v in wgs84_to_gcj02(np.array([point[0]]), np.array([point[1]])))
    context = phone(
        browser,
        gateway,
        geolocation={"longitude": glon, "latitude": glat},  # this stack's phones say GCJ-02
        permissions=["geolocation"],
    )
    page = context.new_page()
    problems = watch(page)
    page.goto("/web/worker.html")
    sign_in(page, username, password)
    page.wait_for_url("**/web/worker.html")
    wait_ready(page)
    item = f"li[data-task='{task['id']}']"
    page.wait_for_selector(f"{item} [data-action=resolve]")
    until(page, "() => navigator.serviceWorker.controller !== null")

    # No connection: the page opens from the service worker, the task from IndexedDB.
    context.set_offline(True)
    page.reload()
    wait_ready(page)
    assert page.evaluate("navigator.onLine") is False
    assert page.is_visible("#offline")
    page.fill(f"{item} textarea", "Charger unplugged, battery taken outside")
    page.click(f"{item} [data-action=resolve]")
    page.wait_for_selector("body[data-waiting='1']")
    finding = f"Blocked fire exit behind the shop, seen offline {time.time_ns()}"
    page.click("#finding-locate")
    page.wait_for_selector("#finding-pin:has-text('Pin at')")
    page.select_option("#finding-category", "safety.fire_hazard")
    page.fill("#finding-description", finding)
    page.click("#finding-form button[type=submit]")
    page.wait_for_selector("body[data-waiting='2']")
    assert not accessibility_problems(page, axe_source)
    record(page, "worker-offline")
    assert _api(stack, f"/v1/{task['name']}")["state"] == "accepted"

    refused: list[str] = []
    page.on("response", lambda r: refused.append(r.url) if r.status >= 400 else None)
    # Both were sent once already but their answers were lost (sent here, out of band,
    # with the page's own request ids); the page sends them again when back online.
    waiting = page.evaluate(
        "s => import('/web/js/lib/outbox.js').then(m => m.waiting(s))",
        page.evaluate("JSON.parse(sessionStorage.getItem('grassroots.session')).me.subject"),
    )
    assert [w["path"] for w in waiting] == [
        f"/v1/{task['name']}:resolve",
        f"/v1/tenants/{XINGMING}/events",
    ]
    token = page.evaluate("JSON.parse(sessionStorage.getItem('grassroots.session')).access_token")
    for w in waiting:
        first = httpx.post(
            gateway + w["path"],
            json=w["json"],
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": w["id"]},
        )
        assert first.status_code in (200, 201), first.text
    context.set_offline(False)
    page.wait_for_selector("body[data-waiting='0']", state="attached", timeout=20_000)
    assert page.inner_text("#alert") == ""  # nothing reported as failed

    done = _api(stack, f"/v1/{task['name']}")
    assert done["state"] == "done" and done["resolution_note"].startswith("Charger unplugged")
    resolved = _api(stack, f"/v1/{event['name']}")
    assert [t["to_state"] for t in resolved["timeline"]].count("resolved") == 1
    found = _api(stack, f"/v1/tenants/{XINGMING}/events?q={finding}&page_size=10")["events"]
    assert len(found) == 1 and found[0]["source"] == "grid_patrol", found
    assert found[0]["category"] == "safety.fire_hazard"
    # The resolve sent again was refused (the task was done) and recognised as done; the
    # finding sent again was answered with the first event. Calls made offline failed.
    assert refused == [f"{gateway}/v1/{task['name']}:resolve"], refused
    expected = ("ERR_INTERNET_DISCONNECTED", "status of 400")
    assert not [p for p in problems if not any(e in p for e in expected)], problems
    context.close()


def _open_events(stack: Stack, points: list[tuple[float, float]], count: int) -> None:
    """`count` open reports of a category no rule routes, made in batches over gRPC."""
    reporter = Principal(
        "services/web-pages-test",
        "sh/jiading/anting",
        "service",
        scopes=frozenset({"events:write", "events:read"}),
    )
    with grpc.insecure_channel(stack.config.address("events")) as channel:
        stub = events_grpc.EventsServiceStub(channel)
        for start in range(0, count, 100):
            stub.BatchCreateEvents(
                events_pb.BatchCreateEventsRequest(
                    parent=tenancy.tenant_name(XINGMING_PATH),
                    requests=[
                        events_pb.CreateEventRequest(
                            parent=tenancy.tenant_name(XINGMING_PATH),
                            request_id=f"board-load-{i}",
                            event=events_pb.Event(
                                category="public.facility",
                                description=f"Broken bench {i} (board load)",
                                location=geo_pb2.GeoPoint(
                                    longitude=points[i % len(points)][0]
                                    + (i // len(points)) * 2e-5,
                                    latitude=points[i % len(points)][1],
                                ),
                            ),
                        )
                        for i in range(start, min(start + 100, count))
                    ],
                ),
                metadata=reporter.to_metadata(),
                timeout=60,
            )


@pytest.mark.integration
def test_board_draws_the_town_and_shows_a_new_report_live(
    stack, gateway, browser, axe_source, credentials, grid_index
):
    officer = credentials.account("anting.officer")
    _alarming_gauge(stack, _cell_points(grid_index, 2)[1])
    # A category the pages have no word for shows the display name the API gives it.
    staff = _token(gateway, officer.username, officer.password)
    made = httpx.post(
        f"{gateway}/v1/tenants/{TOWN}/categories",
        headers=staff,
        json={"code": "patrol.finding", "display_name": "Patrol finding"},
    )
    assert made.status_code in (200, 201), made.text
    # A category reading like a built-in one (the e-bike scenario's, beside
    # safety.ebike_charging): the filter tells the two apart, each code once.
    alike = httpx.post(
        f"{gateway}/v1/tenants/{TOWN}/categories",
        headers=staff,
        json={"code": "safety.ebike_indoor_charging", "display_name": "E-bike charging indoors"},
    )
    assert alike.status_code in (200, 201), alike.text
    # Findings must be taken within a second: the board lists the overdue task, by the
    # name of the grid worker it was offered to.
    secretary = credentials.account("xingming.secretary")
    rule = httpx.post(
        f"{gateway}/v1/tenants/{XINGMING}/routingRules",
        headers=_token(gateway, secretary.username, secretary.password),
        json={
            "category": "patrol.finding",
            "handler_role": "grid_worker",
            "response_sla_seconds": 1,
            "resolution_sla_seconds": 3600,
            "display_name": "Findings, taken at once (board test)",
        },
    )
    assert rule.status_code == 201, rule.text
    finding = httpx.post(
        f"{gateway}/v1/tenants/{XINGMING}/events",
        headers={**stack.api_headers(), "Idempotency-Key": f"web-{time.time_ns()}"},
        json={
            "category": "patrol.finding",
            "description": "Loose cover (board test)",
            "location": dict(
                zip(("longitude", "latitude"), _cell_points(grid_index, 2)[0], strict=True)
            ),
        },
    )
    assert finding.status_code == 201, finding.text
    context = phone(browser, gateway)
    page = context.new_page()
    problems = watch(page)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if ":statistics" in r.url else None)
    page.goto("/web/board.html")
    sign_in(page, officer.username, officer.password)
    page.wait_for_url("**/web/board.html")
    wait_ready(page)
    page.wait_for_selector("#live-state:has-text('live')")
    finding_row = page.inner_text(f"#live li[data-event='{finding.json()['id']}']")
    assert "Patrol finding" in finding_row and "patrol.finding" not in finding_row
    options = page.eval_on_selector_all(
        "#f-category option", "os => os.map(o => [o.value, o.textContent])"
    )
    codes = [code for code, _ in options if code]
    assert len(codes) == len(set(codes)), codes
    words = [text for _, text in options]
    assert len(words) == len(set(words)), words
    assert "safety.ebike_indoor_charging" in codes and "safety.ebike_charging" in codes
    task = _task_for(stack, finding.json()["name"])
    handlers = httpx.get(
        f"{gateway}/v1/tenants/{XINGMING}/handlers",
        params={"page_size": 1000},
        headers=stack.api_headers(),
    ).json()["handlers"]
    worker = next(h["display_name"] for h in handlers if h["user"] == task["handler"])
    time.sleep(1.5)  # past the rule's second to accept
    page.reload()
    wait_ready(page)
    row = page.wait_for_selector(f"#tasks li[data-task='{task['id']}']", timeout=10_000)
    assert row is not None
    until(
        page,
        f"() => document.querySelector(\"#tasks li[data-task='{task['id']}']\")"
        f".textContent.includes({worker!r})",
    )
    assert "users/" not in page.inner_text("#tasks")
    page.wait_for_selector("#live-state:has-text('live')")
    # A sensor with its current reading and its alarm state.
    page.wait_for_selector("#sensors li[data-entity='board-gauge'] .state.alarm")
    assert "level_cm 41" in page.inner_text("#sensors li[data-entity='board-gauge']")
    assert no_horizontal_scroll(page)
    assert not accessibility_problems(page, axe_source)
    record(page, "board-phone")

    # A report made now reaches the board over the stream within 2 s.
    event = _report(stack, _cell_points(grid_index, 5)[4], "Charging in the corridor (board test)")
    sent = time.monotonic()
    page.wait_for_selector(f"#live li[data-event='{event['id']}']", timeout=2_000)
    print(f"\nboard: the new report was shown {time.monotonic() - sent:.2f} s after it was made")
    page.click(f"#live li[data-event='{event['id']}'] button")
    page.wait_for_selector(f"#detail-event[data-event='{event['id']}']")
    assert "Charging in the corridor" in page.inner_text("#detail")
    page.select_option("#f-state", "closed")  # filtered out: not closed
    page.wait_for_selector(f"#live li[data-event='{event['id']}']", state="detached")
    page.select_option("#f-state", "")
    page.wait_for_selector(f"#live li[data-event='{event['id']}']")
    assert page.locator("#per-cell li").count() > 0
    assert page.locator("#figures dd").count() == 4
    # Charts beyond bars, each showing the API's figures: reports per day (today's
    # column marked), the SLA breach rate as a ring, the choropleth's scale and its
    # darkest grid cell.
    stats = httpx.get(
        f"{gateway}/v1/tenants/{TOWN}/events:statistics",
        headers=_token(gateway, officer.username, officer.password),
    ).json()
    page.wait_for_selector("#trend svg rect.day.today")
    assert page.locator("#trend rect.day").count() == 14
    today = page.get_attribute("#trend rect.today", "data-day")
    assert today is not None
    until(
        page,
        "() => document.querySelector('#trend rect.today').dataset.count === "
        f"'{stats['by_day'].get(today, 0)}'",
    )
    assert stats["by_day"].get(today, 0) >= 1  # the report just made
    # "Reports today" counts the same day as today's column: China Standard Time's,
    # whatever the browser's own time zone.
    assert any(f"created_from={today}T00%3A00%3A00%2B08%3A00" in url for url in asked), asked
    until(
        page,
        "() => document.querySelector('#figures dd').textContent === "
        f"'{stats['by_day'].get(today, 0)}'",
    )
    percent = f"{round(stats['sla_breach_rate'] * 100)}%"
    assert percent in (page.get_attribute("#breach svg", "aria-label") or "")
    assert page.text_content("#breach svg text") == percent
    top = max(stats["by_grid_cell"].values())
    page.wait_for_selector("#choropleth-legend:not([hidden])")
    until(page, f"() => document.getElementById('choropleth-high').textContent === '{top}'")
    darkest = page.get_attribute("#map", "data-darkest")
    assert darkest and stats["by_grid_cell"][darkest] == top
    shaded = int(page.get_attribute("#map", "data-shaded") or 0)
    assert 0 < shaded <= len([c for c, n in stats["by_grid_cell"].items() if n])
    assert no_horizontal_scroll(page)
    assert not accessibility_problems(page, axe_source)
    record(page, "board-charts")
    # The language switch redraws what is already on screen.
    page.click("#lang")
    page.wait_for_selector("#trend text.tick:has-text('今日')")
    assert page.inner_text("#figures dt >> nth=0") == "今日报事"
    assert page.inner_text("#sensors li[data-entity='board-gauge'] .state") == "告警中"
    assert "live" not in page.inner_text("#live-state")
    page.click("#lang")
    page.wait_for_selector("#trend text.tick:has-text('today')")

    # The size: 500 open events over the town's 4,800 buildings.
    _open_events(stack, _cell_points(grid_index, 15), 500)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.reload()
    wait_ready(page)
    page.wait_for_selector("#map[data-base*='buildings']", state="attached", timeout=30_000)
    base_drawn = page.evaluate("performance.getEntriesByName('base-drawn')[0].startTime")
    timing = record(page, "board")
    print(
        f"board: {page.evaluate('document.body.dataset.events')} events drawn; buildings "
        f"drawn at {base_drawn:.0f} ms, after the page was usable at {timing['page_ready']:.0f} ms"
    )
    assert not problems, problems
    context.close()


@pytest.mark.integration
def test_a_grid_worker_declines_an_offer_and_it_goes_to_the_next(
    stack, gateway, browser, credentials, grid_index
):
    event = _report(stack, _cell_points(grid_index, 8)[7], "Charging on the landing (decline)")
    task = _task_for(stack, event["name"])
    username = _handler_username(stack, task["handler"])
    context = phone(browser, gateway)
    page = context.new_page()
    problems = watch(page)
    page.goto("/web/worker.html")
    sign_in(page, username, credentials.account(username).password)
    page.wait_for_url("**/web/worker.html")
    wait_ready(page)
    item = f"li[data-task='{task['id']}']"
    page.click(f"{item} [data-action=decline]")
    page.wait_for_selector(item, state="detached", timeout=30_000)
    after = _api(stack, f"/v1/{task['name']}")
    assert task["handler"] in after["passed_by"], after
    assert after["handler"] != task["handler"], after
    assert not problems, problems
    context.close()


def _alarming_gauge(stack: Stack, point: tuple[float, float]) -> None:
    """A water gauge in Xingming whose flooding rule is firing (a twin alarm)."""
    writer = Principal(
        "services/browser-test",
        XINGMING_PATH,
        "service",
        scopes=frozenset({"twin:read", "twin:write", "twin:ingest"}),
    )
    parent = tenancy.tenant_name(XINGMING_PATH)
    with grpc.insecure_channel(stack.config.address("twin")) as channel:
        twin = twin_grpc.TwinServiceStub(channel)
        md = writer.to_metadata()
        twin.CreateEntity(
            twin_pb.CreateEntityRequest(
                parent=parent,
                entity_id="board-gauge",
                entity=twin_pb.Entity(
                    entity_type="WaterLevelGauge",
                    display_name="Gauge at the west underpass",
                    location=geo_pb2.GeoPoint(longitude=point[0], latitude=point[1]),
                ),
            ),
            metadata=md,
            timeout=30,
        )
        twin.CreateRule(
            twin_pb.CreateRuleRequest(
                parent=parent,
                rule_id="board-flood",
                rule=twin_pb.Rule(
                    display_name="Underpass flooding",
                    entity_type="WaterLevelGauge",
                    property="level_cm",
                    threshold=twin_pb.Threshold(trigger=30, clear=25),
                    event_category="safety.flooding",
                    severity=4,
                ),
            ),
            metadata=md,
            timeout=30,
        )
        twin.IngestTelemetry(
            twin_pb.IngestTelemetryRequest(
                parent=parent,
                columns=twin_pb.TelemetryColumns(
                    entities=["board-gauge"],
                    properties=["level_cm"],
                    values=[41.0],
                    observe_times_ms=[int(time.time() * 1000)],
                ),
            ),
            metadata=md,
            timeout=30,
        )


def _record_installation(stack: Stack, village_path: str, item: str) -> None:
    """What `grassroots scenario install` records in the catalog (the composer's step)."""
    composer = Principal(
        "services/composer",
        "sh/jiading",
        "service",
        scopes=frozenset({"scenarios:install", "catalog:read"}),
    )
    with grpc.insecure_channel(stack.config.address("empower")) as channel:
        catalog_grpc.CatalogServiceStub(channel).CreateInstallation(
            catalog_pb.CreateInstallationRequest(
                parent=tenancy.tenant_name(village_path),
                installation=catalog_pb.Installation(catalog_item=item),
            ),
            metadata=composer.to_metadata(),
            timeout=30,
        )


@pytest.mark.integration
def test_supermarket_shows_the_shelf_and_the_districts_adoption(
    stack, gateway, browser, axe_source, credentials
):
    _record_installation(stack, XINGMING_PATH, "catalogItems/scenario-fire-smoke")
    admin = credentials.account("district.it")
    shelf = httpx.get(
        f"{gateway}/v1/catalogItems?page_size=200",
        headers=_token(gateway, admin.username, admin.password),
    ).json()["catalog_items"]
    components = {i["display_name"] for i in shelf if i["kind"] == "component"}
    scenarios = {i["display_name"] for i in shelf if i["kind"] == "scenario"}
    assert components and scenarios
    context = phone(browser, gateway)
    page = context.new_page()
    problems = watch(page)
    page.goto("/")
    wait_ready(page)
    page.click("#go-market")
    sign_in(page, admin.username, admin.password)
    wait_ready(page)
    assert page.url.endswith("/web/supermarket.html")
    shown = set(page.locator("#components li > strong").all_inner_texts())
    assert shown == components
    assert set(page.locator("#scenarios li > strong").all_inner_texts()) == scenarios
    # The adoption matrix: Xingming's row marks fire-smoke installed, and nothing else.
    row = page.locator(f"#matrix tr[data-tenant='{XINGMING_PATH}']")
    assert row.count() == 1
    heads = page.locator("#matrix thead th").all_inner_texts()[1:]
    cells = row.locator("td").all_inner_texts()
    marked = {h for h, c in zip(heads, cells, strict=True) if c == "installed"}
    fire = next(i["display_name"] for i in shelf if i["name"] == "catalogItems/scenario-fire-smoke")
    assert marked == {fire}
    # Installing a scenario in a village: the plan first, applied on request, and the
    # adoption matrix read again.
    page.select_option("#install-scenario", "fire-smoke")
    page.select_option("#install-village", XIANGYANG)
    assert page.inner_text("#plan-command") == (
        f"grassroots scenario plan fire-smoke --village {XIANGYANG}"
    )
    xiangyang_row = f"#matrix tr[data-tenant='{XIANGYANG_PATH}']"
    assert page.locator(xiangyang_row).count() == 0
    page.click("#plan-install")
    until(
        page,
        "() => !document.getElementById('plan').hidden"
        " || document.getElementById('alert').textContent",
    )
    assert not page.inner_text("#alert"), page.inner_text("#alert")
    plan = page.inner_text("#plan-text")
    assert plan.startswith(f"install fire-smoke 1.0.0 in tenants/{XIANGYANG}"), plan
    assert "  + twin.rules fire-smoke-alarm" in plan and "to create" in plan
    assert "Installing would create" in page.inner_text("#plan-summary")
    assert page.is_enabled("#apply")
    assert page.locator(xiangyang_row).count() == 0  # a plan changes nothing
    assert no_horizontal_scroll(page)
    assert not accessibility_problems(page, axe_source)
    record(page, "supermarket-plan")
    # Offline, Apply says so and may be pressed again.
    context.set_offline(True)
    page.click("#apply")
    page.wait_for_selector("#alert:has-text('Not applied: No connection')")
    assert page.is_enabled("#apply")
    assert not [p for p in problems if "Error" in p and "net::" not in p], problems
    problems.clear()  # Chromium logs the refused request as a failed resource load
    context.set_offline(False)
    page.click("#apply")
    until(page, "() => document.getElementById('status').textContent.includes('is installed')")
    assert f"fire-smoke is installed in {XIANGYANG_PATH} (complete" in page.inner_text("#status")
    page.wait_for_selector(xiangyang_row)
    cells = page.locator(xiangyang_row).locator("td").all_inner_texts()
    assert {h for h, c in zip(heads, cells, strict=True) if c == "installed"} == {fire}
    # The plan shown afterwards is the village as it is now: nothing left to do.
    page.wait_for_selector("#plan-summary:has-text('Nothing to do')")
    assert not page.is_enabled("#apply")
    record(page, "supermarket-installed")
    # And back: the uninstall plan, applied, and the row leaves the matrix.
    page.click("#plan-uninstall")
    page.wait_for_selector("#plan:not([hidden])")
    assert page.inner_text("#plan-text").startswith("uninstall fire-smoke 1.0.0 from ")
    # What it leaves (its category: events has no delete) no other scenario uses: the
    # summary says so, not "that other scenarios still use".
    summary = page.inner_text("#plan-summary")
    assert re.fullmatch(
        r"Uninstalling would delete 2 and leave [1-9] in place \(gone already, or not the "
        r"scenario's to delete\)\.",
        summary,
    ), summary
    # Someone changes the village's settings while the plan is on screen: Apply does not
    # do something else than it showed; it shows the new plan and says why.
    changed = httpx.post(
        f"{gateway}/v1/tenants/{XIANGYANG}/scenarios:install",
        json={"scenario": "fire-smoke", "overrides": {"response_minutes": 7}},
        headers=_token(gateway, admin.username, admin.password),
    )
    assert changed.status_code == 200, changed.text
    page.click("#apply")
    page.wait_for_selector("#alert:has-text('The plan changed since it was shown')")
    assert page.inner_text("#plan-text").startswith("uninstall fire-smoke 1.0.0 from ")
    assert page.locator(xiangyang_row).count() == 1  # nothing was uninstalled
    # Chromium logs the refused call (409) as a failed resource load, and nothing else.
    assert all("409" in p for p in problems), problems
    problems.clear()
    page.click("#apply")
    until(page, "() => document.getElementById('status').textContent.includes('uninstalled')")
    page.wait_for_selector(xiangyang_row, state="detached")
    # Search narrows the shelf but not the matrix's columns.
    page.fill("#search", "smoke")
    page.click("#search-form button[type=submit]")
    until(
        page,
        f"() => document.querySelectorAll('#components li[data-name]').length < {len(components)}",
    )
    assert page.locator("#matrix thead th").all_inner_texts()[1:] == heads
    page.fill("#search", "")
    page.click("#search-form button[type=submit]")
    until(
        page,
        f"() => document.querySelectorAll('#components li[data-name]').length === "
        f"{len(components)}",
    )
    assert no_horizontal_scroll(page)
    assert not accessibility_problems(page, axe_source)
    record(page, "supermarket")
    assert not problems, problems
    context.close()


@pytest.mark.integration
def test_a_role_without_the_pages_scope_is_told_so_and_sees_no_controls(
    gateway, browser, credentials
):
    """A carer has neither the board's events:read nor the supermarket's catalog:read."""
    carer = credentials.account("xingming.carer")
    context = phone(browser, gateway)
    page = context.new_page()
    problems = watch(page)
    page.goto("/web/board.html")
    sign_in(page, carer.username, carer.password)
    page.wait_for_url("**/web/board.html")
    wait_ready(page)
    assert page.inner_text("#forbidden").startswith("Your role cannot see this page")
    assert not page.is_visible("#filters") and not page.is_visible("#map")
    page.goto("/web/supermarket.html")
    wait_ready(page)
    assert page.is_visible("#forbidden") and not page.is_visible("#install-form")
    page.click("#lang")
    page.wait_for_selector("#forbidden:has-text('您的角色无权查看此页面')")
    assert not problems, problems
    context.close()
