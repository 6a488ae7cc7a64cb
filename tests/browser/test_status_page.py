"""The daemon's status page (`GET /`, host/api/src/status.html) in headless Chromium.

Runs the real daemon (tests/python/daemon.py) with its default `busybox` pool and checks what an
operator sees: the pool's counts as the API gives them, a lease showing up as `leased` (count and
event) and going away as `released`, the token form on a token-protected daemon and the pool once
the token is given (form or `#token=` fragment), the history charts (a path per series, the
hit rate of the window as `GET /v1/history` gives it, a lease raising `leased`; the daemon samples
every 500 ms there, `WARMPOOL_HISTORY_INTERVAL_MS`), the tenants section hidden on a daemon without
tenants and, on one with a tenant that holds leases and met its quota, its leases of its
`max_leases`, its lease-seconds of the hour's budget and its rejections, and that the page loads
nothing from anywhere but the daemon. Screenshots go to target/artifacts/status-page*.png.

    scripts/python-env.sh && target/pyenv/bin/pytest -v tests/browser

Needs Docker, the test image (tests/images/build-busybox.sh), a built target/debug/warmpool, and
Debian's chromium + chromium-driver (scripts/python-env.sh installs them). Nothing is downloaded:
the system chromedriver is used, never selenium-manager.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from daemon import Daemon  # noqa: E402

# Never let selenium-manager look for a driver or a browser on the network.
os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "target" / "artifacts"
POOL = "busybox"
WAIT_S = 15.0


# --- the API (through daemon.py) ---------------------------------------------------------------


def ready_now(d) -> int:
    return d.pool(POOL)["counts"]["ready"]


def check_serves_page(d) -> None:
    """The binary must serve the page itself; an older one answers 404 (or a placeholder)."""
    with urllib.request.urlopen(d.url + "/", timeout=10) as r:
        html = r.read().decode()
        ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("text/html"), ctype
    if 'id="pools"' not in html:
        pytest.fail(
            "target/debug/warmpool does not serve host/api/src/status.html at / yet "
            "(rebuild the daemon with the status page)"
        )


# --- the browser -------------------------------------------------------------------------------


@pytest.fixture
def browser():
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not os.access(exe, os.X_OK):
            # The browser tests never skip: a missing browser fails them.
            pytest.fail(f"{exe} missing: run scripts/python-env.sh (apt chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="warmpool-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--window-size=1500,1000",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(what: str, fn, timeout: float = WAIT_S, every: float = 0.25):
    """Poll `fn` until it returns something truthy; fail saying `what` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
        except Exception as e:  # a stale element between two renders, say
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(every)


def field(driver, pool: str, name: str) -> str | None:
    return driver.execute_script(
        "const c = document.querySelector(`tr[data-pool=\"${arguments[0]}\"] "
        "td[data-field=\"${arguments[1]}\"]`); return c ? c.textContent.trim() : null;",
        pool,
        name,
    )


def events(driver, kind: str) -> list[dict]:
    return driver.execute_script(
        "return [...document.querySelectorAll(`#events li[data-kind=\"${arguments[0]}\"]`)]"
        ".map(li => ({pool: li.dataset.pool, lease: li.dataset.lease || null, text: li.textContent}));",
        kind,
    )


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def assert_only_daemon(driver, d) -> None:
    """Every request the page made went to the daemon, and no token rode in a URL."""
    origin = urllib.parse.urlsplit(d.url)
    urls = driver.execute_script(
        "return performance.getEntriesByType('navigation').concat("
        "performance.getEntriesByType('resource')).map(e => e.name);"
    )
    assert urls, "no performance entries"
    for u in urls:
        s = urllib.parse.urlsplit(u)
        assert (s.scheme, s.netloc) == (origin.scheme, origin.netloc), f"request to {u}"
        # The fragment is the browser's own (the navigation entry keeps it); it is never sent.
        if d.token:
            assert d.token not in u.split("#")[0], f"token in a request URL: {u}"


def js_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("source") == "javascript"]


# --- the tests ---------------------------------------------------------------------------------


