"""The service learns from its own jobs, through a real server, real workers and real SQLite (issue 14 §1):
a finished job becomes an observation; ``POST /v1/portfolio/update`` turns its dataset into a known one,
reporting the true fraction of cells, stopping between cells on cancel (the old portfolio keeps serving),
resuming from the store when its worker is stopped, and never training a cell the store holds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from portfolio.store import ObservationStore
from tests.fixtures.learning import CELL_S, CONFIGS, make_collection, make_learning_portfolio
from tests.fixtures.live import ADMIN_KEY, LiveServer, running_worker, service_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_collection(tmp_path_factory.mktemp("service-learning"))
    make_learning_portfolio(root / "pf", root / "known")
    return root


@pytest.fixture(scope="module")
def server(root):
    server = LiveServer(root, service_env(root, portfolio_dir=root / "pf"))
    try:  # a generous start timeout: on a loaded machine importing torch alone can take a minute
        yield server.start(timeout=600)
    finally:
        server.stop()


def _finished(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def test_jobs_feed_the_store_and_an_update_publishes_what_they_taught(server, root):
    with server.client(ADMIN_KEY) as admin, running_worker(root, server.env) as worker:
        before = admin.get("/v1/portfolio").json()
        nothing = admin.post("/v1/portfolio/update", json={})
        assert nothing.status_code == 422 and nothing.json()["error"]["code"] == "nothing_to_learn"
        ds = admin.post("/v1/datasets", json={"path": "new/fam_a"}).json()
        job = admin.post("/v1/jobs", json={"dataset_id": ds["id"], "configuration": CONFIGS[0].to_dict(),
                                           "budget_s": CELL_S}).json()
        job = wait_for(admin, job["id"], _finished, 600)
        assert job["status"] == "succeeded", job
        seen = job["result"]["observation"]
        assert seen["stored"] and seen["added"] and seen["store"] == "observations.sqlite"
        assert (root / seen["fingerprint"]).is_file() and seen["fingerprint"].startswith("fingerprints/")
        [row] = ObservationStore(root / "observations.sqlite").observations()
        assert (row.source, row.provenance, row.dataset_hash) == ("job", f"job:{job['id']}",
                                                                   ds["summary"]["content_hash"])
        assert (row.budget, row.budget_kind, row.device, row.alc) == (CELL_S, "seconds", "cpu", job["alc"])
        assert len(row.curve) == len(job["learning_curve"])

        body = {"collection_path": "known", "include_default": False}
        assert server.client().post("/v1/portfolio/update", json=body).status_code == 403  # admin only
        # an update cancelled between cells: stopped, nothing published, the old portfolio serves
        first = admin.post("/v1/portfolio/update", json=body)
        assert first.status_code == 202, first.text
        assert first.json()["kind"] == "portfolio_update" and first.json()["params"]["dataset_ids"] == [ds["id"]]
        wait_for(admin, first.json()["id"], lambda j: j["progress"] > 0 or _finished(j), 600)
        admin.delete(f"/v1/jobs/{first.json()['id']}")
        stopped = wait_for(admin, first.json()["id"], _finished, 600)
        assert stopped["status"] == "cancelled" and 0 < stopped["progress"] < 1, stopped
        assert admin.get("/v1/portfolio").json()["version"] == before["version"]
        cells_kept = len(ObservationStore(root / "observations.sqlite"))
        assert cells_kept >= 2  # the job's row and at least one cell

        second = admin.post("/v1/portfolio/update", json=body).json()
        # its worker is stopped (SIGTERM) after a cell: the job is requeued, with its cells in the store
        wait_for(admin, second["id"], lambda j: j["progress"] >= 3 / 6 or _finished(j), 600)
        worker.terminate()
        worker.wait(timeout=600)
        requeued = admin.get(f"/v1/jobs/{second['id']}").json()
        assert requeued["status"] == "queued" and requeued["attempts"] == 1, requeued
        cells_kept = len(ObservationStore(root / "observations.sqlite"))
        assert cells_kept >= 3
        with running_worker(root, server.env):
            done = wait_for(admin, second["id"], _finished, 900)
        assert done["status"] == "succeeded" and done["progress"] == 1.0 and done["attempts"] == 2, done
        assert done["result"]["resumed"] is True
        trained = [m for m in done["result"]["log"] if m.startswith("cell ")]
        assert len(trained) == 6 - cells_kept  # the job's cell and the earlier attempts' are read back
        assert "cell 1/6: candidate noise on fam_a" not in trained
        assert done["result"]["added_datasets"] == ["fam_a"]
        served = _served(admin, done["result"]["portfolio_version"])
        assert sorted(e["dataset"] for e in served["entries"]) == ["fam_a", "noise", "tinted"]
        assert served["provenance"]["updated_from"] == before["version"]
        updates = admin.get("/v1/jobs", params={"kind": "portfolio_update"}).json()
        assert [j["status"] for j in updates["items"]] == ["succeeded", "cancelled"]
    assert (root / "pf" / "portfolio.json").is_file() and not (root / "pf.observations.sqlite").exists()
    shutil.rmtree(root / "jobs", ignore_errors=True)


def _served(client, version: str, timeout: float = 300.0) -> dict:
    """The API follows the published portfolio within a few housekeeping ticks."""
    import time

    deadline = time.monotonic() + timeout
    served: dict = {}
    while time.monotonic() < deadline:
        served = client.get("/v1/portfolio").json()
        if served["version"] == version:
            return served
        time.sleep(0.5)
    raise AssertionError(f"portfolio {version} was not loaded; serving {served.get('version')}")
