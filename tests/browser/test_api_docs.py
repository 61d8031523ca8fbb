"""The API docs render offline in a real browser, under the gateway's strict CSP."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.conftest import stack  # noqa: F401  (the platform, per module)


def _open_docs(stack, browser):  # noqa: F811
    """The docs page once drawn, with the console errors and outside requests it made."""
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
    return page, problems, outside


@pytest.mark.integration
def test_swagger_ui_renders_offline_with_no_console_or_csp_errors(stack, browser):  # noqa: F811
    page, problems, outside = _open_docs(stack, browser)
    assert page.locator(".info .title").inner_text().startswith("Grassroots API")
    assert page.locator(".opblock").count() > 0
    assert not problems, problems  # a CSP refusal shows here as a console error
    assert not outside, f"the docs reached beyond the gateway (offline networks): {outside}"
    page.close()


@pytest.mark.integration
def test_swagger_ui_draws_every_tag_of_the_document(stack, browser):  # noqa: F811
    """Swagger UI 5 renders long lists virtually (only what is in view is in the DOM),
    so the page is scrolled to the end, collecting each tag section as it is drawn."""
    document = httpx.get(f"{stack.config.gateway_url}/openapi.json", timeout=30).json()
    tags = {t for path in document["paths"].values() for op in path.values() for t in op["tags"]}
    page, problems, _ = _open_docs(stack, browser)
    drawn: set[str] = set()
    tag_names = "els => els.map(e => e.dataset.tag)"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        drawn |= set(page.eval_on_selector_all(".opblock-tag", tag_names))
        if drawn >= tags:
            break
        at_end = page.evaluate(
            "() => { window.scrollBy(0, window.innerHeight / 2);"
            " return window.innerHeight + window.scrollY >= document.body.scrollHeight - 2; }"
        )
        page.wait_for_timeout(100)
        if at_end:
            drawn |= set(page.eval_on_selector_all(".opblock-tag", tag_names))
            break
    page.close()
    assert len(tags) > 10
    assert drawn == tags, sorted(tags - drawn)
    assert not problems, problems
