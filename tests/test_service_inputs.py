"""Every bad input gets its 4xx with the JSON error envelope from a real server; nothing is extracted or lost."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.factories import make_image_folder
from tests.fixtures.live import ADMIN_KEY, live_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LIMITS = {"max_upload_bytes": 300_000, "max_extract_bytes": 2_000_000, "max_extract_files": 200,
          "max_recommend_images": 16, "max_json_bytes": 100_000}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("service-inputs")
    make_image_folder(root / "good", {"a": 6, "b": 6}, size=(16, 16))
    outside = tmp_path_factory.mktemp("outside")
    make_image_folder(outside / "secret", {"a": 4, "b": 4})
    os.symlink(outside / "secret", root / "escape")
    (root / "empty" / "a").mkdir(parents=True)
    for cls in ("a", "b"):  # every image corrupt: nothing readable
        (root / "corrupt" / cls).mkdir(parents=True)
        for i in range(3):
            (root / "corrupt" / cls / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    make_image_folder(root / "partly", {"a": 5, "b": 5}, size=(16, 16))
    for name in ("one", "two"):
        make_image_folder(root / "coll" / name, {"a": 3, "b": 3}, size=(16, 16))
    (root / "partly" / "a" / "broken.png").write_bytes(b"garbage")
    return root


@pytest.fixture(scope="module")
def server(root):
    yield from live_server(root, **LIMITS)


@pytest.fixture()
def c(server):
    with server.client() as client:
        yield client


def envelope(r, status: int, code: str | None = None) -> dict:
    """Assert the status and the error envelope; return the error."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"code", "message", "details"} and err["message"] and "Traceback" not in r.text
    if code:
        assert err["code"] == code, err
    return err


