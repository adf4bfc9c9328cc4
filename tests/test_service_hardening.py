"""The defects found when the service was attacked (issue 14 §4), each against a real uvicorn on loopback.

Huge offsets, lone surrogates, oversized headers, JSON bodies at the upload limit, pixel bombs, symlinks inside a
registered folder, uploads left behind by a killed API, clients that hang up mid-upload, server paths in
responses, unbounded configuration fields and the data root registered as a dataset.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import socket
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.fixtures.factories import make_image_folder
from tests.fixtures.live import ADMIN_KEY, live_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LIMITS = {"max_upload_bytes": 400_000, "max_json_bytes": 20_000, "max_image_pixels": 1_000_000,
          "max_request_pixels": 3_000_000, "max_header_bytes": 16_384}
ORPHAN, LIVE = "ds_0rphan0000000000000", "ds_11ve00000000000000"


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("outside")
    make_image_folder(out / "secret", {"x": 3}, size=(8, 8))
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, outside: Path) -> Path:
    root = tmp_path_factory.mktemp("service-hardening")
    make_image_folder(root / "good", {"a": 5, "b": 5}, size=(16, 16))
    make_image_folder(root / "partly", {"a": 4, "b": 4}, size=(16, 16))
    (root / "partly" / "a" / "broken.png").write_bytes(b"garbage")
    make_image_folder(root / "linkdir", {"a": 3}, size=(16, 16))
    os.symlink(outside / "secret" / "x", root / "linkdir" / "b")  # a class folder linking out of the root
    make_image_folder(root / "linkfile", {"a": 3, "b": 2}, size=(16, 16))
    os.symlink(outside / "secret" / "x" / "0000.png", root / "linkfile" / "b" / "0009.png")  # one image
    make_image_folder(root / "linkin", {"a": 3}, size=(16, 16))
    os.symlink(root / "good" / "b", root / "linkin" / "b")  # a link that stays inside the root is fine
    # what a `kill -9` of the API during an upload leaves: a partial archive, its lock, a half extraction
    incoming = root / "uploads" / ".incoming"
    incoming.mkdir(parents=True)
    (incoming / f"{ORPHAN}.archive").write_bytes(b"PK\x03\x04 partial")
    (incoming / f"{ORPHAN}.lock").write_text("")
    make_image_folder(root / "uploads" / ORPHAN / "half", {"a": 2}, size=(8, 8))
    return root


@pytest.fixture(scope="module")
def live_lock(root: Path):
    """An upload in progress in another live process (here: this one holds its lock): never removed."""
    (root / "uploads" / LIVE).mkdir(parents=True)
    with (root / "uploads" / ".incoming" / f"{LIVE}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="module")
def server(root, live_lock):
    yield from live_server(root, **LIMITS)


@pytest.fixture()
def c(server):
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def good_id(server) -> str:
    with server.client() as c:
        r = c.post("/v1/datasets", json={"path": "good"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def envelope(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"code", "message", "details"} and "Traceback" not in r.text
    if code:
        assert err["code"] == code, err
    return err


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 200)).save(buf, "PNG")
    return buf.getvalue()


def test_huge_offsets_are_422_not_500(c):
    for route in ("/v1/jobs", "/v1/datasets"):
        envelope(c.get(route, params={"offset": 9223372036854775808}), 422, "validation_error")
        envelope(c.get(route, params={"offset": 2**63 - 1}), 422, "validation_error")
        assert c.get(route, params={"offset": 1_000_000_000}).status_code == 200


def test_lone_surrogates_are_422_not_500(c, good_id):
    body = b'{"dataset_id": "%s", "budget_s": 5, "configuration": {"pretrained": "\\ud800.pt"}}' % good_id.encode()
    envelope(c.post("/v1/jobs", content=body, headers={"content-type": "application/json"}), 422)
    body = b'{"dataset_id": "%s", "budget_s": 5, "configuration": {"\\udfff": 1}}' % good_id.encode()
    envelope(c.post("/v1/jobs", content=body, headers={"content-type": "application/json"}), 422)
    body = b'{"path": "good", "name": "\\ud800"}'
    envelope(c.post("/v1/datasets", content=body, headers={"content-type": "application/json"}), 422)


def _send_big_header(port: int, size: int) -> tuple[bytes, int]:
    """Send a request whose one header is ``size`` bytes; the reply's first bytes and how much went out."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")
            while sent < size:
                s.sendall(b"a" * 65536)
                sent += 65536
            s.sendall(b"\r\n\r\n")
            return s.recv(64), sent
        except (BrokenPipeError, ConnectionResetError):
            return b"", sent