def test_pool_counts_and_lease_events(browser):
    with Daemon.start() as d:
        check_serves_page(d)
        d.warm_up(POOL)
        browser.get(d.url + "/")

        # The page's ready count is the API's (read together: adaptive sizing may move it).
        def ready_matches():
            page, api = field(browser, POOL, "ready"), ready_now(d)
            return page is not None and page == str(api) and (page, api)

        wait_for("the page's ready count to equal the API's", ready_matches)
        assert field(browser, POOL, "status") == "ok"
        assert browser.find_element(By.ID, "conn").get_attribute("data-state") == "ok"
        wait_for("the event stream", lambda: browser.find_element(By.ID, "events-state").text == "live")

        status, _, lease = d.request("POST", "/v1/leases", {"pool": POOL, "ttl_s": 120})
        assert status == 201, (status, lease)
        lease_id = lease["lease_id"]
        try:
            wait_for("leased = 1 on the page", lambda: field(browser, POOL, "leased") == "1")
            wait_for(
                "a `leased` event for the lease",
                lambda: [e for e in events(browser, "leased") if e["lease"] == lease_id],
            )
            shot = screenshot(browser, "status-page.png")
        finally:
            status, _, body = d.request("DELETE", f"/v1/leases/{lease_id}")
        assert status == 204, (status, body)

        wait_for(
            "a `released` event for the lease",
            lambda: [e for e in events(browser, "released") if e["lease"] == lease_id],
        )
        wait_for("leased = 0 on the page", lambda: field(browser, POOL, "leased") == "0")
        assert all(e["pool"] == POOL for e in events(browser, "leased"))
        assert_only_daemon(browser, d)
        assert js_errors(browser) == []
        assert shot.stat().st_size > 0


def test_token_form_and_fragment(browser):
    token = "t-" + secrets.token_hex(12)
    with Daemon.start(token=token) as d:
        check_serves_page(d)
        assert d.request("GET", "/v1/pools", token=False)[0] == 401
        d.warm_up(POOL)

        # No token: the form, and no data.
        browser.get(d.url + "/")
        wait_for(
            "the token form",
            lambda: browser.find_element(By.ID, "conn").get_attribute("data-state") == "auth",
        )
        assert browser.find_element(By.ID, "auth").is_displayed()
        assert browser.find_elements(By.CSS_SELECTOR, "[data-pool]") == []
        assert not browser.find_element(By.ID, "pools").is_displayed()
        screenshot(browser, "status-page-token-form.png")

        # A wrong token is refused and says so; the right one shows the pool.
        browser.find_element(By.ID, "token-input").send_keys("wrong-" + token)
        browser.find_element(By.ID, "token-submit").click()
        wait_for("the refusal", lambda: "wrong" in browser.find_element(By.ID, "auth-msg").text)
        assert browser.find_elements(By.CSS_SELECTOR, "[data-pool]") == []
        browser.find_element(By.ID, "token-input").send_keys(token)
        browser.find_element(By.ID, "token-submit").click()
        wait_for("the pool after the form", lambda: field(browser, POOL, "ready") is not None)
        assert not browser.find_element(By.ID, "auth").is_displayed()

        # A fresh tab opened at /#token=…: the pool, and the token gone from the address bar.
        browser.execute_script("sessionStorage.clear()")
        browser.get("about:blank")
        browser.get(f"{d.url}/#token={token}")
        wait_for(
            "the pool's ready count with the fragment's token",
            lambda: field(browser, POOL, "ready") == str(ready_now(d)),
        )
        assert token not in browser.current_url
        wait_for("the event stream", lambda: browser.find_element(By.ID, "events-state").text == "live")
        screenshot(browser, "status-page-token.png")
        assert_only_daemon(browser, d)
        assert js_errors(browser) == []


# --- the history charts ------------------------------------------------------------------------

SERIES = {
    "counts": {"ready", "leased", "waiting"},
    "hit_rate": {"hit_rate"},
    "latency": {"p50", "p95"},
}


