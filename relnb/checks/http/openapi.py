"""A2 (and A4's evidence): is every route the app's code serves documented in the OpenAPI spec?

The spec is read from git at the release SHA and at the previous release tag, so the verdict is
about the commit being released, not a working tree. The served routes come from the app's code
at the same SHA (`routes.py`: a command or a Starlette/FastAPI app, configured in
`[project.routes]`), never from the spec itself or a served copy of it: without a route source
A2 is inconclusive. Breaking changes between the two specs are reported for A4's reviewer; they
do not fail A2.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ... import git
from ...redact import scrub
from ...results import Outcome
from .routes import ANY, Listing, RouteSource, RouteSourceError, served_routes_at

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Frameworks answer these on their own for every route; they are not documented operations.
_AUTO_METHODS = {"HEAD", "OPTIONS"}
_MAX_DEPTH = 12


def load_spec(text: str, where: str = "spec") -> dict[str, Any]:
    """Parse an OpenAPI document written as JSON or YAML (needs PyYAML for YAML)."""
    text = text.lstrip("\ufeff")
    if text.lstrip().startswith("{"):
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("paths", {}), dict):
        raise ValueError(f"{where} is not an OpenAPI document (no `paths` mapping)")
    return data


def spec_at(repo: str, rev: str, path: str) -> dict[str, Any] | None:
    """The spec at `rev:path`, None when the file does not exist there. Raises ValueError if unparseable."""
    shown = git.run(repo, "show", f"{rev}:{path}")
    if shown.returncode != 0:
        return None
    return load_spec(shown.stdout, f"{path} at {rev}")


def normalize_path(path: str) -> str:
    """`/docs/:id`, `/docs/<int:id>` and `/docs/{doc_id}` all become `/docs/{}`."""
    path = path.split("?", 1)[0]
    path = re.sub(r"\{[^}]*\}", "{}", path)
    path = re.sub(r"<(?:[^:>]+:)?[^>]+>", "{}", path)
    path = re.sub(r"(?<=/):[A-Za-z_]\w*", "{}", path)
    if len(path) > 1:
        path = path.rstrip("/")
    return path or "/"


def operations(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`"GET /path"` → operation object, for every operation of the spec."""
    ops: dict[str, dict[str, Any]] = {}
    for path, item in (spec.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters") or []
        for method in HTTP_METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                merged = dict(op)
                if shared:
                    merged["parameters"] = [*shared, *(op.get("parameters") or [])]
                ops[f"{method.upper()} {path}"] = merged
    return ops


def _resolve(spec: Mapping[str, Any], node: Any, depth: int = 0) -> Any:
    """Follow local `$ref`s (`#/components/...`) recursively, bounded against cycles."""
    if depth > _MAX_DEPTH:
        return node
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = spec
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            if target is None:
                return node
            return _resolve(spec, target, depth + 1)
        return {k: _resolve(spec, v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(spec, v, depth + 1) for v in node]
    return node


def _fields(schema: Any, prefix: str = "", depth: int = 0) -> dict[str, str]:
    """Dotted field names of a resolved schema → their type (arrays as `name[]`)."""
    out: dict[str, str] = {}
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return out
    for combo in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(combo) or []:
            out.update(_fields(sub, prefix, depth + 1))
    if schema.get("type") == "array" or "items" in schema:
        return {**out, **_fields(schema.get("items"), prefix + "[]", depth + 1)}
    for name, sub in (schema.get("properties") or {}).items():
        key = f"{prefix}.{name}" if prefix else name
        out[key] = str(sub.get("type", "object")) if isinstance(sub, dict) else "?"
        out.update(_fields(sub, key, depth + 1))
    return out


def _json_schema(container: Any) -> Any:
    content = (container or {}).get("content") or {}
    for media, body in content.items():
        if "json" in media and isinstance(body, dict):
            return body.get("schema")
    return None


def _required_body_fields(schema: Any, depth: int = 0) -> set[str]:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return set()
    req = set(schema.get("required") or [])
    for sub in schema.get("allOf") or []:
        req |= _required_body_fields(sub, depth + 1)
    return req


def _params(op: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{p.get('in')}:{p.get('name')}": p
        for p in op.get("parameters") or []
        if isinstance(p, dict) and p.get("name")
    }


def openapi_breaking_changes(
    old_spec: Mapping[str, Any], new_spec: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Changes that break existing clients: removed operations, removed/retyped response fields,
    new required parameters and new required request fields."""
    findings: list[dict[str, Any]] = []
    old_ops = {k: _resolve(old_spec, v) for k, v in operations(old_spec).items()}
    new_ops = {k: _resolve(new_spec, v) for k, v in operations(new_spec).items()}
    new_by_norm = {f"{k.split(' ', 1)[0]} {normalize_path(k.split(' ', 1)[1])}": k for k in new_ops}
    for key, old in old_ops.items():
        method, path = key.split(" ", 1)
        new_key = key if key in new_ops else new_by_norm.get(f"{method} {normalize_path(path)}")
        if new_key is None:
            findings.append({"kind": "removed-operation", "operation": key})
            continue
        new = new_ops[new_key]
        # Responses: a field a client reads must not disappear or change type.
        for code, resp in (old.get("responses") or {}).items():
            if not str(code).startswith("2"):
                continue
            old_fields = _fields(_json_schema(resp))
            new_resp = (new.get("responses") or {}).get(code)
            if new_resp is None:
                findings.append({"kind": "removed-response", "operation": key, "status": str(code)})
                continue
            new_fields = _fields(_json_schema(new_resp))
            removed = sorted(set(old_fields) - set(new_fields))
            added = sorted(set(new_fields) - set(old_fields))
            for name in removed:
                item = {
                    "kind": "removed-response-field",
                    "operation": key,
                    "status": str(code),
                    "field": name,
                }
                parent = name.rsplit(".", 1)[0] if "." in name else ""
                siblings = [a for a in added if (a.rsplit(".", 1)[0] if "." in a else "") == parent]
                if siblings:
                    item["possibly_renamed_to"] = siblings
                findings.append(item)
            for name in sorted(set(old_fields) & set(new_fields)):
                if old_fields[name] != new_fields[name]:
                    findings.append(
                        {
                            "kind": "changed-response-field-type",
                            "operation": key,
                            "status": str(code),
                            "field": name,
                            "old_type": old_fields[name],
                            "new_type": new_fields[name],
                        }
                    )
        # Parameters: a new required one (or one made required) breaks callers that omit it.
        old_params, new_params = _params(old), _params(new)
        for pid, p in new_params.items():
            if p.get("required") and not (old_params.get(pid) or {}).get("required"):
                findings.append(
                    {
                        "kind": "new-required-parameter",
                        "operation": key,
                        "parameter": p.get("name"),
                        "in": p.get("in"),
                    }
                )
        # Request body: new required fields, or a body that became required.
        old_body, new_body = old.get("requestBody") or {}, new.get("requestBody") or {}
        if new_body.get("required") and not old_body.get("required"):
            findings.append({"kind": "request-body-now-required", "operation": key})
        old_req = _required_body_fields(_json_schema(old_body))
        for name in sorted(_required_body_fields(_json_schema(new_body)) - old_req):
            findings.append({"kind": "new-required-request-field", "operation": key, "field": name})
    return findings


def _canonical(spec: Mapping[str, Any], op: Any) -> str:
    return json.dumps(_resolve(spec, op), sort_keys=True, default=str)


def _parse_route(entry: Any) -> list[str]:
    """`"GET /x"`, `{"method": "GET", "path": "/x"}`, `{"methods": [...], "path"}`, `("GET", "/x")`."""
    if isinstance(entry, str):
        parts = entry.split()
        if len(parts) == 2:
            return [f"{parts[0].upper()} {parts[1]}"]
        raise ValueError(f"route {entry!r} is not `METHOD /path`")
    if isinstance(entry, list | tuple) and len(entry) == 2:
        return [f"{str(entry[0]).upper()} {entry[1]}"]
    if isinstance(entry, dict) and "path" in entry:
        methods = entry.get("methods") or [entry.get("method")]
        return [f"{str(m).upper()} {entry['path']}" for m in methods if m]
    raise ValueError(f"route {entry!r} has no method and path")


def _key(route: str) -> str:
    """`GET /documents/<int:id>` → `GET /documents/{}`: the form served and documented routes meet in."""
    method, path = route.split(" ", 1)
    return f"{method} {normalize_path(path)}"


NOT_CONFIGURED = (
    "not configured: project.routes.command or project.routes.app — name what lists the routes the "
    "app's code serves (A2 never takes them from the spec it judges)"
)


def _served(
    repo: str,
    sha: str,
    source: RouteSource | None,
    explicit: Iterable[Any] | None,
    env: Mapping[str, str],
) -> Listing:
    """The routes served at `sha`: the explicit list when given, else the route source's."""
    if explicit is not None:
        try:
            routes = sorted({r for entry in explicit for r in _parse_route(entry)})
        except ValueError as exc:
            raise RouteSourceError(f"served routes: {exc}") from None
        if not routes:
            raise RouteSourceError("the explicit list of served routes is empty")
        return Listing(routes, evidence={"source": "explicit list"})
    if source is None or not source.configured:
        raise RouteSourceError(NOT_CONFIGURED, {"missing_config": "project.routes"})
    return served_routes_at(repo, sha, source, env=env)


def check_endpoints_documented(
    repo: str,
    head: str,
    previous_tag: str | None,
    spec_path: str,
    *,
    source: RouteSource | None = None,
    served_routes: Iterable[Any] | None = None,
    previous_routes: Iterable[Any] | None = None,
    ignore: Sequence[str] = (),
    version: str | None = None,
    tag_prefix: str = "",
) -> Outcome:
    """The routes the code at `head` serves vs the spec at `head`; which routes and operations are
    new since `previous_tag`.

    Served routes come from `source` (a command or an app, run on the code at each commit) or,
    for callers that know them, `served_routes`/`previous_routes`. Without either the verdict
    is inconclusive: the spec is never its own witness. `ignore` holds fnmatch patterns of paths
    deliberately undocumented (`/metrics`, `/_admin/*`); they are listed in the evidence.
    """
    ev: dict[str, Any] = {
        "repo": repo,
        "head": head,
        "previous_tag": previous_tag,
        "spec_path": spec_path,
    }
    resolved = git.run(repo, "rev-parse", "--verify", "--quiet", f"{head}^{{commit}}")
    if resolved.returncode != 0:
        return Outcome.inconclusive(f"{head!r} is not a commit in {repo}", **ev)
    ev["head_sha"] = head_sha = resolved.stdout.strip()
    try:
        new_spec = spec_at(repo, head, spec_path)
    except Exception as exc:  # yaml/json errors of any kind
        return Outcome.failed(
            f"{spec_path} at {head} does not parse: {scrub(str(exc))[:200]}", **ev
        )
    if new_spec is None:
        return Outcome.failed(
            f"no OpenAPI spec {spec_path} at {head}: add it or set project.openapi", **ev
        )
    old_spec: dict[str, Any] | None = None
    previous_sha: str | None = None
    if previous_tag:
        got = git.run(repo, "rev-parse", "--verify", "--quiet", f"{previous_tag}^{{commit}}")
        if got.returncode != 0:
            return Outcome.inconclusive(
                f"previous tag {previous_tag!r} not found in {repo}: fetch tags or set project.previous_tag",
                **ev,
            )
        previous_sha = got.stdout.strip()
        try:
            old_spec = spec_at(repo, previous_tag, spec_path)
        except Exception as exc:
            ev["previous_spec_error"] = scrub(str(exc))[:200]
        if old_spec is None:
            ev["note_previous"] = (
                f"no parseable {spec_path} at {previous_tag}: every operation counts as added"
            )

    new_ops = operations(new_spec)
    old_ops = operations(old_spec) if old_spec else {}
    added = sorted(set(new_ops) - set(old_ops))
    removed = sorted(set(old_ops) - set(new_ops))
    changed = sorted(
        k
        for k in set(new_ops) & set(old_ops)
        if _canonical(old_spec or {}, old_ops[k]) != _canonical(new_spec, new_ops[k])
    )
    ev.update(
        documented=sorted(new_ops),
        operations_head=len(new_ops),
        operations_previous=len(old_ops) if old_spec else None,
        added=added,
        removed=removed,
        changed=changed,
    )
    ev["breaking_changes"] = openapi_breaking_changes(old_spec, new_spec) if old_spec else []
    if not new_ops:
        return Outcome.failed(f"{spec_path} at {head} documents no operations", **ev)

    env = {"RELNB_VERSION": version or ""}
    try:
        listing = _served(repo, head_sha, source, served_routes, env)
    except RouteSourceError as exc:
        return Outcome.inconclusive(exc.reason, **ev, route_source=exc.evidence)
    ev["route_source"] = listing.evidence
    served = [r for r in listing.routes if r.split(" ", 1)[0] not in _AUTO_METHODS]

    # New since the previous release: the same source on the previous tag's code (informative:
    # the verdict is about what the release serves, so a source that cannot run there only notes it).
    new_routes: list[str] | None = served
    if previous_sha is not None and previous_tag is not None:
        prev_env = {"RELNB_VERSION": previous_tag.removeprefix(tag_prefix)}
        try:
            if served_routes is not None and previous_routes is None:
                raise RouteSourceError("no list of them given")
            before = _served(repo, previous_sha, source, previous_routes, prev_env)
        except RouteSourceError as exc:
            new_routes = None
            ev["new_routes_unknown"] = f"routes at {previous_tag}: {exc.reason}"
        else:
            known = {_key(r) for r in before.routes}
            new_routes = [r for r in served if _key(r) not in known]

    documented = {_key(k) for k in new_ops}
    documented_paths = {k.split(" ", 1)[1] for k in documented}
    undocumented: list[str] = []
    ignored: list[str] = []
    checked: set[str] = set()
    for route in served:
        path = route.split(" ", 1)[1]
        if any(fnmatch.fnmatchcase(path, pat) for pat in ignore):
            ignored.append(route)
            continue
        key = _key(route)
        checked.add(key)
        method, norm = key.split(" ", 1)
        if not (key in documented or (method == ANY and norm in documented_paths)):
            undocumented.append(route)
    checked_paths = {k.split(" ", 1)[1] for k in checked if k.startswith(f"{ANY} ")}
    not_served = sorted(
        k
        for k in new_ops
        if _key(k) not in checked and _key(k).split(" ", 1)[1] not in checked_paths
    )
    ev.update(
        served=served,
        served_count=len(checked),
        new_since_previous=new_routes,
        undocumented=undocumented,
        ignored=ignored,
        ignore_patterns=list(ignore),
        framework_routes=listing.framework,
        websockets=listing.websockets,
        documented_not_served=not_served,
    )
    if undocumented:
        new = set(new_routes or [])
        named = [f"{r} (new)" if r in new and previous_tag else r for r in undocumented[:5]]
        return Outcome.failed(
            f"{len(undocumented)} served route(s) missing from {spec_path}: {', '.join(named)}",
            **ev,
        )
    if not checked:
        return Outcome.inconclusive(
            f"every served route is ignored ({', '.join(ignored[:5])}): nothing to compare with {spec_path}",
            **ev,
        )
    delta = (
        f"+{len(added)} -{len(removed)} ~{len(changed)} since {previous_tag}"
        if old_spec
        else "no previous spec"
    )
    if new_routes is not None and previous_tag:
        delta += f"; {len(new_routes)} new route(s) served"
    breaking = len(ev["breaking_changes"])
    return Outcome.passed(
        f"all {len(checked)} served route(s) documented ({delta}"
        + (f"; {breaking} breaking change(s) for A4" if breaking else "")
        + ")",
        **ev,
    )
