"""Secret registry and scrubbing.

Every secret relnb resolves is registered here, and every string relnb emits (results, evidence,
journal events, command output, tracebacks, exports, logs) passes through `scrub`. Secrets leak in
disguise, so each one is also registered URL-encoded and as the stable middle of its base64 form
at all three byte alignments (a token inside `user:token` encoded for Basic auth still matches).

Scrubbing must never change data relnb reads back (D2's bucket and key, which the restore uses;
table names in row counts; gate titles), so two rules keep it from rewriting ordinary text:

- **A secret has at least `MIN_SECRET_LENGTH` (8) characters**; `register` refuses a shorter one
  (`UnscrubbableSecret`, a `ConfigError`). Why 8: a value that occurs by chance costs a rewritten
  record, and for a random secret of n characters from a k-letter alphabet that chance is about
  L / k**n over L characters of output. A release emits some 10**7 characters: at n = 6 with
  lower-case letters and digits (k = 36) that is ~1 in 200 releases, at n = 8 ~1 in 300,000 (and
  with mixed case ~1 in 20 million). Below 8, a person-chosen value is also a common word
  ("backup", "deploy"), so it could not be scrubbed without rewriting other text; it would not
  be kept out of the output either, so relnb refuses it rather than promise what it cannot do.
- **A short secret made of word characters matches as a whole token.** A value of at most
  `TOKEN_MATCH_MAX` (20) letters, digits and underscores (the kind a person types: `docflow2024`,
  `postgres12`) is not replaced where a letter, digit or underscore continues it on either side:
  there it is part of another name (the bucket `docflow2024eu-backups`, the table
  `docflow2024_events`), not the secret. Everywhere else it is replaced: on its own, between
  punctuation (a URL's user-info, `?token=`, a header, JSON, `a-SECRET.b`), and after an escape
  that ends in a letter (`\\n`, `\\x00`, `\\u00e9`, `%0A`, an ANSI colour code) or a glued short
  option (`mysql -pSECRET`): those are leaks, not names. Longer or punctuated secrets (generated
  tokens, URLs, JWTs) and every encoded form match anywhere: such a value never turns up inside
  another name by chance, and glued to other text (`https://api/bot<token>/send`) it is a leak.
  The price of the rule: a short typed secret glued straight onto a name (`user_docflow2024`)
  stays; the archive's scan (`contains_secret`) applies the same rule.

A secret that holds other secrets is registered with its parts (issue 22 item 2): a URL's
user-info password (as written, percent-decoded and re-encoded), the values of credential query
parameters (`?token=`, `&password=`, `sig=`) and a libpq keyword `password=`; a driver that quotes
only the password, or a log that prints it decoded, is scrubbed too. A part shorter than
`MIN_SECRET_LENGTH` is refused like a short secret (it could not be scrubbed safely either). And a
driver's error about a secret-bearing URL is never emitted: `connect_error` gives relnb's own
line, naming the variable, because a driver quotes what it cannot parse (libpq: `unexpected
spaces found in "<password>"`), in forms no list of needles can foresee.

What neither rule can save, a secret that is a whole word of a name relnb records (the bucket
`docflow2024-backups`, the title word `snapshot`), the config refuses when it resolves the secret
(`Config.secret`): one of the two would be wrong in the record, the secret or the name.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

from .errors import ConfigError

MIN_SECRET_LENGTH = 8
TOKEN_MATCH_MAX = 20
_MIN_B64_CORE = 8
_TAIL = 32  # how far back an escape that ends right before a secret may start

# Text just before a secret that ends in a word character yet is not part of a name: an escape
# (repr/JSON `\n`, `\x1b`, `\u00e9`; URL `%3D`; an ANSI colour code, raw or escaped) or a short
# option with its value glued on (`-pSECRET`). The secret after it is a leak, so it is replaced.
_ESCAPE_TAIL = re.compile(
    r"(?:\\(?:x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[0-7]{1,3}|[A-Za-z])"
    r"|%[0-9A-Fa-f]{2}"
    r"|(?:\x1b|\\x1[bB]|\\033|\\e|\\u001[bB])\[[0-9;?]*[A-Za-z]"
    r"|(?:\A|(?<=\s))-[A-Za-z]"
    r")\Z"
)

# Token shapes that are secrets whatever their value (used by the archive's redaction scan).
TOKEN_PATTERNS: dict[str, re.Pattern[str]] = {
    "jwt": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "aws-access-key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "bearer-header": re.compile(r"(?i)\bauthorization:\s*bearer\s+[A-Za-z0-9._~+/-]{12,}=*"),
    "private-key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


class UnscrubbableSecret(ConfigError):
    """A value relnb cannot keep out of its output without rewriting other text: too short, or
    (found by the config) a word of a name relnb records and reads back."""


def too_short_message(length: int) -> str:
    """The one wording of the refusal, shared by `register` and the config's error."""
    return (
        f"{length} characters; relnb can only keep secrets of >= {MIN_SECRET_LENGTH} characters "
        "out of its output without rewriting other text"
    )


