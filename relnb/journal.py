"""The release journal: an append-only, hash-chained JSON Lines file that is the record.

Each line is one event `{seq, ts, type, payload, prev, hash}`; `hash` is the sha256 of the
canonical JSON of the other five fields, and `prev` is the hash of the event before it, so
changing, removing or reordering any event breaks the chain at a seq we can name.

One process writes a release at a time (an flock on `.lock`, which records the holder's pid, host and start time and
dies with the process). Every append is flushed and fsync'd before it returns. A line that was
being written when the process died (a "torn tail") is reported by `verify`; a writer that opens
such a journal sets the torn bytes aside in a file beside it and records a `torn-tail` event, so
nothing is dropped silently and nothing torn is ever read as a result.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import JournalCorrupt, JournalError, JournalLocked, JournalSealed
from .redact import Secret, scrub_obj

GENESIS = "0" * 64
JOURNAL_NAME = "journal.jsonl"
LOCK_NAME = ".lock"


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def jsonable(obj: Any) -> Any:
    """Make data JSON-safe and deterministic (NaN and infinities become strings, not invalid JSON)."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, Enum):
        return jsonable(obj.value)
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted(jsonable(v) for v in obj)
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Secret):
        return repr(obj)
    if isinstance(obj, bytes):
        return f"<{len(obj)} bytes>"
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return jsonable(asdict(obj))
    if hasattr(obj, "item"):  # numpy scalars
        return jsonable(obj.item())
    return str(obj)


def canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def event_hash(seq: int, ts: str, type_: str, payload: Any, prev: str) -> str:
    body = {"seq": seq, "ts": ts, "type": type_, "payload": payload, "prev": prev}
    return hashlib.sha256(canonical(body)).hexdigest()


@dataclass(frozen=True)
class Event:
    seq: int
    ts: str
    type: str
    payload: dict[str, Any]
    prev: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "type": self.type,
            "payload": self.payload,
            "prev": self.prev,
            "hash": self.hash,
        }

    def line(self) -> bytes:
        return canonical(self.to_dict()) + b"\n"

    def canonical_bytes(self) -> bytes:
        """The bytes `hash` covers; also what a signature over this event signs."""
        return canonical(
            {"seq": self.seq, "ts": self.ts, "type": self.type, "payload": self.payload, "prev": self.prev}
        )


@dataclass
class VerifyReport:
    path: Path
    events: int = 0
    head: str = GENESIS
    ok: bool = True
    bad_seq: int | None = None
    problem: str | None = None
    torn_tail: bytes | None = None
    sealed: bool = False
    parsed: list[Event] = field(default_factory=list, repr=False)
    data: bytes = field(default=b"", repr=False)  # the bytes read, for a caller that hashes them

    @property
    def summary(self) -> str:
        if self.ok and self.torn_tail is None:
            return f"{self.path}: {self.events} events, chain intact, head {self.head[:12]}"
        if self.ok:
            return (
                f"{self.path}: {self.events} events intact, then a torn tail of "
                f"{len(self.torn_tail or b'')} bytes after seq {self.events - 1} (an append was cut off)"
            )
        return f"{self.path}: chain broken at seq {self.bad_seq}: {self.problem}"


def _parse_line(raw: bytes, expect_seq: int, prev: str) -> tuple[Event | None, str | None]:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not valid JSON ({exc.__class__.__name__})"
    if not isinstance(obj, dict) or set(obj) != {"seq", "ts", "type", "payload", "prev", "hash"}:
        return None, "not a journal event (wrong fields)"
    if obj["seq"] != expect_seq:
        return None, f"expected seq {expect_seq}, found {obj['seq']!r} (event removed, added or reordered)"
    if obj["prev"] != prev:
        return None, "prev does not match the hash of the event before it"
    want = event_hash(obj["seq"], obj["ts"], obj["type"], obj["payload"], obj["prev"])
    if want != obj["hash"]:
        return None, "hash does not match the event's content (the event was modified)"
    return Event(**obj), None


def _canonical_encoder() -> Any:
    """The C encoder that `canonical` ends up in, built once instead of once per line (json.dumps
    rebuilds it on every call, a third of the cost of verifying a journal); None where the C
    accelerator is missing, and `_fast_event` then always defers to `_parse_line`."""
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return None

    def refuse(obj: Any) -> Any:
        raise TypeError(type(obj).__name__)

    try:
        enc = make(None, refuse, encoder.encode_basestring, None, ":", ",", True, False, False)
        probe = {"b": [1.5, None, True], "a": "é\n\x00"}
        same = "".join(enc(probe, 0)) == canonical(probe).decode("utf-8")
    except (TypeError, ValueError):  # pragma: no cover - another Python's signature
        return None
    return enc if same else None


