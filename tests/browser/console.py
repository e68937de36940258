#!/usr/bin/env python3
"""The web console in a real browser: Debian's Chromium driven by Playwright.

Run by crates/nido/tests/console.rs against a `nido network serve --api`
whose fleet is onboarding (`nido sim`), with:

  NIDO_CHROMIUM        the browser (default: Debian's /usr/bin/chromium)
  NIDO_URL             the console, e.g. http://127.0.0.1:8080
  NIDO_OPERATOR_TOKEN  an operator's token
  NIDO_OWNER_TOKEN     owner NIDO_OWNER's token
  NIDO_OWNER           that owner's id
  NIDO_CLAIM_CODE      the claim code of a device nobody has claimed yet
  NIDO_REFUSED         a device refused with #3, MANUFACTURER/SERIAL
  NIDO_ACTIVE          how many devices end active
  SCREENSHOTS          where dashboard.png, device.png and owner.png go
  NIDO_UPDATE_SCREENSHOT=1  also copies dashboard.png to docs/console.png

As the operator it logs in, watches the funnel until the fleet is active,
finds the refused device and reads #3 on its page (last refusal, audit
trail), and logs out; as the owner it claims the unclaimed device with its
code and sees it claimed. Exits 0 when all of that held, else with the
failed step (and a screenshot `failure.png`).
"""

import os
import re
import shutil
import sys
import time
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
REPO = Path(__file__).resolve().parents[2]


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"console.py: {name} is not set")
    return value


def step(text: str) -> None:
    print(f"console.py: {text}", flush=True)


def funnel(page: Page, stage: str) -> int:
    """The number the live funnel card `stage` shows (-1 before the first poll)."""
    text = page.locator(f'[data-funnel="{stage}"]').inner_text().strip()
    digits = text.replace(",", "")
    return int(digits) if digits.isdigit() else -1


def log_in(page: Page, base: str, token: str, who: str) -> None:
    page.goto(f"{base}/login")
    page.fill('input[name="token"]', token)
    page.click('form[action="/login"] button[type="submit"]')
    page.wait_for_url(f"{base}/")
    expect(page.locator("nav .who")).to_have_text(who)


def fact(page: Page, term: str):
    """The <dd> after the <dt> `term` of the device page's facts."""
    return page.locator("dl.facts dt", has_text=re.compile(f"^{re.escape(term)}$")).locator(
        "xpath=following-sibling::dd[1]"
    )


def chart_points(page: Page) -> int:
    """How many points the onboarding-rate chart draws."""
    points = page.locator("#rate polyline").get_attribute("points") or ""
    return len(points.split())