class Secret:
    """A resolved secret that refuses to print itself; `.reveal()` is the one way out.

    `register=False` is for a value that names rather than hides (a registry user name, an access
    key id) and is too short to scrub: it is kept as a Secret for the API, but not scrubbed.
    """

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str, *, register: bool = True) -> None:
        self.name = name
        self._value = value
        if register:
            REDACTOR.register(value, name)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("relnb.Secret", self.name))

    def __reduce__(self) -> Any:
        raise TypeError("relnb.Secret cannot be pickled")


def _b64_cores(raw: bytes) -> Iterable[str]:
    for pad in range(3):
        data = b"\x00" * pad + raw
        enc = base64.b64encode(data).decode()
        full_groups = len(data) // 3
        start = 4 if pad else 0
        core = enc[start : full_groups * 4]
        if len(core) >= _MIN_B64_CORE:
            yield core
            yield core.replace("+", "-").replace("/", "_")  # urlsafe alphabet


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def matches_as_token(value: str) -> bool:
    """Whether `value` is replaced only where it stands as a whole token (see the module doc)."""
    return len(value) <= TOKEN_MATCH_MAX and all(_is_word(c) for c in value)


_URL_HEAD = re.compile(r"\A\s*[A-Za-z][A-Za-z0-9+.-]*://")
# query parameters that carry a credential (`token`, `access_token`, `api_key`, `password`,
# `X-Amz-Signature`), named as a whole so `authSource=admin` or `keyspace=app` are not taken
_CREDENTIAL_KEY = re.compile(
    r"(?i)(?:[a-z0-9]+[_-])*(?:[a-z0-9]*(?:token|secret|password|passwd|pwd)|api[_-]?key|key|sig|signature)"
)
_CONNINFO_PASSWORD = re.compile(r"(?:\A|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def _userinfo_password(value: str) -> str | None:
    """The password of a URL's user-info as written, read the way libpq reads it (the
    authority ends at the first `/`; the user-info at its last `@`), so a password with
    characters urllib would split on (`#`, `?`, a space) is still found."""
    head = _URL_HEAD.match(value)
    if not head:
        return None
    authority = value[head.end() :].split("/", 1)[0]
    if "@" not in authority:
        return None
    userinfo = authority.rsplit("@", 1)[0]
    return userinfo.split(":", 1)[1] if ":" in userinfo else None


def secret_parts(value: str) -> list[tuple[str, str]]:
    """(what, part) for each secret a value holds besides itself: a URL's password (as written
    and percent-decoded), credential query parameters, a libpq `password=` keyword."""
    parts: list[tuple[str, str]] = []
    raw = _userinfo_password(value)
    if raw:
        parts += [("the password of its URL", raw), ("the password of its URL", unquote(raw))]
    if _URL_HEAD.match(value) and "?" in value:
        for piece in value.split("?", 1)[1].split("#", 1)[0].split("&"):
            key, _, raw_value = piece.partition("=")
            if raw_value and _CREDENTIAL_KEY.fullmatch(unquote_plus(key)):
                what = f"its query parameter {unquote_plus(key)}"
                parts += [(what, raw_value), (what, unquote_plus(raw_value))]
    for match in _CONNINFO_PASSWORD.finditer(value):
        pw = match.group(1)
        if pw.startswith("'"):
            pw = re.sub(r"\\(.)", r"\1", pw[1:-1])
        parts.append(("its password= keyword", pw))
    unique: dict[str, str] = {}
    for what, part in parts:
        if part and part != value:
            unique.setdefault(part, what)
    return [(what, part) for part, what in unique.items()]


def _misread_parts(value: str) -> list[str]:
    """What a parser that ends the user-info at the first `@` (libpq) takes for the password of
    a URL whose password holds a raw `@`: a piece it quotes in its errors. Scrubbed when long
    enough; a shorter piece is the driver's text, which `connect_error` never shows."""
    head = _URL_HEAD.match(value)
    if not head:
        return []
    authority = value[head.end() :].split("/", 1)[0]
    if authority.count("@") < 2:
        return []
    userinfo = authority.split("@", 1)[0]
    pw = userinfo.split(":", 1)[1] if ":" in userinfo else ""
    return [p for p in {pw, unquote(pw)} if len(p) >= MIN_SECRET_LENGTH]


def is_secret_bearing(url: str) -> bool:
    """Whether a driver's text about `url` may carry a secret: it holds a credential part, or
    the whole of it is a registered secret."""
    return bool(secret_parts(url)) or REDACTOR.name_of(url) is not None


@dataclass(frozen=True)
class _Needle:
    label: str
    token: bool  # replaced only where no word character continues it


def _needles(value: str, label: str) -> dict[str, _Needle]:
    """Every form of `value` to look for; only the plain value itself can be a whole-token needle."""
    token = matches_as_token(value)
    forms = {quote(value, safe=""), quote_plus(value), quote(value), *_b64_cores(value.encode())}
    out = {f: _Needle(label, False) for f in forms if len(f) >= MIN_SECRET_LENGTH and f != value}
    out[value] = _Needle(label, token)
    return out


def _stands_alone(text: str, start: int, end: int) -> bool:
    """A whole-token needle at text[start:end] is the secret unless a word character continues it."""
    if end < len(text) and _is_word(text[end]):
        return False
    if start == 0 or not _is_word(text[start - 1]):
        return True
    return _ESCAPE_TAIL.search(text[max(0, start - _TAIL) : start]) is not None


def _spans(text: str, needles: dict[str, _Needle]) -> list[tuple[int, int, str]]:
    """Where secrets are, merged where they overlap, in order: (start, end, label)."""
    found: list[tuple[int, int, str]] = []
    for form, needle in needles.items():
        at = text.find(form)
        while at != -1:
            end = at + len(form)
            if not needle.token or _stands_alone(text, at, end):
                found.append((at, end, needle.label))
            at = text.find(form, at + 1)
    found.sort(key=lambda s: (s[0], -s[1]))
    merged: list[tuple[int, int, str]] = []
    for start, end, label in found:
        if merged and start < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2])
        else:
            merged.append((start, end, label))
    return merged


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for start, end, label in spans:
        out += [text[pos:start], label]
        pos = end
    out.append(text[pos:])
    return "".join(out)