def test_oversized_request_headers_are_cut_off(server):
    reply, _sent = _send_big_header(server.port, 8 * 1024 * 1024)
    assert not reply.startswith(b"HTTP/1.1 200"), "an 8 MiB header was read in full and served"
    assert reply == b"" or re.match(rb"HTTP/1\.1 4(00|31)", reply), reply
    start = time.monotonic()
    with server.client(None) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"X-Normal": "b" * 4000}).status_code == 200  # ordinary headers pass
    assert time.monotonic() - start < 5  # the server is not stalled by the refused header


def test_json_routes_have_the_small_json_limit(c, server, good_id):
    big = {"dataset_id": good_id, "budget_s": 5, "configuration": {"backbone": "x" * 30_000}}
    assert LIMITS["max_json_bytes"] < 30_000 < LIMITS["max_upload_bytes"]
    envelope(c.post("/v1/jobs", json=big), 413, "payload_too_large")
    files = {"f": ("a.bin", b"x" * 30_000, "application/octet-stream")}  # multipart is no way around it
    envelope(c.post("/v1/jobs", files=files), 413, "payload_too_large")
    with server.client(ADMIN_KEY) as admin:
        envelope(admin.post("/v1/portfolio/rebuild", json={"collection_path": "y" * 30_000}), 413)


def test_uploaded_images_are_bounded_in_pixels(c):
    small = [("images", (f"{i}.png", png(16, 16), "image/png")) for i in range(4)]
    assert c.post("/v1/recommendations", files=small).status_code == 200
    huge = png(1100, 1000)  # 1.1 Mpx, a few kB on the wire
    assert len(huge) < 20_000
    err = envelope(c.post("/v1/recommendations", files=[*small, ("images", ("huge.png", huge, "image/png"))]),
                   422, "image_too_large")
    assert err["details"]["file"] == "huge.png"
    many = [("images", (f"m{i}.png", png(900, 900), "image/png")) for i in range(4)]  # 0.81 Mpx each, 3.2 together
    envelope(c.post("/v1/recommendations", files=many), 413, "too_many_pixels")


@pytest.mark.parametrize("path,link", [("linkdir", "b"), ("linkfile", "b/0009.png")])
def test_symlinks_inside_a_folder_may_not_leave_the_root(c, path, link):
    err = envelope(c.post("/v1/datasets", json={"path": path}), 400, "path_outside_root")
    assert err["details"]["link"] == link


def test_symlinks_that_stay_inside_the_root_are_followed(c):
    r = c.post("/v1/datasets", json={"path": "linkin"})
    assert r.status_code == 201, r.text
    assert r.json()["summary"]["class_counts"] == {"a": 3, "b": 5}


@pytest.mark.parametrize("path", [".", "./", "good/.."])
def test_the_data_root_itself_is_not_a_dataset(c, path):
    r = c.post("/v1/datasets", json={"path": path})
    assert r.status_code == 400 and r.json()["error"]["code"] in ("path_is_data_root", "path_traversal"), r.text


def test_orphaned_uploads_are_removed_at_start_but_live_ones_kept(server, root):
    uploads = root / "uploads"
    assert not (uploads / ORPHAN).exists()
    assert not list((uploads / ".incoming").glob(f"{ORPHAN}*"))
    assert (uploads / LIVE).is_dir() and (uploads / ".incoming" / f"{LIVE}.lock").exists()