def dashboard(page: Page, shots: Path) -> None:
    page.screenshot(path=str(shots / "dashboard.png"))
    step(f"dashboard.png at {funnel(page, 'active')} active")
    if os.environ.get("NIDO_UPDATE_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shots / "dashboard.png", REPO / "docs" / "console.png")
        step(f"copied dashboard.png to {REPO / 'docs' / 'console.png'}")


def main() -> None:
    base = env("NIDO_URL").rstrip("/")
    operator = env("NIDO_OPERATOR_TOKEN")
    owner_token = env("NIDO_OWNER_TOKEN")
    owner = env("NIDO_OWNER")
    claim_code = env("NIDO_CLAIM_CODE")
    refused = env("NIDO_REFUSED")
    active = int(env("NIDO_ACTIVE"))
    shots = Path(env("SCREENSHOTS"))
    shots.mkdir(parents=True, exist_ok=True)
    refused_serial = refused.split("/", 1)[1]

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("NIDO_CHROMIUM") or CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(30_000)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            run(page, base, operator, owner_token, owner, claim_code, refused,
                refused_serial, active, shots)
        except Exception:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
            step(f"failed on {page.url}; screenshot {shots / 'failure.png'}")
            raise
        finally:
            browser.close()
        if errors:
            sys.exit(f"console.py: script errors on the pages: {errors}")
    step("ok")


def run(page: Page, base: str, operator: str, owner_token: str, owner: str,
        claim_code: str, refused: str, refused_serial: str, active: int,
        shots: Path) -> None:
    # The operator watches the fleet onboard: the funnel is kept live by
    # /assets/console.js (every 2 s), without reloading the page.
    log_in(page, base, operator, "operator")
    step("logged in as the operator")
    page.wait_for_function(
        """() => {
            const n = document.querySelector('[data-funnel="active"]').textContent;
            return /^[0-9,]+$/.test(n.trim()) && Number(n.replace(/,/g, "")) > 0;
        }""",
        timeout=60_000,
    )
    seen = [funnel(page, "active")]
    step(f"active: {seen[0]}")
    # Rendered when the page loaded (the refusal came before the browser).
    refusals = page.locator("table.refusals tbody")
    expect(refusals.locator("a", has_text="#3")).to_have_attribute(
        "href", "/console/devices?state=refused&cause=3"
    )
    # The screenshot while the fleet is still onboarding, once the rate
    # chart has a few points (unless the fleet was quicker than that).
    shot = False
    deadline = time.monotonic() + 120
    while True:
        n = funnel(page, "active")
        if n != seen[-1]:
            seen.append(n)
        onboarding = n >= active * 2 // 3 and chart_points(page) >= 3
        if not shot and (onboarding or n >= active):
            if n >= active:
                page.wait_for_timeout(2_500)  # one more poll: the rate's last point
            dashboard(page, shots)
            shot = True
        if n >= active:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"active stayed at {n} of {active}")
        page.wait_for_timeout(250)
    step(f"active as the page updated itself: {seen}")
    assert funnel(page, "active") == active, funnel(page, "active")
    assert funnel(page, "refused") >= 1, funnel(page, "refused")

    # Refusals by cause: #3 lists the refused device.
    refusals.locator("a", has_text="#3").click()
    page.wait_for_url(re.compile(r"/console/devices\?state=refused&cause=3$"))
    expect(page.locator("table.devices tbody a", has_text=refused)).to_be_visible()

    # Search for it from the dashboard and open its page.
    page.goto(f"{base}/")
    page.fill('input[name="q"]', refused_serial)
    page.locator('form[action="/console/devices"] button[type="submit"]').click()
    page.wait_for_url(re.compile(r"/console/devices\?q="))
    rows = page.locator("table.devices tbody tr")
    expect(rows).to_have_count(1)
    rows.locator("a", has_text=refused).click()
    page.wait_for_url(re.compile(r"/console/devices/[^/?]+/[^/?]+$"))
    expect(page.locator("h1")).to_have_text(refused)
    expect(fact(page, "State")).to_have_text("refused")
    expect(fact(page, "Last refusal")).to_contain_text("#3")
    expect(fact(page, "Blocked")).not_to_have_text("–")
    expect(
        page.locator("table.audit tbody tr", has_text="refused").filter(has_text="#3")
    ).not_to_have_count(0)
    page.screenshot(path=str(shots / "device.png"), full_page=True)
    step(f"{refused}: last refusal {fact(page, 'Last refusal').inner_text()!r}")

    page.click('form[action="/logout"] button')
    page.wait_for_url(f"{base}/login")
    # The session is gone: the dashboard sends the browser back to log in.
    page.goto(f"{base}/")
    page.wait_for_url(f"{base}/login")
    step("logged out")

    # The owner claims a device with the code from its label.
    log_in(page, base, owner_token, f"owner {owner}")
    step(f"logged in as owner {owner}")
    page.fill('input[name="claim_code"]', claim_code)
    page.locator('form[action="/console/claim"] button[type="submit"]').click()
    page.wait_for_url(re.compile(r"/console/devices/[^/?]+/[^/?]+\?done="))
    expect(page.locator("p.done")).to_contain_text("claimed")
    expect(fact(page, "Owner")).to_have_text(owner)
    claimed = page.locator("h1").inner_text()
    page.screenshot(path=str(shots / "owner.png"), full_page=True)
    step(f"{claimed} claimed by {owner}")
    # It is among the owner's devices now.
    page.goto(f"{base}/console/devices")
    expect(page.locator("table.devices tbody a", has_text=claimed)).to_be_visible()


if __name__ == "__main__":
    main()