class Redactor:
    """Process-wide list of values that must never be emitted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._needles: dict[str, _Needle] = {}
        self._compiled: tuple[re.Pattern[str], dict[str, _Needle]] | None = None
        self._whole: dict[str, str] = {}

    def name_of(self, value: str) -> str | None:
        """The name a whole value was registered under (to name the variable, never the value)."""
        with self._lock:
            return self._whole.get(value)

    def register(self, value: str, name: str = "secret") -> None:
        """Scrub `value` (and its encodings) from now on; an empty value is nothing to hide.

        A value shorter than MIN_SECRET_LENGTH raises UnscrubbableSecret naming `name`, never the
        value: relnb could neither keep it out of its output nor scrub it without rewriting
        other text, and a secret it silently cannot hide is a leak waiting to happen. The same
        holds for each part (`secret_parts`): a URL whose password is shorter is refused too,
        naming the variable, since a driver or a log may show that password on its own.
        """
        if not value:
            return
        if len(value) < MIN_SECRET_LENGTH:
            raise UnscrubbableSecret(
                f"secret {name} is {too_short_message(len(value))}",
                key=name,
                fix="use a longer secret",
            )
        label = f"[redacted:{name}]"
        needles: dict[str, _Needle] = {}
        for what, part in secret_parts(value):
            if len(part) < MIN_SECRET_LENGTH:
                raise UnscrubbableSecret(
                    f"secret {name}: {what} is {too_short_message(len(part))}",
                    key=name,
                    fix=f"use a password of >= {MIN_SECRET_LENGTH} characters in {name}",
                )
            for form, needle in _needles(part, label).items():
                needles.setdefault(form, needle)
        for piece in _misread_parts(value):
            for form, needle in _needles(piece, label).items():
                needles.setdefault(form, needle)
        needles.update(_needles(value, label))
        with self._lock:
            self._whole[value] = name
            for form, needle in needles.items():
                self._needles.setdefault(form, needle)
            self._compiled = None

    def forget_all(self) -> None:
        """Tests only: start from a clean registry."""
        with self._lock:
            self._needles.clear()
            self._whole.clear()
            self._compiled = None

    @property
    def names(self) -> list[str]:
        return sorted({n.label[10:-1] for n in self._needles.values()})

    def _snapshot(self) -> tuple[re.Pattern[str], dict[str, _Needle]] | None:
        """The needles as of now, with one pattern of them all for a cheap first pass (most
        strings hold no form of any secret); rebuilt only after a registration."""
        with self._lock:
            if self._compiled is None and self._needles:
                alts = sorted(self._needles, key=len, reverse=True)
                pattern = re.compile("|".join(re.escape(a) for a in alts))
                self._compiled = (pattern, dict(self._needles))
            return self._compiled

    def _find(self, text: str) -> list[tuple[int, int, str]]:
        compiled = self._snapshot()
        if compiled is None or not text:
            return []
        pattern, needles = compiled
        hits = [(m.start(), m.end(), needles[m.group(0)]) for m in pattern.finditer(text)]
        if any(needle.token for _, _, needle in hits):
            # a whole-token needle that is refused must not hide another secret that overlaps
            # it, so every form is looked for on its own
            return _spans(text, needles)
        return [(start, end, needle.label) for start, end, needle in hits]

    def scrub(self, text: str) -> str:
        spans = self._find(text)
        return _replace(text, spans) if spans else text

    def scrub_obj(self, obj: Any) -> Any:
        """Scrub every string inside JSON-like data (keys included)."""
        if isinstance(obj, str):
            return self.scrub(obj)
        if isinstance(obj, dict):
            return {self.scrub_obj(k): self.scrub_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.scrub_obj(v) for v in obj]
        if isinstance(obj, Secret):
            return repr(obj)
        return obj

    def contains_secret(self, text: str) -> list[str]:
        """Names of registered secrets found in `text` (for scans that must block, not fix)."""
        return sorted({label[10:-1] for _, _, label in self._find(text)})


def would_rewrite(value: str, text: str) -> bool:
    """Whether registering `value` would change `text` when scrubbed (for the config's check
    that no secret rewrites a name relnb reads back, before the secret is registered)."""
    if not value:
        return False
    needles = _needles(value, "")
    for _, part in secret_parts(value):
        needles.update({f: n for f, n in _needles(part, "").items() if f not in needles})
    return bool(_spans(text, needles))


REDACTOR = Redactor()


def register(value: str, name: str = "secret") -> None:
    REDACTOR.register(value, name)


def scrub(text: str) -> str:
    return REDACTOR.scrub(text)


def scrub_obj(obj: Any) -> Any:
    return REDACTOR.scrub_obj(obj)


def format_exception(exc: BaseException) -> str:
    """A traceback with every registered secret scrubbed, frame locals never included."""
    return scrub("".join(traceback.format_exception(exc)))


def find_token_shapes(text: str) -> list[str]:
    """Kinds of well-known token shapes present in `text`."""
    return [kind for kind, pat in TOKEN_PATTERNS.items() if pat.search(text)]


class ScrubbingFilter(logging.Filter):
    """Logging filter that scrubs messages and arguments before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = ()
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = format_exception(record.exc_info[1])
            record.exc_info = None
        return True


