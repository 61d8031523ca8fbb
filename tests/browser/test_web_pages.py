"""The town's web pages in a real browser, on a real platform, at phone width.

Every page is opened at 375 px, checked with axe-core (no serious or critical
violations), screenshotted into tests/browser/artifacts/ and timed with Navigation
Timing (printed; the target is under a second).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.demo_identity import DemoCredentials
from devstack.stack import Stack, StackConfig
from tests.browser.web import (
    accessibility_problems,
    no_horizontal_scroll,
    phone,
    record,
    wait_ready,
    watch,
)
from tests.integration.conftest import GENEROUS_LIMITS

XINGMING = "sh-jiading-anting-xingming"
TOWN = "sh-jiading-anting"


@pytest.fixture(scope="module")
def stack(demo_gpkg: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The platform with the demo town's people, handlers and routing rules; phones
    here report their position in GCJ-02, as many phone browsers in China do."""
    root = tmp_path_factory.mktemp("web-pages")
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    config.extra_env.update(GENEROUS_LIMITS)
    config.extra_env["GRASSROOTS_GATEWAY_DEVICE_CRS"] = "GCJ-02"
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
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
    assert {"/web/resident.html", "/web/worker.html", "/web/signin.html", "/docs"} <= links
    page.click("#lang")  # the switch names the other language and changes to it
    assert page.locator("h1").inner_text() == "Town and village pages"
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
    }
