"""The web page at ``/`` in a real headless Chromium against a real server and worker on loopback, and the
portfolio figures it shows (``GET /v1/portfolio/figures``).

The browser reaches loopback only (``tests/fixtures/browser.py``): a page that needs a CDN fails here.
Every wait is explicit (a condition polled by WebDriverWait), never a sleep.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from portfolio.defaults import default_portfolio_dir
from portfolio.figure_files import portfolio_figures
from tests.fixtures.browser import console_errors, make_driver, skip_reason
from tests.fixtures.factories import make_image_folder
from tests.fixtures.live import REPO, USER_KEY, LiveServer, service_env, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
WAIT_S = 60  # generous upper bounds: each wait returns as soon as its condition holds
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web")
    make_image_folder(root / "shapes", {"a": 24, "b": 24, "c": 24}, size=(24, 24))
    (root / "shapes" / "a" / "broken.png").write_bytes(b"not a png")  # shows up under "skipped files"
    return root


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[LiveServer]:
    """The API and one CPU worker, started together (SQLite's IMMEDIATE transactions serialise their schema setup),
    so the worker's start-up overlaps the server's and the first tests."""
    srv = LiveServer(root, service_env(root))
    worker = start_worker(root, srv.env)
    try:
        srv.start()
        yield srv
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=60)
        srv.stop()


@pytest.fixture(scope="module")
def driver(server: LiveServer) -> Iterator[Any]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    drv = make_driver()
    try:
        yield drv
    finally:
        drv.quit()


def wait(driver: Any, condition: Any, timeout: float = WAIT_S, what: str = "") -> Any:
    """Poll ``condition`` until true; an element the page re-rendered between find and read is polled again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition, message=what)


def js(driver: Any, script: str) -> Any:
    return driver.execute_script(script)


def by_id(driver: Any, ident: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, ident)