def install_logging_filter(logger: logging.Logger | None = None) -> None:
    target = logger or logging.getLogger("relnb")
    if not any(isinstance(f, ScrubbingFilter) for f in target.filters):
        target.addFilter(ScrubbingFilter())


# --------------------------------------------------------------------------- connection errors

_CONNINFO_WORD = re.compile(r"(?:\A|\s)(host|port|dbname|user)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")

# (what the driver's text says, in lower case) → relnb's own account of it; the driver's text
# itself is never emitted, because it may quote the URL or a piece of it
_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("unexpected spaces", "invalid uri", "invalid connection option", "missing \"=\"",
         "unterminated quoted string", "invalid integer value", "invalid port", "invalid percent",
         "redis url must specify", "invalid literal for int", "port could not be cast",
         "url cannot be parsed", "unparseable", "invalid url"),
        "the URL cannot be parsed (check quoting of its password)",
    ),
    (("connection refused", "connectionrefusederror", "errno 111]"), "connection refused at {at}"),
    (("timeout", "timed out"), "no answer from {at} (timed out)"),
    (
        ("could not translate host name", "name or service not known", "nodename nor servname",
         "name resolution", "getaddrinfo"),
        "host {host} not found",
    ),
    (
        ("password authentication failed", "authentication failed", "wrongpass", "noauth",
         "invalid username-password", "invalid password", "no password supplied",
         "password is required"),
        "authentication failed at {at}{as_user}",
    ),
    (("no pg_hba.conf entry",), "the server at {at} refuses this client (pg_hba.conf)"),
    (("does not exist",), "{at} says the database or role does not exist{db}"),
    (("ssl", "tls", "certificate"), "TLS negotiation with {at} failed"),
)