_ENCODE = _canonical_encoder()
_DECODER = json.JSONDecoder()
_FIELDS = {"seq", "ts", "type", "payload", "prev", "hash"}
_HASH_START = '{"hash":"'  # canonical JSON sorts "hash" first: the line is this, 64 hex, '",', rest


def _fast_event(text: str, expect_seq: int, prev: str) -> Event | None:
    """The event on one line when the line is exactly the canonical JSON the writer produced and
    its hash is right; else None, and `_parse_line` decides (and names the problem).

    Why this is the same check: when `text == canonical(event)`, the canonical body the hash
    covers is that text with the `"hash":"…",` member cut out (the remaining keys stay sorted),
    so hashing those bytes equals `event_hash(...)`. The comparison costs one encode by an
    encoder built once; a line that is not exactly canonical (re-indented, self-hashed in another
    layout, duplicate keys) falls through to `_parse_line` and is judged as it always was."""
    if _ENCODE is None or not text.startswith(_HASH_START):
        return None
    try:
        obj, end = _DECODER.raw_decode(text)
        if end != len(text) or not isinstance(obj, dict) or obj.keys() != _FIELDS:
            return None
        if obj["seq"] != expect_seq or obj["prev"] != prev or type(obj["seq"]) is not int:
            return None
        if "".join(_ENCODE(obj, 0)) != text:
            return None
    except (ValueError, TypeError, RecursionError):
        return None
    h = obj["hash"]
    if not isinstance(h, str) or text[9:73] != h or text[73:75] != '",':
        return None
    body = "{" + text[75:]
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != h:
        return None
    # the fields were checked above; filling the instance dict (as pickle does) skips the frozen
    # dataclass's six guarded setattr calls, a fifth of the cost of this function
    event = object.__new__(Event)
    event.__dict__.update(obj)
    return event