def history_window(d, pool: str) -> tuple[int, int, list[dict]]:
    """The API's history of `pool`: acquires and warm ones over the window, and the samples."""
    status, _, body = d.request("GET", f"/v1/history?pool={pool}")
    assert status == 200, (status, body)
    samples = body["pools"][0]["samples"]
    return sum(s["acquires"] for s in samples), sum(s["warm"] for s in samples), samples


def pct(v: float) -> str:
    """The page's percentage (its `pct`): whole at 0 and 1, else one decimal."""
    return f"{v * 100:.0f}%" if v in (0, 1) else f"{v * 100:.1f}%"


def card_figure(driver, pool: str, name: str) -> dict | None:
    return driver.execute_script(
        "const f = document.querySelector(`[data-history-pool=\"${arguments[0]}\"] "
        "[data-field=\"${arguments[1]}\"]`);"
        "return f ? {text: f.querySelector('b').textContent, value: f.dataset.value} : null;",
        pool,
        name,
    )


def chart_paths(driver, pool: str) -> list[dict]:
    return driver.execute_script(
        "return [...document.querySelectorAll(`[data-history-pool=\"${arguments[0]}\"] path[data-series]`)]"
        ".map(p => ({chart: p.closest('svg').dataset.chart, series: p.dataset.series,"
        " d: p.getAttribute('d'), points: Number(p.dataset.points)}));",
        pool,
    )


def caption(driver, pool: str, key: str) -> str | None:
    return driver.execute_script(
        "const k = document.querySelector(`[data-history-pool=\"${arguments[0]}\"] "
        "figcaption [data-key=\"${arguments[1]}\"]`); return k ? k.textContent : null;",
        pool,
        key,
    )


def test_history_charts_and_the_tenants_section(browser):
    with Daemon.start(env={"WARMPOOL_HISTORY_INTERVAL_MS": "500"}) as d:
        check_serves_page(d)
        d.warm_up(POOL)
        browser.get(d.url + "/")
        wait_for("the pool's history card", lambda: card_figure(browser, POOL, "hit_rate"))
        # No acquire yet: no hit rate.
        assert card_figure(browser, POOL, "hit_rate")["value"] == ""

        leases = []
        try:
            for _ in range(3):
                status, _, lease = d.request("POST", "/v1/leases", {"pool": POOL, "ttl_s": 120})
                assert status == 201, (status, lease)
                leases.append(lease["lease_id"])
            wait_for("the three acquires in the API's history", lambda: history_window(d, POOL)[0] == 3)
            acquires, warm, samples = history_window(d, POOL)
            assert warm >= 1, samples
            rate = warm / acquires

            # The page's hit rate of the window is the API's, as a number and as text, once it
            # has the three acquires too.
            wait_for(
                "the page's hit rate and acquires to be the API's",
                lambda: (f := card_figure(browser, POOL, "hit_rate")) and f["value"]
                and abs(float(f["value"]) - rate) < 1e-9
                and card_figure(browser, POOL, "acquires")["value"] == "3",
            )
            assert card_figure(browser, POOL, "hit_rate")["text"] == pct(rate)
            worst = max(s["latency_ms_p95"] for s in samples if s["latency_ms_p95"] is not None)
            assert float(card_figure(browser, POOL, "worst_p95")["value"]) == worst

            # A lease raises `leased`: the chart's latest value is the three leases.
            wait_for("leased 3 in the chart", lambda: caption(browser, POOL, "leased") == "leased 3")
            wait_for("two samples or more", lambda: len(history_window(d, POOL)[2]) >= 2)
            # Each chart has a path per series, and each series that has values is drawn.
            def drawn():
                paths = chart_paths(browser, POOL)
                by_chart: dict[str, set[str]] = {}
                for p in paths:
                    by_chart.setdefault(p["chart"], set()).add(p["series"])
                ok = by_chart == SERIES and all(
                    p["points"] >= 1 and p["d"].startswith("M") for p in paths
                ) and all(p["points"] >= 2 and "L" in p["d"] for p in paths if p["chart"] == "counts")
                return ok and paths

            paths = wait_for("a drawn path per series", drawn)
            assert len(paths) == 6, paths
            shot = screenshot(browser, "status-page-history.png")
        finally:
            for lease_id in leases:
                d.request("DELETE", f"/v1/leases/{lease_id}")

        # An open daemon has no tenants: the page asked, got none, and shows no section.
        status, _, body = d.request("GET", "/v1/tenants")
        assert (status, body) == (200, {"tenants": []})
        asked = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".filter(u => u.endsWith('/v1/tenants')).length;"
        )
        assert asked >= 1
        assert not browser.find_element(By.ID, "tenants-section").is_displayed()
        assert browser.find_elements(By.CSS_SELECTOR, "[data-tenant]") == []
        assert_only_daemon(browser, d)
        assert js_errors(browser) == []
        assert shot.stat().st_size > 0


