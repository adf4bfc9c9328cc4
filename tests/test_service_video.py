"""A video dataset through the REST API: upload as an archive, recommend, fine-tune on a worker (video issue)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.live import live_server, running_worker, wait_for
from tests.fixtures.video import make_video_dataset

DEMO8 = Path(__file__).resolve().parents[1] / "portfolios" / "demo8"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("service-video")
    make_video_dataset(root / "clips", {"right": 6, "left": 6}, n_frames=12, layout=".mp4")
    return root


@pytest.fixture(scope="module")
def server(root):
    # the eight-dataset portfolio knows two video datasets (the default's video groups are frame datasets)
    yield from live_server(root, portfolio_dir=DEMO8)


def _zip_of_folder(folder) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"moving/{path.relative_to(folder)}")
    return buf.getvalue()


def test_video_dataset_upload_recommend_and_finetune(server, root):
    with server.client() as c:
        r = c.post("/v1/datasets", files={"archive": ("moving.zip", _zip_of_folder(root / "clips"), "application/zip")})
        assert r.status_code == 201, r.text
        ds = r.json()
        assert ds["summary"]["modality"] == "video" and ds["summary"]["n_items"] == 12
        rec = c.post("/v1/recommendations", json={"dataset_id": ds["id"], "top_k": 8})
        assert rec.status_code == 200, rec.text
        assert rec.json()["n_images"] == 12  # one fingerprint per clip
        names = {n["dataset"] for n in rec.json()["neighbors"]}
        assert {"video_motion", "video_shapes"} <= names  # image and video datasets ranked together
        config = {"backbone": "mobilenet_v3_small", "pretrained": "none", "batch_size": 4, "input_size": 16,
                  "video_head": "temporal_conv"}
        job = c.post("/v1/jobs", json={"dataset_id": ds["id"], "configuration": config, "budget_s": 8})
        assert job.status_code == 202, job.text
        with running_worker(root, server.env):
            done = wait_for(c, job.json()["id"], lambda j: j["status"] in ("succeeded", "failed"), 240)
        assert done["status"] == "succeeded", done
        assert len(done["learning_curve"]) >= 2 and -1 <= done["alc"] <= 1
        assert done["params"]["configuration"]["video_head"] == "temporal_conv"
        assert c.get(f"/v1/jobs/{done['id']}/model").status_code == 200
