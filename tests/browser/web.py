"""What the web-page tests share: a phone-sized context, sign-in, the accessibility
check, time to interactive and screenshots (kept in tests/browser/artifacts/)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Error, Page

ARTIFACTS = Path(__file__).parent / "artifacts"
PHONE = {"width": 375, "height": 812}
SERIOUS = ("serious", "critical")


def phone(browser: Browser, gateway: str, **options: Any) -> BrowserContext:
    """A 375 px wide touch context on the gateway, in English unless told otherwise."""
    options.setdefault("locale", "en-GB")
    return browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, base_url=gateway, **options
    )


def watch(page: Page) -> list[str]:
    """Console errors and uncaught exceptions of the page (a CSP refusal shows here)."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def wait_ready(page: Page) -> None:
    page.wait_for_selector("body[data-ready=true]", state="attached", timeout=15_000)


def until(page: Page, predicate: str, timeout: float = 30.0) -> None:
    """Poll a JS predicate. page.wait_for_function compiles its text in the page, which
    the pages' CSP (no unsafe-eval) refuses; evaluate() is not subject to it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if page.evaluate(predicate):
                return
        except Error as exc:  # a navigation in between destroys the context: ask again
            if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                raise
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        page.wait_for_timeout(100)


def sign_in(page: Page, username: str, password: str) -> None:
    """Fill the sign-in page the browser was sent to and wait for the page it came from."""
    page.wait_for_url("**/web/signin.html**")
    wait_ready(page)
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#signin-form button[type=submit]")
    until(
        page,
        """() => !location.pathname.endsWith("/signin.html")
                 || document.getElementById("alert").textContent
                 || !document.getElementById("change-form").hidden""",
    )
    if page.url.split("?")[0].endswith("/signin.html"):
        alert = page.inner_text("#alert")
        assert not alert, f"sign-in as {username} failed: {alert}"


def accessibility_problems(page: Page, axe_source: str) -> list[str]:
    """axe-core's serious and critical violations (WCAG 2 A/AA rules) on the page."""
    page.evaluate(axe_source)
    violations = page.evaluate(
        """async () => (await axe.run(document, {
               runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
               resultTypes: ["violations"]})).violations
             .map(v => ({id: v.id, impact: v.impact,
                         nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 3)}))"""
    )
    return [
        f"{v['id']} ({v['impact']}): {v['nodes']}" for v in violations if v["impact"] in SERIOUS
    ]


def time_to_interactive(page: Page) -> dict[str, float]:
    """Navigation Timing: DOM interactive, and when the page said it was usable (ms)."""
    return page.evaluate(
        """() => {
             const nav = performance.getEntriesByType("navigation")[0];
             const mark = performance.getEntriesByName("page-ready")[0];
             return {dom_interactive: nav.domInteractive,
                     dom_content_loaded: nav.domContentLoadedEventEnd,
                     page_ready: mark ? mark.startTime : -1};
           }"""
    )


def record(page: Page, name: str) -> dict[str, float]:
    """Screenshot the page into the artefacts folder and print its time to interactive."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    timing = time_to_interactive(page)
    print(
        f"\n{name}: interactive in {timing['page_ready']:.0f} ms "
        f"(DOM interactive {timing['dom_interactive']:.0f} ms, "
        f"DOMContentLoaded {timing['dom_content_loaded']:.0f} ms; target < 1000 ms)"
    )
    return timing


def no_horizontal_scroll(page: Page) -> bool:
    """Usable at 375 px: nothing wider than the screen."""
    return bool(
        page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    )