def url_endpoint(url: str) -> dict[str, str]:
    """host, port, user, dbname of a URL or keyword conninfo, read without any driver (parts a
    message may name; never the password)."""
    head = _URL_HEAD.match(url)
    if not head:
        found = {k: v.strip("'") for k, v in _CONNINFO_WORD.findall(url)}
        return _plain({k: found.get(k, "") for k in ("host", "port", "user", "dbname")})
    rest = url[head.end() :]
    authority, _, path = rest.partition("/")
    userinfo, _, hostport = authority.rpartition("@")
    user = unquote(userinfo.split(":", 1)[0])
    if hostport.startswith("["):
        host, _, port = hostport[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = hostport.partition(":")
    dbname = unquote(path.split("?", 1)[0].split("#", 1)[0])
    return _plain({"host": host, "port": port, "user": user, "dbname": dbname})


_PLAIN = {"host": re.compile(r"[A-Za-z0-9._:-]+"), "port": re.compile(r"[0-9]{1,5}")}
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,63}")


def _plain(parts: dict[str, str]) -> dict[str, str]:
    """Only parts that look like what they are: a URL the parser got wrong (a password with
    `/` or `@` in it) must not put a piece of the password where the host should be."""
    return {
        k: v if _PLAIN.get(k, _PLAIN_NAME).fullmatch(v) else "" for k, v in parts.items()
    }


def _ambiguous(url: str) -> bool:
    """Whether urllib (redis-py, most drivers) and libpq read a different host out of `url`: a
    raw `#`, `?`, `/` or `@` in the password moves where the host seems to start, and the
    driver's error then names a piece of the password as the host."""
    if not _URL_HEAD.match(url):
        return False
    try:
        theirs = urlsplit(url).hostname or ""
    except ValueError:
        return True
    return theirs.lower() != url_endpoint(url)["host"].strip("[]").lower()


def connect_error(exc: BaseException, url: str, what: str = "the database") -> str:
    """`cannot connect to $VAR: <why>` in relnb's own words, for an exception raised while
    opening a connection to `url` (issue 22 item 2).

    A driver quotes what it cannot parse, so about a secret-bearing URL its text is never
    used, only classified; the variable is named when the URL is a registered secret. About a
    URL without credentials the driver's first line is kept (scrubbed): it is the best help.
    """
    name = REDACTOR.name_of(url)
    target = f"${name}" if name else what
    text = f"{type(exc).__name__}: {exc}".lower()
    if _ambiguous(url):
        text = "url cannot be parsed"  # the driver connected (or not) to a host of its own reading
    if not (secret_parts(url) or name):
        detail = scrub(str(exc)).strip().splitlines()
        return f"cannot connect to {target}: {detail[0][:200] if detail else type(exc).__name__}"
    ep = url_endpoint(url)
    host = ep["host"] or "localhost"
    at = f"{host}:{ep['port']}" if ep["port"] else host
    fields = {
        "at": at,
        "host": host,
        "as_user": f" as user {ep['user']}" if ep["user"] else "",
        "db": f" (database {ep['dbname']!r}, user {ep['user']!r})" if ep["dbname"] else "",
    }
    for needles, template in _CAUSES:
        if any(n in text for n in needles):
            return scrub(f"cannot connect to {target}: {template.format(**fields)}")
    return scrub(f"cannot connect to {target} at {at}: {type(exc).__name__} (driver text withheld)")
