"""Database URLs: parsing what users actually type, and masking secrets in every form.

SQLAlchemy's `make_url` takes the password up to the FIRST '@' (so `u:p@ss@host` connects to
host `ss@host` and prints `u:***@ss@host`), raises a bare ValueError on a port that is not a
number and leaves `?password=` in plain sight. Here a password runs up to the LAST '@' of the
authority, a bad port is one line that says how to fix it, and `mask_url` hides the password
wherever it is (userinfo, query parameters, a libpq ``key=value`` string), even in text that
does not parse.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
SECRET_KEYS = frozenset(
    {"password", "passwd", "pwd", "pass", "secret", "token", "sslpassword", "api_key", "apikey"}
)
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*)://(?P<rest>.*)$", re.DOTALL)
# libpq connection strings: "host=db user=u password=secret dbname=ocrd" (values may be quoted).
_CONNINFO_PAIR = re.compile(r"(?P<key>\w+)\s*=\s*(?P<value>'(?:[^'\\]|\\.)*'|\S*)")
_LOOKS_LIKE_CONNINFO = re.compile(r"^\s*\w+\s*=")


class DatabaseUrlError(ValueError):
    """A database URL that cannot be used; the message is one line and never shows a secret."""


def looks_like_conninfo(text: str) -> bool:
    """A libpq ``key=value`` connection string rather than a URL or a file path."""
    return "://" not in text and bool(_LOOKS_LIKE_CONNINFO.match(text))


def _split_authority(rest: str) -> tuple[str, str]:
    """'user:pw@host:5432/db?x=1' -> ('user:pw@host:5432', '/db?x=1'). The authority ends at the
    first '/' or '?' after its last '@' (a password may hold '/', '?', '@')."""
    query_at = rest.find("?")
    head = rest if query_at < 0 else rest[:query_at]
    at = head.rfind("@")
    start = at + 1 if at >= 0 else 0
    ends = [i for i in (rest.find("/", start), rest.find("?", start)) if i >= 0]
    end = min(ends) if ends else len(rest)
    return rest[:end], rest[end:]


def parse_database_url(text: str) -> URL:
    """A SQLAlchemy URL from what the user wrote, or DatabaseUrlError (one line, masked)."""
    match = _SCHEME.match(text.strip())
    if match is None:
        raise DatabaseUrlError(f"not a database URL: {mask_url(text)!r}")
    scheme, rest = match["scheme"], match["rest"]
    authority, tail = _split_authority(rest)
    userinfo, _, hostport = authority.rpartition("@")
    if scheme.startswith("sqlite"):
        try:
            return make_url(text.strip())
        except (ArgumentError, ValueError) as exc:
            raise DatabaseUrlError(f"not a database URL: {mask_url(text)!r} ({exc})") from None
    port = _port_of(hostport, text)
    try:
        parsed = make_url(f"{scheme}://{hostport}{tail}" if port is None else f"{scheme}://{tail}")
    except (ArgumentError, ValueError) as exc:
        raise DatabaseUrlError(f"not a database URL: {mask_url(text)!r} ({exc})") from None
    if port is not None:
        host = hostport.rsplit(":", 1)[0]
        parsed = parsed.set(host=host.strip("[]") or None, port=port)
    if userinfo:
        user, has_password, password = userinfo.partition(":")
        parsed = parsed.set(
            username=unquote(user) or None, password=unquote(password) if has_password else None
        )
    return parsed


def _port_of(hostport: str, original: str) -> int | None:
    """The port of 'host:PORT' (None without one); a port that is not a number is an error."""
    if hostport.startswith("["):  # [ipv6]:port
        _, _, after = hostport.partition("]")
        port_text = after[1:] if after.startswith(":") else ""
    else:
        port_text = hostport.rpartition(":")[2] if ":" in hostport else ""
    if not port_text:
        return None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise DatabaseUrlError(
            f"database URL {mask_url(original)}: port {port_text!r} is not a number from 1 to "
            "65535 (write host:PORT, e.g. 127.0.0.1:5432, or leave the port out)"
        )
    return int(port_text)


def mask_url(url: str | URL) -> str:
    """The URL (or connection string) as safe to print: every password replaced by ***."""
    if isinstance(url, URL):
        return _mask_query(url.render_as_string(hide_password=True))
    text = str(url)
    if looks_like_conninfo(text):
        return _CONNINFO_PAIR.sub(_mask_pair, text)
    match = _SCHEME.match(text)
    if match is None:
        return text
    authority, tail = _split_authority(match["rest"])
    userinfo, at, hostport = authority.rpartition("@")
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":" + MASK
    return f"{match['scheme']}://{userinfo}{at}{hostport}{_mask_query(tail)}"


def _mask_pair(match: re.Match[str]) -> str:
    if match["key"].lower() in SECRET_KEYS:
        return f"{match['key']}={MASK}"
    return match[0]


def _mask_query(text: str) -> str:
    base, question, query = text.partition("?")
    if not question:
        return text
    parts = []
    for part in query.split("&"):
        key, equals, _ = part.partition("=")
        parts.append(f"{key}={MASK}" if equals and unquote(key).lower() in SECRET_KEYS else part)
    return f"{base}?{'&'.join(parts)}"
