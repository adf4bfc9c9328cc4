"""Auth matrix (every route × no key / user key / admin key) and schemathesis against the app's own OpenAPI."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.fixtures.factories import make_image_folder
from tests.fixtures.live import ADMIN_KEY, USER_KEY, live_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# (method, path, json body, admin only); ids are unknown on purpose: auth is checked before lookups
ROUTES = [
    ("GET", "/v1/datasets", None, False),
    ("POST", "/v1/datasets", {"path": "ds"}, False),
    ("GET", "/v1/datasets/ds_x", None, False),
    ("POST", "/v1/recommendations", {"dataset_id": "ds_x"}, False),
    ("POST", "/v1/jobs", {"dataset_id": "ds_x", "configuration": {}, "budget_s": 1}, False),
    ("GET", "/v1/jobs", None, False),
    ("GET", "/v1/jobs/job_x", None, False),
    ("DELETE", "/v1/jobs/job_x", None, False),
    ("GET", "/v1/jobs/job_x/model", None, False),
    ("GET", "/v1/jobs/job_x/curve.png", None, False),
    ("GET", "/v1/portfolio", None, False),
    ("GET", "/v1/portfolio/figures", None, False),
    ("GET", "/v1/portfolio/figures/{name}", None, False),
    ("POST", "/v1/portfolio/reload", {"path": "nope"}, True),
    ("POST", "/v1/portfolio/rebuild", {"collection_path": "nope"}, True),
    ("POST", "/v1/portfolio/update", {}, True),
]
PUBLIC = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc", "/", "/web/app.js"]
MAX_EXAMPLES = int(os.environ.get("METAREC_FUZZ_EXAMPLES", "30"))  # per operation (was 12: too few to be sure)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("service-api")
    make_image_folder(root / "ds", {"a": 5, "b": 5}, size=(16, 16))
    return root


@pytest.fixture(scope="module")
def server(root):
    yield from live_server(root)


def test_every_route_is_in_the_matrix(server):
    with server.client(None) as c:
        paths = c.get("/openapi.json").json()["paths"]
    documented = {(m.upper(), p) for p, ops in paths.items() for m in ops if p.startswith("/v1/")}
    in_matrix = {(m, p.replace("ds_x", "{dataset_id}").replace("job_x", "{job_id}")) for m, p, _, _ in ROUTES}
    assert documented == in_matrix


def test_every_schema_reference_resolves(server):
    """Routes that parse their own bodies name them by $ref: each must be in the document's components (a
    dangling one hides the fields from /docs, from generated clients and from the web page's form)."""
    with server.client(None) as c:
        doc = c.get("/openapi.json").json()
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs and refs <= set(doc["components"]["schemas"]), refs - set(doc["components"]["schemas"])
    body = doc["components"]["schemas"]["RecommendationRequest"]["properties"]
    assert body["evidence"]["enum"] == ["fingerprints", "metafeatures"] and "policy" in body


@pytest.mark.parametrize("method,path,body,admin_only", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_auth_matrix(server, method, path, body, admin_only):
    for key, expect in ((None, {401}), ("wrong-key-wrong-key", {401}), (USER_KEY, {403} if admin_only else None),
                        (ADMIN_KEY, None)):
        with server.client(key) as c:
            r = c.request(method, path, json=body)
        if expect is None:
            assert r.status_code not in (401, 403) and r.status_code < 500, (key, r.status_code, r.text)
        else:
            assert r.status_code in expect, (key, r.status_code, r.text)
            assert r.json()["error"]["code"] in ("unauthorized", "forbidden")
            if r.status_code == 401:
                assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", PUBLIC)
def test_public_routes_need_no_key(server, path):
    with server.client(None) as c:
        assert c.get(path).status_code == 200


def test_errors_are_json_with_the_envelope_for_unknown_routes_and_methods(server):
    with server.client() as c:
        for r in (c.get("/v2/nothing"), c.put("/v1/datasets"), c.patch("/v1/jobs/job_x")):
            assert r.status_code in (404, 405) and set(r.json()["error"]) == {"code", "message", "details"}


def _fuzz(operation, base_url: str, statuses: list[int]) -> None:
    """Hypothesis-generated requests for one operation (as admin, so auth never hides a handler); 5xx fails."""

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case) -> None:
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)
        statuses.append(response.status_code)
        case.validate_response(response, checks=(not_a_server_error,))

    run()


def test_schemathesis_finds_no_server_errors(server):
    """schemathesis against the app's own OpenAPI document: no operation answers 5xx to generated input."""
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    statuses: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        _fuzz(operation, server.url, statuses)
    assert len(statuses) >= 5 * len(operations) and {200, 404, 422} <= set(statuses)