def _metric_lines(c, route: str) -> list[str]:
    text = c.get("/metrics").text
    return [ln for ln in text.splitlines() if ln.startswith("metarec_request_duration_seconds_count")
            and f'route="{route}"' in ln]


def test_a_client_hanging_up_mid_upload_is_not_a_server_error(server, c):
    head = (b"POST /v1/datasets HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + ADMIN_KEY.encode() +
            b"\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 300000\r\n\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"a.zip\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(head + b"PK\x03\x04" + b"\0" * 5000)
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while not (lines := _metric_lines(c, "/v1/datasets")) or not any('status="499"' in ln for ln in lines):
        assert time.monotonic() < deadline, lines
        time.sleep(0.2)
    assert not any('status="500"' in ln for ln in lines), lines
    log = "".join(p.read_text() for p in server.root.glob("serve-*.log"))
    assert "unhandled error" not in log and "ClientDisconnect" not in log


def test_responses_carry_no_server_paths(c, server, root, good_id, outside):
    rs = [c.post("/v1/datasets", json={"path": "partly"}), c.get("/v1/datasets"),
          c.post("/v1/jobs", json={"dataset_id": good_id, "configuration": {}, "budget_s": 5}),
          c.get("/v1/portfolio"),
          c.post("/v1/datasets", files={"archive": ("x.zip", b"PK\x03\x04broken", "application/zip")})]
    with server.client(ADMIN_KEY) as admin:
        rs.append(admin.post("/v1/portfolio/reload", json={"path": "good"}))
    assert [r.status_code for r in rs] == [201, 200, 202, 200, 422, 422], [r.text for r in rs]
    for r in rs:
        assert str(root) not in r.text and str(outside) not in r.text, r.text
        assert not re.search(r" at 0x[0-9a-f]+", r.text), r.text
    assert rs[0].json()["summary"]["skipped_files"][0]["path"] == "partly/a/broken.png"
    assert rs[2].json()["params"]["dataset_path"] == "good"
    assert not rs[3].json()["directory"].startswith("/")


@pytest.mark.parametrize("field,value", [("head_width", 10**12), ("input_size", 10**12), ("max_edge", 10**12),
                                         ("last_k", 10**12), ("input_size", 4096)])
def test_configuration_fields_are_bounded(c, good_id, field, value):
    config = {field: value, **({"strategy": "last_k"} if field == "last_k" else {})}
    r = c.post("/v1/jobs", json={"dataset_id": good_id, "configuration": config, "budget_s": 5})
    assert envelope(r, 422, "invalid_configuration")["message"].count(field)


@pytest.mark.parametrize("scenario", [{"n_iterations": 10**12}, {"n_runs": 10**6}, {"max_budget": 1e12}])
def test_rebuild_scenario_is_bounded(server, scenario):
    with server.client(ADMIN_KEY) as admin:
        (root := server.root / "coll").mkdir(exist_ok=True)
        for name in ("one", "two"):
            if not (root / name).exists():
                make_image_folder(root / name, {"a": 3, "b": 3}, size=(8, 8))
        r = admin.post("/v1/portfolio/rebuild", json={"collection_path": "coll", "scenario": scenario})
    envelope(r, 422, "invalid_configuration")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_assets_served_by_metarec(server, page):
    """/docs and /redoc must render without internet: every script, style and icon comes from this server."""
    with server.client(None) as c:
        r = c.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", r.text)
        refs += re.findall(r"""url:\s*["']([^"']+)["']""", r.text)
        assert refs and "http://" not in r.text and "https://" not in r.text, r.text
        for ref in refs:
            assert ref.startswith("/") and not ref.startswith("//"), ref
            asset = c.get(ref)
            assert asset.status_code == 200 and len(asset.content) > 1000, (ref, asset.status_code)
        scripts = [ref for ref in refs if ref.endswith(".js")]
        assert scripts and all(c.get(s).headers["content-type"].split(";")[0] in
                               ("text/javascript", "application/javascript") for s in scripts)
