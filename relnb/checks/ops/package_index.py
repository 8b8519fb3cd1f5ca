"""E1 for apps installed from a Python package index rather than run from an image: can the
previous release's pinned packages still be downloaded for a rollback?

A rollback of such an app reinstalls its requirements file as it was at the previous release's
tag, so the evidence is that file's `==` pins read at that tag, each looked up on the index the
app installs from: the Simple API (PEP 691 JSON, else PEP 503 HTML) must list a file of exactly
that version that is not yanked (PEP 592), and the index must serve one of those files. Platform
tags are not matched against the production host. A pin that is a range, or a file that cannot be read at
the tag, is inconclusive: what the previous release installed is then unknown, and "some version
exists" is not the evidence E1 asks for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from ...redact import scrub
from ...results import Outcome
from ...tls import http_client

if TYPE_CHECKING:
    import httpx

    from ...redact import Secret

PYPI_SIMPLE = "https://pypi.org/simple"
_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(==|===|~=|>=|<=|!=|>|<)?\s*([^\s;#,]*)")


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(text: str) -> dict[str, str | None]:
    """{canonical name: pinned version, or None where the line is not an exact `==` pin}."""
    out: dict[str, str | None] = {}
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-", "git+", "http:", "https:", "file:", ".", "/")):
            continue
        m = _PIN.match(line)
        if not m:
            continue
        name, op, version = canonical_name(m.group(1)), m.group(3), m.group(4)
        exact = op in ("==", "===") and version and "*" not in version and "," not in line
        out[name] = version if exact else None
    return out


def includes(text: str) -> list[str]:
    """The files a requirements file pulls in (`-r`/`--requirement`, `-c`/`--constraint`): their
    pins are the previous release's too."""
    out = []
    for raw in text.splitlines():
        m = re.match(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)", raw)
        if m:
            out.append(m.group(1))
    return out


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.files: list[dict[str, Any]] = []
        self._attrs: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._attrs, self._text = dict(attrs), ""

    def handle_data(self, data: str) -> None:
        if self._attrs is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._attrs is not None:
            href = self._attrs.get("href") or ""
            name = self._text.strip() or href.split("#", 1)[0].rsplit("/", 1)[-1]
            yanked: Any = self._attrs.get("data-yanked", False)
            self.files.append({"filename": name, "url": href, "yanked": "" if yanked is None else yanked})
            self._attrs = None


def parse_listing(body: str, content_type: str) -> list[dict[str, Any]]:
    """The project page's files as PEP 691 dicts (filename, yanked)."""
    if "json" in content_type:
        import json

        data = json.loads(body)
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, list):
            raise ValueError("a JSON project page without a files list")
        return [f for f in files if isinstance(f, dict) and isinstance(f.get("filename"), str)]
    parser = _Anchors()
    parser.feed(body)
    return parser.files


def file_version(filename: str) -> str | None:
    """The normalised version a distribution file carries (wheel or sdist), None if unreadable."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        if filename.endswith((".tar.gz", ".zip")):
            return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None
    return None


def _same_version(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _one(http: httpx.Client, base: str, name: str, version: str) -> tuple[str, str]:
    """("ok" | "missing" | "yanked" | "unreachable", one line)."""
    import httpx

    url = f"{base.rstrip('/')}/{canonical_name(name)}/"
    try:
        r = http.get(url, headers={"Accept": _ACCEPT}, follow_redirects=True)
    except httpx.HTTPError as exc:
        return "unreachable", f"{name}: index unreachable ({type(exc).__name__}: {str(exc)[:120]})"
    if r.status_code == 404:
        return "missing", f"{name}: not on the index (404)"
    if r.status_code in (401, 403):
        return "unreachable", f"{name}: the index refused the request (HTTP {r.status_code}): check its credentials"
    if r.status_code != 200:
        return "unreachable", f"{name}: the index answered HTTP {r.status_code}"
    try:
        files = parse_listing(r.text, r.headers.get("content-type", ""))
    except ValueError as exc:
        return "unreachable", f"{name}: unreadable project page ({exc})"
    mine = [f for f in files if (v := file_version(f["filename"])) is not None and _same_version(v, version)]
    if not mine:
        return "missing", f"{name}=={version}: no file of that version on the index ({len(files)} files of other versions)"
    usable = [f for f in mine if f.get("yanked") in (False, None)]
    if not usable:
        why = next((f["yanked"] for f in mine if isinstance(f.get("yanked"), str) and f["yanked"]), "")
        return "yanked", f"{name}=={version}: every file is yanked{f' ({why})' if why else ''}"
    kinds = sorted({"wheel" if f["filename"].endswith(".whl") else "sdist" for f in usable})
    # A listing is not the file: an index whose storage lost it still lists it, and pip then fails
    # mid-rollback. One file is fetched far enough to know the index serves it.
    probe = usable[0]
    got = _fetchable(http, r.url.join(str(probe.get("url") or probe["filename"])))
    if got == 0:
        return "unreachable", f"{name}=={version}: {probe['filename']} could not be fetched (the file host did not answer)"
    if got != 200:
        return "missing", f"{name}=={version}: {probe['filename']} is listed but the index serves HTTP {got} for it"
    return "ok", f"{name}=={version}: {len(usable)} file(s) ({', '.join(kinds)}), {probe['filename']} served"


def _fetchable(http: httpx.Client, url: httpx.URL) -> int:
    """The status of a file's download, reading no more than its first bytes."""
    import httpx

    try:
        with http.stream("GET", url, headers={"Range": "bytes=0-0"}, follow_redirects=True) as resp:
            return 200 if resp.status_code in (200, 206) else resp.status_code
    except httpx.HTTPError:
        return 0


def check_previous_packages(
    index_url: str,
    pins: Mapping[str, str | None],
    *,
    previous: str,
    source: str,
    username: str | None = None,
    password: Secret | None = None,
    timeout_s: float = 20.0,
) -> Outcome:
    """E1: every pin of the previous release (`pins`, from `source` at `previous`) can be downloaded."""
    shown = scrub(re.sub(r"//[^/@]*@", "//", index_url))
    ev: dict[str, Any] = {"index": shown, "previous_release": previous, "pins_from": source}
    if not pins:
        return Outcome.inconclusive(f"no packages to look up in {source} at {previous}", **ev)
    loose = sorted(n for n, v in pins.items() if v is None)
    if loose:
        return Outcome.inconclusive(
            f"{source} at {previous} does not pin {', '.join(loose)} with ==: what the previous release"
            " installed is unknown", **ev,
        )  # fmt: skip
    auth = (username, password.reveal()) if username and password is not None else None
    results: dict[str, Any] = {}
    with http_client(timeout=timeout_s, auth=auth) as http:
        for name, version in pins.items():
            state, line = _one(http, index_url, name, str(version))
            results[name] = {"version": version, "state": state, "detail": scrub(line)}
    ev["packages"] = results
    bad = [r["detail"] for r in results.values() if r["state"] in ("missing", "yanked")]
    if bad:
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        return Outcome.failed(f"previous release {previous} cannot be reinstalled: {bad[0]}{more}", **ev)
    unknown = [r["detail"] for r in results.values() if r["state"] != "ok"]
    if unknown:
        return Outcome.inconclusive(unknown[0], **ev)
    names: Sequence[str] = list(results)
    return Outcome.passed(
        f"previous release {previous}: {len(names)} pinned package(s) available on {shown}"
        f" ({', '.join(f'{n}=={pins[n]}' for n in names[:3])}{', …' if len(names) > 3 else ''})", **ev,
    )  # fmt: skip
