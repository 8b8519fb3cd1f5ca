"""The SQL a migration tool really sends, captured on the wire, for revisions that cannot render
offline (an Alembic revision that calls op.get_bind() and inspects the schema fails `--sql`).

A small PostgreSQL wire-protocol proxy on 127.0.0.1 forwards bytes both ways and records the
frontend's statements in order: simple Query text, extended-protocol Parse text. A statement whose
parameters the server binds (Bind with parameters) cannot be replayed as text: it is recorded as
unreadable, so C3 names it and stays inconclusive rather than judging SQL it did not see.
SSLRequest and GSSENCRequest are answered 'N' (the proxy is local, plaintext); a CancelRequest is
passed to the server on a connection of its own.

The tool runs against a scratch copy of production's schema (the shadow safety.py builds, filled by
replay.copy_schema), never production: the command gets the proxy's URL, not production's.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import socket
import struct
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ...redact import scrub

_SSL, _GSSENC, _CANCEL = 80877103, 80877104, 80877102


@dataclass(frozen=True)
class Captured:
    """One statement the frontend sent; `bound` = its parameters were bound server-side."""

    conn: int
    sql: str
    bound: bool = False


@dataclass
class Capture:
    statements: list[Captured] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, conn: int, sql: str) -> int:
        with self.lock:
            self.statements.append(Captured(conn, sql))
            return len(self.statements) - 1

    def mark_bound(self, idx: int) -> None:
        with self.lock:
            c = self.statements[idx]
            self.statements[idx] = Captured(c.conn, c.sql, True)


def _read_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        got = s.recv(n - len(buf))
        if not got:
            raise ConnectionError("closed")
        buf += got
    return buf


def _cstr(body: bytes, at: int) -> tuple[str, int]:
    end = body.index(b"\0", at)
    return body[at:end].decode("utf-8", errors="replace"), end + 1


class WireProxy:
    """Forward 127.0.0.1:<port> to the server at (host, port) or a Unix socket, recording statements."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.capture = Capture()
        self.errors: list[str] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._n = 0
        self._closed = False
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _connect_upstream(self) -> socket.socket:
        host, port = self.upstream
        if host.startswith("/"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(os.path.join(host, f".s.PGSQL.{port}"))
        else:
            s = socket.create_connection((host, port), timeout=10)
            s.settimeout(None)
        self._socks.append(s)
        return s

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._socks.append(client)
            self._n += 1
            threading.Thread(target=self._serve, args=(client, self._n), daemon=True).start()

    def _serve(self, client: socket.socket, n: int) -> None:
        try:
            while True:
                (length,) = struct.unpack("!I", _read_exact(client, 4))
                body = _read_exact(client, length - 4)
                (code,) = struct.unpack("!I", body[:4])
                if code in (_SSL, _GSSENC):
                    client.sendall(b"N")
                    continue
                up = self._connect_upstream()
                up.sendall(struct.pack("!I", length) + body)
                if code == _CANCEL:
                    up.close()
                    client.close()
                    return
                break
            threading.Thread(target=self._pipe, args=(up, client), daemon=True).start()
            self._frontend(client, up, n)
        except (OSError, ConnectionError, ValueError, struct.error) as exc:
            if not isinstance(exc, ConnectionError):
                self.errors.append(f"connection {n}: {type(exc).__name__}")
        finally:
            for s in (client,):
                try:
                    s.close()
                except OSError:
                    pass

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _frontend(self, client: socket.socket, up: socket.socket, n: int) -> None:
        """Client→server messages, parsed for Query/Parse/Bind, forwarded unchanged."""
        parsed: dict[str, int] = {}  # prepared statement name -> index of its Parse in the capture
        try:
            while True:
                head = _read_exact(client, 5)
                (length,) = struct.unpack("!I", head[1:])
                body = _read_exact(client, length - 4)
                kind = head[:1]
                if kind == b"Q":
                    self.capture.add(n, _cstr(body, 0)[0])
                elif kind == b"P":
                    name, at = _cstr(body, 0)
                    sql, _ = _cstr(body, at)
                    parsed[name] = self.capture.add(n, sql)
                elif kind == b"B":
                    _portal, at = _cstr(body, 0)
                    stmt, at = _cstr(body, at)
                    (nfmt,) = struct.unpack("!H", body[at:at + 2])
                    at += 2 + 2 * nfmt
                    (nparams,) = struct.unpack("!H", body[at:at + 2])
                    if nparams and stmt in parsed:
                        self.capture.mark_bound(parsed[stmt])
                up.sendall(head + body)
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                up.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        for s in [self._listener, *self._socks]:
            try:
                s.close()
            except OSError:
                pass


def proxy_url(shadow_url: str, port: int) -> str:
    """A postgresql:// URL to the scratch database through the proxy (the password is the admin's:
    never shown; evidence uses display_url)."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(shadow_url)
    user = quote(str(p.get("user") or os.environ.get("USER", "postgres")), safe="")
    pw = f":{quote(str(p['password']), safe='')}" if p.get("password") else ""
    return f"postgresql://{user}{pw}@127.0.0.1:{port}/{quote(str(p['dbname']), safe='')}?sslmode=disable"


def upstream_of(url: str) -> tuple[str, int]:
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(url)
    host = str(p.get("host") or "/var/run/postgresql").split(",")[0]
    return host, int(str(p.get("port") or 5432).split(",")[0])


# --------------------------------------------------------------------------- the captured stream

_CATALOG = re.compile(r"\b(pg_catalog\.|information_schema\.|pg_[a-z_]+\b|alembic_version\b)", re.I)
_WRITES = re.compile(r"\b(insert|update|delete|create|alter|drop|lock|nextval|setval|pg_advisory\w*)\b", re.I)
_VERSION_WRITE = re.compile(
    r"^\s*(?:update\s+(?:\"?\w+\"?\.)?\"?alembic_version\"?\s+set\s+version_num\s*=\s*'([^']+)'"
    r"|insert\s+into\s+(?:\"?\w+\"?\.)?\"?alembic_version\"?\s*\(\s*version_num\s*\)\s*values\s*\(\s*'([^']+)'\s*\))",
    re.I,
)
_TX = re.compile(r"^\s*(begin|start\s+transaction|commit|end|rollback)\b", re.I)


def is_introspection(sql: str) -> bool:
    """A read of the catalogs or of the version table (sa.inspect, has_table, dialect setup)."""
    s = sql.strip().rstrip(";").strip()
    low = s.lower()
    if low.startswith("show "):
        return True
    if low.startswith("set "):  # the driver's session set-up; lock_timeout, search_path … are the tool's
        return bool(re.match(r"^set\s+(session\s+)?(client_encoding|datestyle|extra_float_digits|application_name"
                             r"|timezone|time\s+zone|intervalstyle)\b", low))
    if not re.match(r"^(select|with)\b", low) or _WRITES.search(re.sub(r"'[^']*'", "''", low)):
        return False
    tables = re.findall(r"\b(?:from|join)\s+([\w.\"]+)", low)
    return all(_CATALOG.search(t) for t in tables) if tables else bool(
        re.match(r"^select\s+(pg_catalog\.)?(version|current_schema|current_database|current_user|current_setting)\s*\(", low)
    )


@dataclass
class RevisionSql:
    revision: str
    statements: list[str]
    unreadable: list[str]


def split_captured(caps: Sequence[Captured]) -> tuple[list[RevisionSql], list[str]]:
    """Per revision, cut after Alembic's version-table write; the transaction statements stay (the
    tool's transaction model); a COMMIT that opens a chunk closes the previous one. Also returns
    what was left after the last version write (outside every revision)."""
    chunks: list[RevisionSql] = []
    cur: list[str] = []
    bad: list[str] = []
    for c in caps:
        sql = c.sql.strip().rstrip(";").strip()
        if not sql or is_introspection(sql):
            continue
        if c.bound:
            bad.append(sql)
        cur.append(sql)
        if m := _VERSION_WRITE.match(sql):
            chunks.append(RevisionSql(m.group(1) or m.group(2), cur, bad))
            cur, bad = [], []
    for c in chunks:
        c.statements = _drop_empty_transactions(c.statements)
    # leading COMMIT / END of a chunk closes the previous revision's transaction
    for a, b in itertools.pairwise(chunks):
        while b.statements and re.match(r"^(commit|end)\b", b.statements[0], re.I):
            a.statements.append(b.statements.pop(0))
    rest = cur
    if chunks:
        while rest and _TX.match(rest[0]) and not re.match(r"^(begin|start)", rest[0], re.I):
            chunks[-1].statements.append(rest.pop(0))
    return chunks, rest


_EMPTY_TX = re.compile(r"^(savepoint|release)\b", re.I)


def _drop_empty_transactions(stmts: list[str]) -> list[str]:
    """A BEGIN … ROLLBACK/COMMIT holding nothing but savepoints (the driver's own set-up, once its
    catalog reads are dropped) says nothing about the tool's transactions."""
    out: list[str] = []
    i = 0
    while i < len(stmts):
        if re.match(r"^(begin|start\s+transaction)\b", stmts[i], re.I):
            j = i + 1
            while j < len(stmts) and _EMPTY_TX.match(stmts[j]):
                j += 1
            if j < len(stmts) and re.match(r"^(rollback|commit|end)\s*$", stmts[j], re.I):
                i = j + 1
                continue
        out.append(stmts[i])
        i += 1
    return out


def run_online(template: str, cwd: str, url: str, *, url_env: str | None, revision: str,
               timeout_s: float = 600, drop_env: Sequence[str] = ()) -> str | None:
    """Run the team's online upgrade command against `url`; None when it worked, else a one-line,
    secret-free reason. PG* variables and `drop_env` (production's URL variable) are removed."""
    try:
        argv = [part.format(database_url=url, revision=revision, range=revision) for part in shlex.split(template)]
    except (KeyError, ValueError, IndexError) as exc:
        return f"bad online command template {template!r}: {exc}"
    shown = " ".join(shlex.split(template)).replace("{revision}", revision).replace("{range}", revision)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k not in drop_env}
    if url_env:
        env[url_env] = url
    try:
        got = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return f"`{shown}` timed out after {int(timeout_s)} s"
    except OSError as exc:
        return scrub(f"`{shown}` did not run in {cwd}: {exc}").replace(url, "<scratch url>")
    if got.returncode != 0:
        tail = [ln for ln in got.stderr.strip().splitlines() if ln.strip()][-1:] or ["(no output)"]
        return scrub(f"`{shown}` exited {got.returncode} in {cwd}: {tail[0][:300]}".replace(url, "<scratch url>"))
    return None


