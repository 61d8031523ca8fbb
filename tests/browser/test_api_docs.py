"""The API docs render offline in a real browser, under the gateway's strict CSP."""

from __future__ import annotations

import pytest

from tests.integration.conftest import stack  # noqa: F401  (the platform, per module)


@pytest.mark.integration
def test_swagger_ui_renders_every_operation_with_no_console_errors(stack, browser):  # noqa: F811
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    outside: list[str] = []
    gateway = stack.config.gateway_url
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith((gateway, "data:")) else None,
    )
    page.goto(f"{gateway}/docs", wait_until="networkidle")
    page.wait_for_selector(".opblock", timeout=30_000)
    operations = page.locator(".opblock").count()
    documented = len(
        [
            op
            for path in page.request.get(f"{gateway}/openapi.json").json()["paths"].values()
            for op in path
        ]
    )
    assert operations == documented > 30, (operations, documented)
    assert page.locator(".info .title").inner_text().startswith("Grassroots API")
    assert not problems, problems  # a CSP refusal shows here as a console error
    assert not outside, f"the docs reached beyond the gateway (offline networks): {outside}"
    page.close()