def rows(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def fresh_page(driver: Any, server: LiveServer) -> None:
    """The page in a tab without a stored key."""
    driver.get(server.url + "/")
    js(driver, "sessionStorage.clear()")
    driver.get(server.url + "/")
    wait(driver, lambda d: js(d, "return document.readyState") == "complete")


def enter_key(driver: Any, key: str) -> None:
    by_id(driver, "key-input").send_keys(key)
    by_id(driver, "key-submit").click()


def heatmap_loaded(driver: Any) -> bool:
    return bool(js(driver, "const i = document.getElementById('fig-performance_matrix');"
                           "return !!i && i.complete && i.naturalWidth > 0"))


def api_requests(driver: Any) -> list[str]:
    return js(driver, "return performance.getEntriesByType('resource').map(e => e.name)"
                      ".filter(n => n.includes('/v1/'))")


def curve_points(driver: Any) -> int:
    return int(by_id(driver, "job-curve").get_attribute("data-points") or 0)


# ------------------------------------------------------------------------------------------ figures API, CLI


def test_figures_route_serves_exactly_the_listed_figures(server: LiveServer) -> None:
    demo = portfolio_figures(default_portfolio_dir())
    assert len(demo) == 3
    with server.client() as c:
        listed = c.get("/v1/portfolio/figures").json()
        assert [f["name"] for f in listed["items"]] == list(demo)
        assert listed["portfolio_version"] == c.get("/v1/portfolio").json()["version"]
        for f in listed["items"]:
            r = c.get(f["url"])
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            assert r.content == demo[f["name"]].read_bytes()
        for name in ("portfolio.json", "matcher-mlp.npz", "batch_size_curve.json", "..%2Fportfolio.json",
                     "%2E%2E", "Performance_Matrix.png", "performance_matrix.png%00", "x" * 5000):
            r = c.get(f"/v1/portfolio/figures/{name}")
            assert r.status_code == 404, (name, r.status_code)
            assert r.json()["error"]["code"] == "not_found"
    with server.client(None) as anonymous:
        assert anonymous.get("/v1/portfolio/figures").status_code == 401
        assert anonymous.get("/v1/portfolio/figures/performance_matrix.png").status_code == 401


def test_the_shell_is_self_contained(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as c:
        page = c.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        for name in ("app.js", "app.css", "favicon.svg"):
            asset = c.get(f"/web/{name}")
            assert asset.status_code == 200 and "http://" not in asset.text.replace("http://www.w3.org/", "")
            assert "https://" not in asset.text
        assert "https://" not in page.text and "http://" not in page.text
        assert c.get("/web/index.html").status_code == 404 and c.get("/web/..%2Fapp.py").status_code == 404


def test_every_web_file_is_packaged() -> None:
    """A non-editable install (the Docker image) ships service/web: pyproject's package-data covers each file."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")
    from service.routes.web import ASSETS, WEB_DIR

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["service"]
    files = sorted(p.relative_to(WEB_DIR.parent).as_posix() for p in WEB_DIR.iterdir())
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), (files, patterns)
    assert {f"web/{name}" for name in [*ASSETS, "index.html"]} == set(files)  # nothing unserved, nothing missing


def test_browser_tests_say_why_they_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.fixtures.browser as browser

    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    reason = browser.skip_reason()
    assert reason is not None and "apt-get install -y chromium chromium-driver" in reason


# ------------------------------------------------------------------------------------------ the page


def test_without_a_key_nothing_is_shown(driver: Any, server: LiveServer) -> None:
    fresh_page(driver, server)
    assert by_id(driver, "key-input").is_displayed() and not by_id(driver, "app").is_displayed()
    assert api_requests(driver) == []  # the page asked the API for nothing
    enter_key(driver, "wrong-key-wrong-key")
    wait(driver, lambda d: "invalid API key" in by_id(d, "message").text, what="the refusal is shown")
    assert not by_id(driver, "app").is_displayed() and by_id(driver, "key-input").is_displayed()
    assert js(driver, "return sessionStorage.length") == 0
    assert js(driver, "return document.querySelectorAll('#figures img, #entries tbody tr, "
                      "#dataset-table tbody tr, #job-table tbody tr').length") == 0
    assert by_id(driver, "portfolio-version").text == ""
    enter_key(driver, "clé-non-latin-ключ")  # cannot even be sent as a header: refused the same way
    wait(driver, lambda d: "Could not use this key" in by_id(d, "message").text, what="the unusable key is refused")
    assert not by_id(driver, "app").is_displayed() and js(driver, "return sessionStorage.length") == 0


def test_a_key_shows_the_portfolio_and_its_heatmap(driver: Any, server: LiveServer) -> None:
    with server.client() as c:
        portfolio = c.get("/v1/portfolio").json()
    fresh_page(driver, server)
    enter_key(driver, USER_KEY)
    wait(driver, heatmap_loaded, what="the heatmap is shown")
    assert by_id(driver, "portfolio-version").text == portfolio["version"]
    assert [li.text for li in rows(driver, "#reduced-portfolio li")] == portfolio["reduced_portfolio"]
    assert len(rows(driver, "#entries tbody tr")) == len(portfolio["entries"])
    assert len(rows(driver, "#figures img")) == 3
    assert js(driver, "return sessionStorage.length") == 1
    loaded = js(driver, "return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(url.startswith((server.url, "blob:")) for url in loaded), loaded  # nothing from elsewhere
    driver.refresh()  # the key was entered once: a reload of the tab shows the data again
    wait(driver, heatmap_loaded, what="the heatmap is shown after a reload")
    assert not [e for e in console_errors(driver) if "wrong-key" not in e and "401" not in e]


def test_a_recommendation_made_through_the_page_shows_its_neighbours(driver: Any, server: LiveServer) -> None:
    if not by_id(driver, "app").is_displayed():
        fresh_page(driver, server)
        enter_key(driver, USER_KEY)
    wait(driver, lambda d: by_id(d, "register-path").is_displayed())
    by_id(driver, "register-path").send_keys("shapes")
    by_id(driver, "register-submit").click()
    wait(driver, lambda d: rows(d, "#skipped-files tbody tr"), what="the dataset and its skipped file are shown")
    assert "broken.png" in rows(driver, "#skipped-files tbody tr")[0].text
    assert len(rows(driver, "#dataset-table tbody tr")) == 1
    by_id(driver, "rec-topk").clear()
    by_id(driver, "rec-topk").send_keys("4")
    by_id(driver, "rec-submit").click()
    wait(driver, lambda d: len(rows(d, "#rec-neighbors tbody tr")) == 4, what="four neighbours are shown")
    shown = [r.find_elements("css selector", "td")[1].text for r in rows(driver, "#rec-neighbors tbody tr")]
    with server.client() as c:
        dataset_id = c.get("/v1/datasets").json()["items"][0]["id"]
        same = c.post("/v1/recommendations", json={"dataset_id": dataset_id, "top_k": 4}).json()
    assert shown == [n["dataset"] for n in same["neighbors"]]  # the page shows what the API answers
    assert rows(driver, "#rec-configuration tbody tr") and by_id(driver, "ft-submit").is_enabled()
    if "candidates" in same:  # the selection layer's response (issue 11)
        assert len(rows(driver, "#rec-candidates tbody tr")) == len(same["candidates"])
    # the evidence choice: neighbours by meta-features, as the API ranks them
    wait(driver, lambda d: js(d, "return [...document.querySelectorAll('#rec-evidence option')]"
                                 ".some((o) => o.value === 'metafeatures')"), what="the evidence choice is offered")
    js(driver, "document.getElementById('rec-evidence').value = 'metafeatures'")
    by_id(driver, "rec-submit").click()
    wait(driver, lambda d: d.find_elements("id", "rec-evidence-used")
         and by_id(d, "rec-evidence-used").text == "metafeatures", what="the meta-feature recommendation is shown")
    shown = [r.find_elements("css selector", "td")[1].text for r in rows(driver, "#rec-neighbors tbody tr")]
    with server.client() as c:
        meta = c.post("/v1/recommendations", json={"dataset_id": dataset_id, "top_k": 4,
                                                   "evidence": "metafeatures"}).json()
    assert shown == [n["dataset"] for n in meta["neighbors"]]


# The selection layer's fields (issue 11), in the shape of its RecommendationOut; the page must show them when a
# response has them and leave them out when it has not (test_a_recommendation_... checks the live response).
SELECTION_FIELDS = {
    "policy": "neighbors", "time_budget_s": 120.0, "novelty": 0.83,
    "fallback": {"used": True, "reason": "novel: nearest known dataset at distance 3.1 > threshold 2.0"},
    "candidates": [
        {"id": "hues", "dataset": "hues", "configuration": {"backbone": "mobilenet_v2", "lr": 0.00123},
         "predicted_score": 0.7123, "rank_score": 0.8512, "source": "incumbent", "extrapolated": False,
         "cost": {"params": 2_230_000, "flops": 310_000_000, "latency_ms": 4.2, "device": "cpu"}},
        {"id": "default-0", "configuration": {"backbone": "resnet18"}, "predicted_score": 0.65, "source": "default",
         "extrapolated": True, "cost": None},
    ],
}


def test_selection_fields_are_shown_when_present_and_left_out_when_absent(driver: Any) -> None:
    if not js(driver, "return !!state.recommendation"):
        pytest.skip("needs the recommendation made by the previous test")
    js(driver, f"renderRecommendation(Object.assign({{}}, state.recommendation, {json.dumps(SELECTION_FIELDS)}))")
    table = [r.text for r in rows(driver, "#rec-candidates tbody tr")]
    assert len(table) == 2 and "2.23 M params · 0.31 GFLOPs · 4.2 ms/image" in table[0] and "no" in table[0]
    assert "0.7123" in table[0] and "0.8512" in table[0] and "incumbent" in table[0] and table[1].endswith("yes")
    rank_cells = [r.find_elements("css selector", "td")[4].text for r in rows(driver, "#rec-candidates tbody tr")]
    assert rank_cells == ["0.8512", "—"]  # the second candidate has no rank score: nothing invented
    assert by_id(driver, "rec-novelty").text.startswith("0.830")
    assert "distance 3.1 > threshold 2.0" in by_id(driver, "rec-fallback").text
    assert "neighbors" in by_id(driver, "rec-result").text and "120 s" in by_id(driver, "rec-result").text
    js(driver, "renderRecommendation(state.recommendation)")  # the live response again: nothing invented
    live = js(driver, "return state.recommendation")
    assert bool(rows(driver, "#rec-candidates")) == ("candidates" in live)
    assert bool(rows(driver, "#rec-novelty")) == ("novelty" in live)
    assert bool(rows(driver, "#rec-fallback")) == bool((live.get("fallback") or {}).get("used"))


def test_a_launched_job_curve_grows_while_it_runs(driver: Any, server: LiveServer) -> None:
    if not by_id(driver, "ft-submit").is_enabled():
        pytest.skip("needs the recommendation made by the previous test")
    budget = by_id(driver, "ft-budget")
    budget.clear()
    budget.send_keys("20")
    by_id(driver, "ft-submit").click()
    wait(driver, lambda d: by_id(d, "job-status").text == "running" and curve_points(d) > 0, 90,
         "the running job shows its first curve point")
    first = curve_points(driver)
    # more points: normally while it still runs, at the latest in the curve of the finished run
    wait(driver, lambda d: curve_points(d) > first, 60, "the curve grows")
    job_id = by_id(driver, "job-id").text
    assert rows(driver, f"#job-table tr[data-id='{job_id}']")
    if by_id(driver, "job-cancel").is_displayed():  # the rest of the run is not needed: stop it from the page
        by_id(driver, "job-cancel").click()
        wait(driver, lambda d: not by_id(d, "job-cancel").is_displayed(), 30, "the page shows the cancel request")
    with server.client() as c:
        job = c.get(f"/v1/jobs/{job_id}").json()
    assert job["cancel_requested"] or job["status"] in ("cancelled", "succeeded"), job["status"]
    assert job["recommendation_id"] and job["params"]["budget_s"] == 20
    assert len({p["step"] for p in job["learning_curve"]}) >= first + 1


def test_docs_renders_its_operations(driver: Any, server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as c:
        html = c.get("/docs").text
        paths = c.get("/openapi.json").json()["paths"]
    if "cdn.jsdelivr.net" in html or "unpkg.com" in html:
        pytest.xfail("/docs still loads Swagger UI from a CDN (self-hosted assets are another branch's work)")
    n_operations = sum(len(ops) for ops in paths.values())
    driver.get(server.url + "/docs")
    wait(driver, lambda d: len(rows(d, ".opblock")) == n_operations, what="every operation is rendered")
