"""A2/A4: served routes vs the OpenAPI spec in a real git repository (tag + HEAD).

The served routes here are given as lists; tests/checks/http/test_routes.py gets them from the
app's code through `[project.routes]` and the gate.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from relnb.checks.http.openapi import (
    check_endpoints_documented,
    normalize_path,
    openapi_breaking_changes,
)
from relnb.results import Status

DOC = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string"},
        "workspace_id": {"type": "string"},
    },
}


def ok(schema):
    return {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}


SPEC_V1 = {
    "openapi": "3.0.3",
    "info": {"title": "docflow", "version": "1.0.0"},
    "paths": {
        "/health": {"get": {"responses": ok({"type": "object"})}},
        "/version": {
            "get": {"responses": ok({"type": "object", "properties": {"sha": {"type": "string"}}})}
        },
        "/me": {"get": {"responses": ok({"$ref": "#/components/schemas/Me"})}},
        "/workspaces": {
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}},
                            }
                        }
                    }
                },
                "responses": {"201": {"description": "created"}},
            }
        },
        "/documents/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {"responses": ok({"$ref": "#/components/schemas/Document"})},
        },
    },
    "components": {
        "schemas": {
            "Me": {
                "type": "object",
                "properties": {
                    "sub": {"type": "string"},
                    "email": {"type": "string"},
                    "workspaces": {"type": "array", "items": {"type": "string"}},
                },
            },
            "Document": DOC,
        }
    },
}

SPEC_V2 = copy.deepcopy(SPEC_V1)
SPEC_V2["info"]["version"] = "1.1.0"
SPEC_V2["paths"]["/analytics/summary"] = {
    "get": {
        "parameters": [
            {"name": "workspace_id", "in": "query", "required": False, "schema": {"type": "string"}}
        ],
        "responses": ok({"type": "object", "properties": {"workspaces": {"type": "integer"}}}),
    }
}
SPEC_V2["paths"]["/health"]["get"]["description"] = "liveness and dependencies"

SERVED_V2 = [
    "GET /health",
    "GET /version",
    "GET /me",
    "POST /workspaces",
    "GET /documents/{doc_id}",
    "HEAD /documents/{doc_id}",
    "GET /analytics/summary",
    "GET /metrics",
    "POST /_admin/faults",
]


@pytest.fixture
def app_repo(repo):
    repo.commit({"openapi.yaml": yaml.safe_dump(SPEC_V1, sort_keys=False)}, "1.0.0", tag="v1.0.0")
    head = repo.commit({"openapi.yaml": yaml.safe_dump(SPEC_V2, sort_keys=False)}, "analytics")
    repo.head = head
    return repo


def check(repo, **kw):
    kw.setdefault("ignore", ["/metrics", "/_admin/*"])
    return check_endpoints_documented(str(repo.path), "HEAD", "v1.0.0", "openapi.yaml", **kw)


def test_all_served_routes_documented(app_repo):
    out = check(app_repo, served_routes=SERVED_V2, previous_routes=SERVED_V2[:5])
    assert out.status is Status.PASSED, out
    assert out.evidence["new_since_previous"] == [
        "GET /analytics/summary",
        "GET /metrics",
        "POST /_admin/faults",
    ]
    assert out.evidence["served"] == sorted(set(SERVED_V2) - {"HEAD /documents/{doc_id}"})
    assert "GET /analytics/summary" in out.evidence["documented"]
    assert out.evidence["added"] == ["GET /analytics/summary"]
    assert out.evidence["removed"] == []
    assert out.evidence["changed"] == ["GET /health"]
    assert out.evidence["ignored"] == ["GET /metrics", "POST /_admin/faults"]
    assert out.evidence["breaking_changes"] == []
    assert out.evidence["head_sha"] == app_repo.head
    json.dumps(out.evidence)  # JSON-able as the journal needs


def test_served_route_missing_from_spec_fails(app_repo):
    out = check(
        app_repo, served_routes=[*SERVED_V2, ("POST", "/documents"), "GET /metrics"], ignore=[]
    )
    assert out.status is Status.FAILED
    assert (
        "POST /documents" in out.evidence["undocumented"]
        and "GET /metrics" in out.evidence["undocumented"]
    )
    assert "missing from openapi.yaml" in out.summary


def test_new_route_undocumented_at_head_fails(repo):
    """The 1.1.0 app serves /analytics/summary but the spec was not updated."""
    repo.commit({"openapi.yaml": yaml.safe_dump(SPEC_V1)}, "1.0.0", tag="v1.0.0")
    repo.commit({"app.py": "# analytics route\n"}, "add analytics, forget the spec")
    out = check(repo, served_routes=SERVED_V2)
    assert out.status is Status.FAILED and out.evidence["undocumented"] == [
        "GET /analytics/summary"
    ]


def test_no_served_routes_is_inconclusive_not_the_spec_again(app_repo):
    """issue 19 item 8: without served routes A2 took the spec at HEAD as what is served (and
    passed); a served OpenAPI document is no better. No route source: inconclusive."""
    out = check(app_repo)
    assert out.status is Status.INCONCLUSIVE, out
    assert out.evidence["route_source"] == {"missing_config": "project.routes"}
    assert "project.routes.command or project.routes.app" in out.summary
    out = check(app_repo, served_routes=[])
    assert out.status is Status.INCONCLUSIVE and "empty" in out.summary


def test_spec_missing_or_broken_at_head_fails(repo):
    repo.commit({"openapi.yaml": yaml.safe_dump(SPEC_V1)}, "1.0.0", tag="v1.0.0")
    repo.commit({"openapi.yaml": "paths: [unclosed"}, "broken")
    out = check(repo, served_routes=["GET /health"])
    assert out.status is Status.FAILED and "does not parse" in out.summary
    repo.commit({"openapi.yaml": None}, "deleted")
    out = check(repo, served_routes=["GET /health"])
    assert out.status is Status.FAILED and "no OpenAPI spec" in out.summary


def test_unknown_previous_tag_is_inconclusive(app_repo):
    out = check_endpoints_documented(
        str(app_repo.path), "HEAD", "v0.9.9", "openapi.yaml", served_routes=[]
    )
    assert out.status is Status.INCONCLUSIVE and "v0.9.9" in out.summary


def test_first_release_without_previous_tag(app_repo):
    out = check_endpoints_documented(
        str(app_repo.path), "HEAD", None, "openapi.yaml", served_routes=SERVED_V2[:5]
    )
    assert out.status is Status.PASSED and len(out.evidence["added"]) == 6


def test_json_spec_supported(repo):
    repo.commit({"api/openapi.json": json.dumps(SPEC_V1)}, "1.0.0", tag="v1.0.0")
    repo.commit({"api/openapi.json": json.dumps(SPEC_V2)}, "1.1.0")
    out = check_endpoints_documented(
        str(repo.path),
        "HEAD",
        "v1.0.0",
        "api/openapi.json",
        served_routes=["GET /analytics/summary"],
    )
    assert out.status is Status.PASSED and out.evidence["added"] == ["GET /analytics/summary"]


def test_breaking_changes_detected(app_repo):
    new = copy.deepcopy(SPEC_V2)
    del new["paths"]["/version"]  # removed operation
    new["components"]["schemas"]["Me"]["properties"]["mail"] = new["components"]["schemas"]["Me"][
        "properties"
    ].pop("email")
    new["components"]["schemas"]["Document"] = copy.deepcopy(DOC)
    new["components"]["schemas"]["Document"]["properties"]["status"] = {"type": "integer"}
    new["paths"]["/documents/{id}"]["get"]["parameters"] = [
        {"name": "X-Workspace", "in": "header", "required": True, "schema": {"type": "string"}}
    ]
    body = new["paths"]["/workspaces"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    body["required"] = ["name", "plan"]
    body["properties"]["plan"] = {"type": "string"}
    kinds = {
        (f["kind"], f.get("field") or f.get("parameter") or f["operation"])
        for f in openapi_breaking_changes(SPEC_V1, new)
    }
    assert kinds == {
        ("removed-operation", "GET /version"),
        ("removed-response-field", "email"),
        ("changed-response-field-type", "status"),
        ("new-required-parameter", "X-Workspace"),
        ("new-required-request-field", "plan"),
    }
    renamed = [
        f for f in openapi_breaking_changes(SPEC_V1, new) if f["kind"] == "removed-response-field"
    ]
    assert renamed[0]["possibly_renamed_to"] == ["mail"]
    # and A2 carries them as evidence without failing on them
    app_repo.commit({"openapi.yaml": yaml.safe_dump(new)}, "breaking")
    served = [r for r in SERVED_V2 if r != "GET /version"]
    out = check(app_repo, served_routes=served)
    assert out.status is Status.PASSED and len(out.evidence["breaking_changes"]) == 5
    assert "GET /version" in out.evidence["removed"] and "5 breaking" in out.summary


def test_additive_changes_are_not_breaking():
    assert openapi_breaking_changes(SPEC_V1, SPEC_V2) == []
    relaxed = copy.deepcopy(SPEC_V1)
    relaxed["paths"]["/workspaces"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "required"
    ] = []
    assert openapi_breaking_changes(SPEC_V1, relaxed) == []


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("/documents/{id}", "/documents/{}"),
        ("/documents/:id", "/documents/{}"),
        ("/documents/<int:id>", "/documents/{}"),
        ("/me/", "/me"),
        ("/", "/"),
    ],
)
def test_normalize_path(raw, norm):
    assert normalize_path(raw) == norm


def test_spec_without_operations_fails(repo):
    repo.commit(
        {"openapi.yaml": "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths: {}\n"}, "empty"
    )
    out = check_endpoints_documented(str(repo.path), "HEAD", None, "openapi.yaml", served_routes=[])
    assert out.status is Status.FAILED and "no operations" in out.summary