def shown_command(template: str, revision: str) -> str:
    return template.replace("{revision}", revision).replace("{range}", revision).replace("{database_url}", "<scratch url>")


def evidence_of(caps: Sequence[Captured]) -> dict[str, Any]:
    return {"statements_seen": len(caps), "bound_server_side": sum(1 for c in caps if c.bound)}


# --------------------------------------------------------------------------- capture on a scratch copy


class CaptureError(RuntimeError):
    """The online capture could not see a revision's SQL: the one-line reason, secrets scrubbed."""


def capture_alembic(
    revisions: Sequence[str],
    start: str | None,
    head: str,
    cwd: str,
    command: str,
    admin_url: str,
    production_url: str,
    *,
    url_env: str | None = None,
    drop_env: Sequence[str] = (),
    timeout_s: float = 600,
) -> tuple[dict[str, RevisionSql], dict[str, Any]]:
    """Run `command` (the online upgrade to `head`) on a scratch copy of production's schema, stamped at
    `start`, through the proxy; per revision the SQL it sent. Raises CaptureError."""
    from .locktrace import shadow_database
    from .replay import copy_schema

    shown = shown_command(command, head)
    ev: dict[str, Any] = {"captured_by": shown, "online": True, "from": start or "base", "to": head, "cwd": cwd,
                          "how": f"SQL captured online from `{shown}` on a scratch copy of production's schema"
                                 " (pg_dump --schema-only), through relnb's wire-protocol proxy; production untouched"}
    if "{database_url}" not in command and not url_env:
        raise CaptureError("the online command gets no database URL: put {database_url} in"
                           " migrations_online_command or set migrations_online_url_env")
    import psycopg

    try:
        with shadow_database(admin_url) as scratch:
            try:
                copy_schema(production_url, scratch)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                raise CaptureError(f"cannot copy production's schema to the scratch database: {scrub(str(exc))[:300]}") from exc
            if start:
                with psycopg.connect(scratch, autocommit=True) as conn:
                    # pg_dump --schema-only leaves the version table empty: stamp it where production is
                    conn.execute("create table if not exists alembic_version"
                                 " (version_num varchar(32) not null primary key)")
                    conn.execute("delete from alembic_version")
                    conn.execute("insert into alembic_version (version_num) values (%s)", (start,))
            proxy = WireProxy(*upstream_of(scratch))
            try:
                why = run_online(command, cwd, proxy_url(scratch, proxy.port), url_env=url_env, revision=head,
                                 timeout_s=timeout_s, drop_env=drop_env)
            finally:
                proxy.close()
            caps = list(proxy.capture.statements)
    except psycopg.Error as exc:
        raise CaptureError(f"cannot use a scratch database: {scrub(str(exc)).strip()[:200]}") from exc
    if why:
        raise CaptureError(why)
    chunks, _rest = split_captured(caps)
    ev.update(evidence_of(caps))
    by_rev = {c.revision: c for c in chunks}
    missing = [r for r in revisions if r not in by_rev or not by_rev[r].statements]
    ev["not_seen"] = missing
    if missing:
        raise CaptureError(f"the online capture did not see revision(s) {', '.join(missing)}"
                           f" (no alembic_version write for them in `{shown}`)")
    return by_rev, ev