def verify_file(path: str | os.PathLike[str]) -> VerifyReport:
    """Recompute the chain. A final line without newline is a torn tail, not a broken chain.

    One read, one decode and one encode per line: the events come back in `parsed`, so callers
    that also check signatures (relnb verify) use them instead of reading the journal again."""
    path = Path(path)
    report = VerifyReport(path=path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        report.ok, report.problem = False, "journal file does not exist"
        return report
    report.data = data
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail:
        report.torn_tail = tail
    try:  # one decode for the file; a file that is not UTF-8 is judged line by line
        texts: list[str] | None = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        texts = None
    prev = GENESIS
    for i, raw in enumerate(lines):
        fast = _fast_event(texts[i], i, prev) if texts is not None else None
        event, problem = (fast, None) if fast is not None else _parse_line(raw, i, prev)
        if event is None:
            report.ok, report.bad_seq, report.problem = False, i, problem
            break
        if report.sealed:
            report.ok, report.bad_seq = False, i
            report.problem = "event appended after the release was sealed"
            break
        report.parsed.append(event)
        prev = event.hash
        report.events += 1
        report.sealed = event.type == "sealed"
    report.head = prev
    return report


def read_events(path: str | os.PathLike[str], *, strict: bool = True) -> list[Event]:
    """All complete events; with strict, a broken chain raises JournalCorrupt naming the seq."""
    report = verify_file(path)
    if strict and not report.ok:
        raise JournalCorrupt(report.summary, seq=report.bad_seq, path=str(path))
    return report.parsed


def tail_events(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Events appended since byte `offset` (unverified; for progress display while another
    process writes). A partial last line is left for the next call."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    out = []
    for raw in data[: end + 1].splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(raw))
    return out, offset + end + 1


# One writer per release and process: re-opening in the same process (marimo re-running the
# set-up cell) shares the writer instead of deadlocking on its own flock.
_WRITERS: dict[str, JournalWriter] = {}
_WRITERS_LOCK = threading.RLock()


def _read_lock_holder(lock_path: Path) -> int | None:
    try:
        text = lock_path.read_text().strip()
        return int(text.split()[0]) if text else None
    except (OSError, ValueError, IndexError):
        return None


def _lock_holder_text(lock_path: Path) -> str:
    """'pid 123 on host web1 since 2026-…' from the lock file (`pid host since`), as far as it says."""
    try:
        words = lock_path.read_text().split()
    except OSError:
        words = []
    pid = words[0] if words and words[0].isdigit() else "unknown"
    text = f"pid {pid}"
    if len(words) > 1:
        text += f" on host {words[1]}"
    if len(words) > 2:
        text += f" since {words[2]}"
    return text


def _locked(lock_path: Path, journal: Path) -> JournalLocked:
    return JournalLocked(
        f"release journal {journal} is being written by another process "
        f"({_lock_holder_text(lock_path)}); one writer per release",
        pid=_read_lock_holder(lock_path),
        path=str(journal),
        fix="wait for that run to finish or stop it (close that notebook), then run again",
    )


def ensure_unlocked(directory: str | os.PathLike[str]) -> None:
    """Raise JournalLocked naming the holder when another process writes this release now.

    A probe, so `relnb run` can refuse before it starts a notebook that would only die on the
    lock; this process's own writer does not count."""
    directory = Path(directory).resolve()
    with _WRITERS_LOCK:
        existing = _WRITERS.get(str(directory))
        if existing is not None and existing._lock_fd is not None:
            return
    lock_path = directory / LOCK_NAME
    if not lock_path.exists():
        return
    fd = os.open(lock_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _locked(lock_path, directory / JOURNAL_NAME) from None
    finally:
        os.close(fd)  # closing releases a lock this probe took


class JournalWriter:
    """The single writer of one release's journal."""

    def __init__(self, directory: Path, *, clock: Any = utcnow) -> None:
        self.directory = directory
        self.path = directory / JOURNAL_NAME
        self._clock = clock
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self._events: list[Event] = []
        self._listeners: list[Any] = []
        self.recovered_tail: Path | None = None

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, create: bool = False) -> JournalWriter:
        directory = Path(directory).resolve()
        key = str(directory)
        with _WRITERS_LOCK:
            existing = _WRITERS.get(key)
            if existing is not None and existing._lock_fd is not None:
                return existing
            writer = cls(directory)
            writer._acquire(create=create)
            _WRITERS[key] = writer
            return writer

    def _acquire(self, *, create: bool) -> None:
        if not self.path.exists() and not create:
            raise JournalError(f"no journal at {self.path}", path=str(self.path))
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_path = self.directory / LOCK_NAME
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _locked(lock_path, self.path) from None
        os.ftruncate(fd, 0)
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.write(fd, f"{os.getpid()} {socket.gethostname() or 'unknown'} {since}\n".encode())
        self._lock_fd = fd
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        if not self.path.exists():
            self.path.touch()
            _fsync_dir(self.directory)
            return
        report = verify_file(self.path)
        if not report.ok:
            raise JournalCorrupt(
                f"refusing to append to a broken journal: {report.summary}",
                seq=report.bad_seq,
                path=str(self.path),
            )
        self._events = report.parsed
        if report.torn_tail is not None:
            self._set_aside_torn_tail(report.torn_tail)

    def _set_aside_torn_tail(self, torn: bytes) -> None:
        n = 0
        while (aside := self.directory / f"journal.torn.{n}").exists():
            n += 1
        aside.write_bytes(torn)
        with self.path.open("rb+") as fh:
            fh.truncate(self.path.stat().st_size - len(torn))
            os.fsync(fh.fileno())
        self.recovered_tail = aside
        self.append(
            "torn-tail",
            {
                "bytes": len(torn),
                "sha256": hashlib.sha256(torn).hexdigest(),
                "kept_in": aside.name,
                "after_seq": self._events[-1].seq if self._events else None,
                "note": "an append was cut off (crash or kill); its bytes were set aside, not used",
            },
        )

    @property
    def events(self) -> list[Event]:
        return list(self._events)

    @property
    def head(self) -> str:
        return self._events[-1].hash if self._events else GENESIS

    @property
    def sealed(self) -> bool:
        return bool(self._events) and self._events[-1].type == "sealed"

    def subscribe(self, callback: Any) -> None:
        self._listeners.append(callback)

    def append(self, type_: str, payload: Mapping[str, Any] | None = None) -> Event:
        if self._lock_fd is None:
            raise JournalError("journal writer is closed", path=str(self.path))
        clean = jsonable(scrub_obj(dict(payload or {})))
        with self._lock:
            if self.sealed:
                raise JournalSealed(
                    f"release is sealed (archived); refusing to append {type_!r}",
                    path=str(self.path),
                    fix="start a new release for further work",
                )
            seq = len(self._events)
            ts = self._clock()
            prev = self.head
            event = Event(seq, ts, type_, clean, prev, event_hash(seq, ts, type_, clean, prev))
            line = event.line()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                written = os.write(fd, line)
                while written < len(line):
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
            self._events.append(event)
        for cb in list(self._listeners):
            with contextlib.suppress(Exception):
                cb(event)
        return event

    def close(self) -> None:
        with _WRITERS_LOCK:
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None
            if _WRITERS.get(str(self.directory)) is self:
                del _WRITERS[str(self.directory)]

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
