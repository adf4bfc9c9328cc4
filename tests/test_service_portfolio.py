"""Portfolio management through the live API: admin reload (validated, atomic) and a real rebuild job."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from portfolio.defaults import default_portfolio_dir
from tests.fixtures.factories import make_image_folder
from tests.fixtures.live import ADMIN_KEY, live_server, running_worker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("service-portfolio")
    shutil.copytree(default_portfolio_dir(), root / "pf-copy")
    shutil.copytree(default_portfolio_dir(), root / "pf-broken")
    (root / "pf-broken" / "portfolio.json").write_text('{"format_version": 999}')
    make_image_folder(root / "collection" / "noise", {"a": 12, "b": 12}, size=(16, 16))
    make_image_folder(root / "collection" / "tinted", {"x": 12, "y": 12, "z": 12}, size=(16, 16), grey=True)
    return root


@pytest.fixture(scope="module")
def server(root):
    yield from live_server(root)


def test_reload_validates_and_swaps_atomically(server, root):
    with server.client(ADMIN_KEY) as admin:
        before = admin.get("/v1/portfolio").json()
        bad = admin.post("/v1/portfolio/reload", json={"path": "pf-broken"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "portfolio_refused"
        assert admin.get("/v1/portfolio").json()["directory"] == before["directory"]
        good = admin.post("/v1/portfolio/reload", json={"path": "pf-copy"})
        assert good.status_code == 200, good.text
        assert good.json()["directory"] == "pf-copy" and good.json()["version"] == before["version"]
        back = admin.post("/v1/portfolio/reload", json={})
        assert back.status_code == 200 and back.json()["directory"] == before["directory"]


def test_rebuild_job_publishes_a_new_portfolio(server, root):
    body = {"collection_path": "collection", "n_workers": 1, "fingerprint_backbone": "resnet18",
            "fingerprint_weights": "random", "fingerprint_resolution": 32, "n_samples": 16, "matchers": ["mlp"],
            "base_config": {"input_size": 16, "head_width": 32},
            "scenario": {"n_iterations": 1, "min_budget": 1, "max_budget": 1, "backbones": ["lenet"],
                         "pretrained": ["none"]}}
    with server.client(ADMIN_KEY) as admin:
        old = admin.get("/v1/portfolio").json()["version"]
        r = admin.post("/v1/portfolio/rebuild", json=body)
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["kind"] == "rebuild" and job["status"] == "queued"
        assert job["params"]["collection_path"] == "collection"  # relative: workers may mount the root elsewhere
        work = root / "jobs" / job["id"] / "work"
        # attempt 1: the worker is stopped (SIGTERM) once the first dataset's BOHB run is finished
        with running_worker(root, server.env) as worker:
            first = _wait_for_file(work, "*/noise/bohb-0/done.json", worker)
            worker.terminate()
            worker.wait(timeout=300)
        requeued = admin.get(f"/v1/jobs/{job['id']}").json()
        assert requeued["status"] == "queued" and requeued["attempts"] == 1, requeued
        kept = sorted((p.relative_to(work), p.stat().st_mtime_ns) for p in first.parent.rglob("*") if p.is_file())
        # attempt 2 resumes from the work directory: the finished BOHB run is read back, not run again
        with running_worker(root, server.env):
            done = wait_for(admin, job["id"], lambda j: j["status"] in ("succeeded", "failed"), 400)
        assert done["status"] == "succeeded" and done["attempts"] == 2, done
        assert done["result"]["resumed"] is True and done["result"]["log"][0].startswith("resuming")
        assert sorted((p.relative_to(work), p.stat().st_mtime_ns) for p in first.parent.rglob("*")
                      if p.is_file()) == kept
        assert done["result"]["portfolio_dir"] == f"jobs/{job['id']}/portfolio"
        new_version = done["result"]["portfolio_version"]
        assert new_version != old and done["progress"] == 1.0
        served = wait_for_portfolio(admin, new_version)
        assert sorted(e["dataset"] for e in served["entries"]) == ["noise", "tinted"]
        assert served["matchers"] == ["mlp"]
        ds = admin.post("/v1/datasets", json={"path": "collection/noise"}).json()
        rec = admin.post("/v1/recommendations", json={"dataset_id": ds["id"]}).json()
        assert rec["portfolio_version"] == new_version and rec["best_match"] == "noise"


def _wait_for_file(folder: Path, name: str, proc, timeout: float = 300.0) -> Path:
    """Wait until a file matching ``folder/name`` (a glob) exists (the worker ``proc`` must stay alive meanwhile)."""
    import time

    deadline = time.monotonic() + timeout
    while not (found := list(folder.glob(name))):
        assert proc.poll() is None, "the worker died"
        assert time.monotonic() < deadline, f"{name} did not appear in {timeout} s"
        time.sleep(0.2)
    return found[0]


def wait_for_portfolio(client, version: str, timeout: float = 30.0) -> dict:
    """The API follows the published portfolio within a few housekeeping ticks."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        served = client.get("/v1/portfolio").json()
        if served["version"] == version:
            return served
        time.sleep(0.5)
    raise AssertionError(f"portfolio {version} was not loaded; serving {served['version']}")