def png_bytes(seed: int = 0, size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def zip_of(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def tar_of(members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info in members:
            payload = (data or {}).get(info.name)
            if payload is not None:
                info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def dataset_zip() -> bytes:
    return zip_of({f"cats/{cls}/{i}.png": png_bytes(i + 10 * j) for j, cls in enumerate("ab") for i in range(4)})


def upload(c, blob: bytes, filename: str = "data.zip"):
    return c.post("/v1/datasets", files={"archive": (filename, blob, "application/octet-stream")})


def uploads_left(root: Path) -> list[str]:
    up = root / "uploads"
    return sorted(p.name for p in up.iterdir() if p.name != ".incoming") if up.is_dir() else []


# ---- registering by path --------------------------------------------------------------------------------


@pytest.mark.parametrize("path,code", [("../../etc", "path_traversal"), ("good/../../x", "path_traversal"),
                                       ("/etc", "path_outside_root"), ("escape", "path_outside_root")])
def test_paths_outside_the_root_are_refused(c, path, code):
    envelope(c.post("/v1/datasets", json={"path": path}), 400, code)


def test_missing_path_is_404(c):
    envelope(c.post("/v1/datasets", json={"path": "nope"}), 404, "path_not_found")


def test_empty_and_unreadable_datasets_are_422(c):
    envelope(c.post("/v1/datasets", json={"path": "empty"}), 422, "invalid_dataset")
    err = envelope(c.post("/v1/datasets", json={"path": "corrupt"}), 422, "invalid_dataset")
    assert "corrupt" in err["details"]["path"]


def test_partly_corrupt_dataset_registers_with_a_report(c):
    r = c.post("/v1/datasets", json={"path": "partly"})
    assert r.status_code == 201, r.text
    summary = r.json()["summary"]
    assert summary["n_items"] == 10 and summary["skipped"] == 1
    assert summary["skipped_files"][0]["path"].endswith("broken.png") and summary["skipped_files"][0]["reason"]


@pytest.mark.parametrize("body,status,code", [
    (b"{not json", 422, "malformed_json"), (b'{"path": 3}', 422, "validation_error"),
    (b'{"path": "good", "extra": 1}', 422, "validation_error"), (b"[]", 422, "validation_error"),
])
def test_malformed_json_bodies(c, body, status, code):
    r = c.post("/v1/datasets", content=body, headers={"content-type": "application/json"})
    envelope(r, status, code)


def test_wrong_content_type_is_415(c):
    envelope(c.post("/v1/datasets", content=b"path=good", headers={"content-type": "text/plain"}), 415)


# ---- archives -------------------------------------------------------------------------------------------


def test_zip_upload_registers_the_inner_folder(c, root):
    r = upload(c, dataset_zip(), "cats.zip")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["source"] == "upload" and body["summary"]["n_classes"] == 2 and body["summary"]["n_items"] == 8
    assert body["id"] in uploads_left(root)


def test_tar_gz_upload(c):
    files = {f"{cls}/{i}.png": png_bytes(i + 5 * j) for j, cls in enumerate("xy") for i in range(3)}
    infos = [tarfile.TarInfo(name) for name in files]
    r = upload(c, tar_of(infos, files), "xy.tar.gz")
    assert r.status_code == 201, r.text
    assert r.json()["summary"]["class_counts"] == {"x": 3, "y": 3} and r.json()["name"] == "xy"


@pytest.mark.parametrize("members,links,code", [
    ({"../evil/a/1.png": b"x"}, None, "unsafe_archive"),             # zip slip
    ({"/abs/a/1.png": b"x"}, None, "unsafe_archive"),                # absolute member
    ({"d/a/1.png": b"x"}, {"d/b/link.png": "/etc/passwd"}, "unsafe_archive"),  # symlink member
])
def test_unsafe_zips_are_refused_and_nothing_is_extracted(c, root, members, links, code):
    before = uploads_left(root)
    envelope(upload(c, zip_of(members, links)), 422, code)
    assert uploads_left(root) == before


def _tar_member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize("info", [_tar_member("d/a/l.png", tarfile.SYMTYPE, "/etc/passwd"),
                                  _tar_member("d/a/h.png", tarfile.LNKTYPE, "d/a/0.png"),
                                  _tar_member("d/a/dev", tarfile.CHRTYPE),
                                  _tar_member("../d/a/0.png", tarfile.REGTYPE)])
def test_unsafe_tars_are_refused(c, root, info):
    before = uploads_left(root)
    good = tarfile.TarInfo("d/a/0.png")
    data = {"d/a/0.png": png_bytes(), "../d/a/0.png": png_bytes()}
    envelope(upload(c, tar_of([good, info], data), "x.tar.gz"), 422, "unsafe_archive")
    assert uploads_left(root) == before


def test_oversized_upload_is_413(c, root):
    before = uploads_left(root)
    blob = os.urandom(LIMITS["max_upload_bytes"] + 10)
    envelope(upload(c, blob), 413, "payload_too_large")
    assert uploads_left(root) == before and not list((root / "uploads" / ".incoming").iterdir())


def test_zip_bomb_is_cut_at_the_extraction_limit(c, root):
    before = uploads_left(root)
    bomb = zip_of({"d/a/big.png": b"\0" * (LIMITS["max_extract_bytes"] + 1)})
    assert len(bomb) < LIMITS["max_upload_bytes"]  # small on the wire, huge once extracted
    envelope(upload(c, bomb), 413, "archive_too_large")
    many = zip_of({f"d/a/{i}.png": b"" for i in range(LIMITS["max_extract_files"] + 1)})
    envelope(upload(c, many), 413, "archive_too_many_files")
    assert uploads_left(root) == before


def test_not_an_archive_and_corrupt_archive(c):
    envelope(upload(c, b"hello, not an archive"), 415, "unsupported_archive")
    envelope(upload(c, dataset_zip()[:200]), 422)
    envelope(upload(c, zip_of({"d/a/x.txt": b"not an image"})), 422, "invalid_dataset")
    envelope(c.post("/v1/datasets", files={"other": ("a.zip", b"x")}), 422)


# ---- recommendations and jobs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_id(server) -> str:
    with server.client() as c:
        return c.post("/v1/datasets", json={"path": "good"}).json()["id"]


def test_unknown_ids_are_404(c, good_id):
    envelope(c.get("/v1/datasets/ds_nope"), 404, "not_found")
    envelope(c.post("/v1/recommendations", json={"dataset_id": "ds_nope"}), 404, "not_found")
    envelope(c.get("/v1/jobs/job_nope"), 404, "not_found")
    envelope(c.delete("/v1/jobs/job_nope"), 404, "not_found")
    envelope(c.get("/v1/jobs/job_nope/model"), 404, "not_found")
    envelope(c.post("/v1/jobs", json={"dataset_id": good_id, "recommendation_id": "rec_nope", "budget_s": 5}),
             404, "not_found")
    envelope(c.get("/v1/nothing-here"), 404)


@pytest.mark.parametrize("body,code", [
    ({"dataset_id": "x", "top_k": 0}, "validation_error"),
    ({"dataset_id": "x", "matcher": "nope"}, None),
    ({}, "validation_error"),
])
def test_bad_recommendation_requests(c, good_id, body, code):
    body = {**body, "dataset_id": good_id} if "dataset_id" in body else body
    envelope(c.post("/v1/recommendations", json=body), 422, code)


def test_uploaded_batch_recommendation_and_its_errors(c):
    files = [("images", (f"{i}.png", png_bytes(i), "image/png")) for i in range(8)]
    r = c.post("/v1/recommendations", files=files, data={"top_k": "2"})
    assert r.status_code == 200, r.text
    assert r.json()["n_images"] == 8 and len(r.json()["neighbors"]) == 2 and r.json()["dataset_id"] is None
    bad = [*files[:2], ("images", ("x.png", b"\x89PNG\r\n\x1a\ntruncated", "image/png"))]
    assert envelope(c.post("/v1/recommendations", files=bad), 422, "invalid_image")["details"]["file"] == "x.png"
    envelope(c.post("/v1/recommendations", files=[("images", ("a.txt", b"text", "text/plain"))]), 422)
    envelope(c.post("/v1/recommendations", files=files * 3), 413, "too_many_images")
    envelope(c.post("/v1/recommendations", files=files, data={"top_k": "zero"}), 422, "validation_error")


@pytest.mark.parametrize("body,code", [
    ({"budget_s": 5}, "validation_error"),                                          # neither source
    ({"budget_s": 5, "configuration": {}, "recommendation_id": "r"}, "validation_error"),  # both
    ({"budget_s": -1, "configuration": {}}, "validation_error"),
    ({"budget_s": 1e9, "configuration": {}}, "validation_error"),                  # over a week: the schema
    ({"budget_s": 5e5, "configuration": {}}, "budget_too_large"),                  # over the server's limit
    ({"budget_s": 5, "configuration": {"lr": 5.0}}, "invalid_configuration"),
    ({"budget_s": 5, "configuration": {"backbone": "nope"}}, "invalid_configuration"),
    ({"budget_s": 5, "configuration": {"pretrained": "/etc/passwd"}}, None),
])
def test_bad_job_requests(c, good_id, body, code):
    r = c.post("/v1/jobs", json={"dataset_id": good_id, **body})
    assert 400 <= r.status_code < 500, r.text
    envelope(r, r.status_code, code)


def test_bad_job_filters_and_admin_inputs(c, server):
    envelope(c.get("/v1/jobs", params={"status": "exploded"}), 422, "validation_error")
    with server.client(ADMIN_KEY) as admin:
        envelope(admin.post("/v1/portfolio/reload", json={"path": "../x"}), 400, "path_traversal")
        envelope(admin.post("/v1/portfolio/reload", json={"path": "good"}), 422, "portfolio_refused")
        envelope(admin.post("/v1/portfolio/rebuild", json={"collection_path": "coll", "scenario": {"eta": 0.5}}),
                 422, "invalid_configuration")
        envelope(admin.post("/v1/portfolio/rebuild", json={"collection_path": "coll", "scenario": {"zzz": 1}}),
                 422, "invalid_scenario")
        envelope(admin.post("/v1/portfolio/rebuild", json={"collection_path": "coll", "datasets": ["one", "x"]}),
                 422, "invalid_collection")
        envelope(admin.post("/v1/portfolio/rebuild", json={"collection_path": "good"}), 422, "invalid_dataset")
        envelope(admin.post("/v1/portfolio/rebuild", json={"collection_path": "coll",
                                                            "base_config": {"lr": 9}}), 422, "invalid_configuration")
        assert admin.get("/readyz").status_code == 200  # the refused portfolio did not replace the served one


def test_bodies_over_the_limit_are_refused_while_streaming(c):
    big = b'{"path": "' + b"x" * (LIMITS["max_upload_bytes"] + 70_000) + b'"}'
    envelope(c.post("/v1/datasets", content=big, headers={"content-type": "application/json"}), 413)

    def chunks():  # no Content-Length: the limit is enforced on the bytes as they arrive
        for _ in range(40):
            yield b"x" * 10_000

    r = c.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    envelope(r, 413, "payload_too_large")


def test_listing_pages(c, good_id):
    everything = c.get("/v1/datasets").json()["items"]
    assert good_id in [d["id"] for d in everything]
    pages = [c.get("/v1/datasets", params={"limit": 1, "offset": i}).json()["items"] for i in range(len(everything))]
    assert [p[0]["id"] for p in pages] == [d["id"] for d in everything]
    assert c.get("/v1/datasets", params={"offset": len(everything)}).json()["count"] == 0
    envelope(c.get("/v1/datasets", params={"limit": 0}), 422, "validation_error")
    envelope(c.get("/v1/jobs", params={"offset": -1}), 422, "validation_error")
