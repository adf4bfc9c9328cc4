"""Screenshots of the web page (and ``/docs``) for ``docs/service.md``, in the headless Chromium the tests use.

Starts a real server and a CPU worker on a temporary data root with the demo datasets, then, through the page:
the locked page, the portfolio, a registered dataset with its report, a recommendation, and a fine-tune (of the
recommendation for ``hues``) whose learning curve is drawn while it runs (captured when it has finished).

    .venv/bin/python bench/screenshots.py [--out docs/figures] [--budget 20]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.browser import full_page_screenshot, make_driver, skip_reason  # noqa: E402
from tests.fixtures.live import USER_KEY, LiveServer, service_env, start_worker  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASET = "surface_defects"  # a demo dataset the demo portfolio does not know
JOB_DATASET = "hues"


def until(driver: Any, condition: Any, timeout: float = 120.0) -> Any:
    """Wait for ``condition(driver)`` (selenium's WebDriverWait); an element the page re-rendered between
    find and read (StaleElementReferenceException, seen once here) is polled again, not fatal."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def shoot(driver: Any, element_id: str, path: Path) -> None:
    """Screenshot of one section of the page."""
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, element_id)
    driver.execute_script("arguments[0].scrollIntoView()", element)
    element.screenshot(str(path))
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def make_root(root: Path) -> None:
    """The demo datasets under ``root/demo``, one unreadable file added so the report lists a skipped file."""
    subprocess.run([sys.executable, "-m", "metarec.cli", "datasets", "demo", "--out", str(root / "demo")],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    first_class = sorted(p for p in (root / "demo" / DATASET).iterdir() if p.is_dir())[0]
    (first_class / "scan-0000.png").write_bytes(b"truncated upload")


def run(driver: Any, server: LiveServer, out: Path, budget: float) -> None:
    """Drive the page through every section, saving screenshots."""
    from selenium.webdriver.common.by import By

    def by_id(ident: str) -> Any:
        return driver.find_element(By.ID, ident)

    driver.get(server.url + "/")
    full_page_screenshot(driver, out / "web_locked.png")
    print(f"wrote {out / 'web_locked.png'}")
    driver.set_window_size(1280, 2400)  # tall again: each section is captured whole
    by_id("key-input").send_keys(USER_KEY)
    by_id("key-submit").click()
    until(driver, lambda d: d.execute_script(
        "const i = document.getElementById('fig-performance_matrix'); return !!i && i.naturalWidth > 0"))
    shoot(driver, "portfolio", out / "web_portfolio.png")
    by_id("register-path").send_keys(f"demo/{DATASET}")
    by_id("register-submit").click()
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#skipped-files tbody tr"))
    shoot(driver, "datasets", out / "web_datasets.png")
    by_id("rec-submit").click()
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#rec-neighbors tbody tr"))
    shoot(driver, "recommendation", out / "web_recommendation.png")
    # the job: a dataset whose recommendation learns visibly within the budget (on surface_defects it stays flat)
    by_id("register-path").clear()
    by_id("register-path").send_keys(f"demo/{JOB_DATASET}")
    by_id("register-submit").click()
    until(driver, lambda d: by_id("rec-dataset").find_element(By.CSS_SELECTOR, "option:checked").text
          .startswith(JOB_DATASET))
    by_id("rec-submit").click()
    until(driver, lambda d: JOB_DATASET in by_id("ft-what").text)
    budget_input = by_id("ft-budget")
    budget_input.clear()
    budget_input.send_keys(f"{budget:g}")
    by_id("ft-submit").click()
    until(driver, lambda d: by_id("job-status").text in ("succeeded", "failed", "cancelled"), budget + 180)
    shoot(driver, "jobs", out / "web_job.png")
    driver.get(server.url + "/docs")
    try:
        until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"), 15)
    except Exception:  # selenium's TimeoutException: /docs did not render (its assets come from a CDN)
        print("/docs did not render in a browser without internet: no screenshot of it")
        return
    full_page_screenshot(driver, out / "web_docs.png")
    print(f"wrote {out / 'web_docs.png'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures")
    parser.add_argument("--budget", type=float, default=20.0, help="fine-tuning budget of the job (s)")
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="metarec-screens-") as tmp:
        root = Path(tmp)
        make_root(root)
        server = LiveServer(root, service_env(root, fingerprint_samples=128)).start()
        worker = start_worker(root, server.env)
        driver = make_driver(width=1280, height=2400)  # tall: a section is captured whole
        try:
            run(driver, server, args.out.resolve(), args.budget)
        finally:
            driver.quit()
            worker.terminate()
            worker.wait(timeout=60)
            server.stop()
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