# --- the tenants section, from a daemon with tenants and quotas -----------------------------------

ADMIN_TOKEN = "status-page-admin"
TEAM_TOKEN = "status-page-team-a"
TENANTS = [{
    "name": "team-a",
    "token_env": "WARMPOOL_STATUS_TEAM_A",
    "pools": [POOL],
    "quotas": {"max_leases": 2, "lease_seconds_per_hour": 3600},
}]


def tenant_cell(driver, tenant: str, name: str) -> dict | None:
    return driver.execute_script(
        "const c = document.querySelector(`tr[data-tenant=\"${arguments[0]}\"] td[data-field=\"${arguments[1]}\"]`);"
        "if (!c) return null; const b = c.querySelector('.bar');"
        "return {text: c.firstChild ? c.firstChild.textContent.trim() : '', all: c.textContent,"
        " use: b ? b.dataset.use : null, level: b ? b.dataset.level : null};",
        tenant,
        name,
    )


def test_the_tenants_section_shows_leases_quota_use_and_rejections(browser):
    with Daemon.start(token=ADMIN_TOKEN, server_extra={"tenants": TENANTS},
                      env={"WARMPOOL_STATUS_TEAM_A": TEAM_TOKEN}) as d:
        d.warm_up(POOL)
        # Team A takes its two leases of 600 s, and a third is refused by max_leases.
        for _ in range(2):
            status, _, body = d.request("POST", "/v1/leases", {"pool": POOL, "ttl_s": 600},
                                        token=TEAM_TOKEN)
            assert status == 201, body
        status, _, body = d.request("POST", "/v1/leases", {"pool": POOL}, token=TEAM_TOKEN)
        assert (status, body["error"]["quota"]) == (429, "max_leases"), body

        browser.get(d.url + "/#token=" + ADMIN_TOKEN)
        wait_for("the tenants section", lambda: browser.find_element(By.ID, "tenants-section").is_displayed())
        wait_for("both tenants", lambda: tenant_cell(browser, "admin", "name")
                 and tenant_cell(browser, "team-a", "name"))
        leases = tenant_cell(browser, "team-a", "leases")
        assert (leases["text"], leases["use"]) == ("2 / 2", "1.000"), leases
        # Two leases of 600 s, less what the budget refilled (1 s a second) since.
        spent = tenant_cell(browser, "team-a", "lease_seconds")
        used, budget = spent["text"].split(" / ")
        assert budget == "3600" and 1140 <= int(used) <= 1200, spent
        assert abs(float(spent["use"]) - int(used) / 3600) < 0.001, spent
        assert tenant_cell(browser, "team-a", "pools")["text"] == POOL
        assert tenant_cell(browser, "team-a", "acquires_per_s")["text"] == "∞"
        assert tenant_cell(browser, "team-a", "acquires")["text"] == "2"
        assert tenant_cell(browser, "team-a", "rejected_max_leases")["text"] == "1"
        # The admin (server.auth_token_env): unlimited quotas, no bar.
        admin = tenant_cell(browser, "admin", "leases")
        assert (admin["text"], admin["use"]) == ("0 / ∞", None)
        assert tenant_cell(browser, "admin", "pools")["text"] == "every pool"
        assert "admin" in tenant_cell(browser, "admin", "name")["all"]
        screenshot(browser, "status-page-tenants.png")
        assert_only_daemon(browser, d)
        assert js_errors(browser) == []
