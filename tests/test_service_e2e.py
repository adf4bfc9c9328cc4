"""End to end through a real uvicorn server and real worker processes on loopback (SQLite file, shipped portfolio).

register a dataset → recommend → fine-tune on CPU → poll → download the model; a worker killed with -9
mid-job; an API restart; cancellation.
"""

from __future__ import annotations

import io
import time

import pytest
import torch

from tests.fixtures.factories import make_image_folder
from tests.fixtures.live import (
    LiveServer,
    kill_hard,
    running_worker,
    service_env,
    start_worker,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("service-e2e")
    make_image_folder(root / "shapes", {"a": 24, "b": 24, "c": 24}, size=(24, 24))
    return root


@pytest.fixture(scope="module")
def server(root):
    srv = LiveServer(root, service_env(root)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def dataset_id(server) -> str:
    with server.client() as c:
        r = c.post("/v1/datasets", json={"path": "shapes"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _job(c, dataset_id: str, budget_s: float, **extra) -> dict:
    body = {"dataset_id": dataset_id, "budget_s": budget_s,
            **(extra or {"configuration": {"backbone": "mobilenet_v3_small", "pretrained": "none", "batch_size": 16,
                                           "input_size": 24}})}
    r = c.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    return r.json()


def test_register_recommend_finetune_download(server, root, dataset_id):
    with server.client() as c:
        again = c.post("/v1/datasets", json={"path": str(root / "shapes")})  # absolute inside the root: same dataset
        assert again.status_code == 200 and again.json()["id"] == dataset_id
        ds = c.get(f"/v1/datasets/{dataset_id}").json()
        assert ds["summary"]["n_items"] == 72 and ds["summary"]["n_classes"] == 3 and ds["summary"]["skipped"] == 0
        rec = c.post("/v1/recommendations", json={"dataset_id": dataset_id, "top_k": 3})
        assert rec.status_code == 200, rec.text
        rec = rec.json()
        assert rec["configuration"]["backbone"] and len(rec["neighbors"]) == 3 and rec["n_images"] == 64
        assert abs(sum(n["score"] for n in rec["neighbors"])) <= 1.0 + 1e-6
        assert rec["portfolio_version"].startswith("demo-") and rec["matcher"] == "mlp" and rec["elapsed_ms"] > 0
        job = _job(c, dataset_id, 6.0, recommendation_id=rec["id"])
        assert job["params"]["configuration"] == rec["configuration"]
        with running_worker(root, server.env):
            done = wait_for(c, job["id"], lambda j: j["status"] in ("succeeded", "failed", "cancelled"), 180)
        assert done["status"] == "succeeded", done
        assert done["device"] == "cpu" and done["progress"] == 1.0 and done["attempts"] == 1
        curve = done["learning_curve"]
        assert len(curve) >= 2 and all({"t", "nauc", "accuracy"} <= set(p) for p in curve)
        assert -1.0 <= done["alc"] <= 1.0 and done["result"]["final_nauc"] == curve[-1]["nauc"]
        model = c.get(f"/v1/jobs/{job['id']}/model")
        assert model.status_code == 200 and model.headers["content-type"] == "application/octet-stream"
        ckpt = torch.load(io.BytesIO(model.content), map_location="cpu", weights_only=True)
        assert ckpt["class_names"] == ["a", "b", "c"] and "state_dict" in ckpt and ckpt["format_version"] >= 1
        png = c.get(f"/v1/jobs/{job['id']}/curve.png")
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        listed = c.get("/v1/jobs", params={"status": "succeeded"}).json()
        assert job["id"] in [j["id"] for j in listed["items"]]
        metrics = c.get("/metrics").text
        assert 'metarec_recommendations_total{matcher="mlp"}' in metrics
        assert 'metarec_jobs{status="succeeded"}' in metrics and "metarec_request_duration_seconds_bucket" in metrics


def test_killed_worker_job_is_requeued_and_finishes(server, root, dataset_id):
    with server.client() as c:
        job = _job(c, dataset_id, 12.0)
        first = start_worker(root, server.env)
        try:
            wait_for(c, job["id"], lambda j: j["status"] == "running" and j["learning_curve"], 120)
        finally:
            kill_hard(first)
        assert c.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"  # nobody knows yet
        with running_worker(root, server.env):
            done = wait_for(c, job["id"], lambda j: j["status"] in ("succeeded", "failed"), 180)
    events = [h["event"] for h in done["history"]]
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2 and events.count("claimed") == 2 and "requeued" in events
    requeue = next(h for h in done["history"] if h["event"] == "requeued")
    assert "stopped heartbeating" in requeue["reason"]


def test_cancel_running_and_queued_jobs(server, root, dataset_id):
    with server.client() as c:
        queued = _job(c, dataset_id, 30.0)
        r = c.delete(f"/v1/jobs/{queued['id']}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert c.delete(f"/v1/jobs/{queued['id']}").status_code == 409
        running = _job(c, dataset_id, 120.0)
        with running_worker(root, server.env):
            wait_for(c, running["id"], lambda j: j["status"] == "running" and j["learning_curve"], 120)
            started = time.monotonic()
            assert c.delete(f"/v1/jobs/{running['id']}").json()["cancel_requested"] is True
            done = wait_for(c, running["id"], lambda j: j["status"] != "running", 60)
            assert time.monotonic() - started < 30
        assert done["status"] == "cancelled" and "cancelled by request" in done["error"]
        assert c.get(f"/v1/jobs/{running['id']}/model").status_code == 409


def test_restart_keeps_datasets_and_jobs(server, root, dataset_id):
    with server.client() as c:
        jobs_before = {j["id"]: j["status"] for j in c.get("/v1/jobs").json()["items"]}
    assert jobs_before
    server.stop()
    server.start()
    with server.client() as c:
        assert c.get(f"/v1/datasets/{dataset_id}").status_code == 200
        jobs_after = {j["id"]: j["status"] for j in c.get("/v1/jobs").json()["items"]}
        assert jobs_after == jobs_before
        assert c.get("/readyz").json()["status"] == "ready"


def test_sigterm_requeues_the_running_job(server, root, dataset_id):
    with server.client() as c:
        job = _job(c, dataset_id, 60.0)
        worker = start_worker(root, server.env)
        wait_for(c, job["id"], lambda j: j["status"] == "running", 120)
        worker.terminate()
        assert worker.wait(timeout=60) == 0
        back = c.get(f"/v1/jobs/{job['id']}").json()
        assert back["status"] == "queued" and "shut down" in back["history"][-1]["reason"]
        assert c.delete(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
