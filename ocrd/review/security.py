"""Who may use the review page, and proof that a form was sent by the page itself.

- Bound to a loopback address, the page is open to the local user (a token, if set, is still
  required). Any other address needs ``OCRD_REVIEW_TOKEN``: sent by API clients as
  ``Authorization: Bearer TOKEN`` (or ``X-OCRD-Review-Token``), or typed once into the login
  form, which sets a signed session cookie holding a fingerprint of the token (never the token).
- Every form and every browser ``fetch`` that changes something carries the session's CSRF
  token (a hidden field or ``X-CSRF-Token``); requests authenticated by the token header are
  not cookie-driven and need none.
- On loopback the Host header must name the loopback host, so a page elsewhere cannot reach
  the server through DNS rebinding.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

TOKEN_ENV = "OCRD_REVIEW_TOKEN"
TOKEN_HEADER = "x-ocrd-review-token"
REVIEWER_HEADER = "x-ocrd-reviewer"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
MIN_TOKEN_LENGTH = 16
OPEN_PATHS = ("/login", "/static/")
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


class AccessError(ValueError):
    """The server cannot start with these settings (one line for the user)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    token: str | None
    session_secret: str
    loopback: bool

    @property
    def fingerprint(self) -> str:
        return _digest(self.token or "", "login")

    def token_matches(self, offered: str | None) -> bool:
        return bool(self.token and offered) and hmac.compare_digest(
            offered.encode(), self.token.encode()
        )


def _digest(key: str, purpose: str) -> str:
    return hmac.new(key.encode(), f"ocrd-review-{purpose}".encode(), hashlib.sha256).hexdigest()


def access_for(host: str, token: str | None) -> Access:
    """The access rules for serving on ``host``; AccessError when they cannot be safe."""
    token = (token or "").strip() or None
    loopback = is_loopback(host)
    if token is None and not loopback:
        raise AccessError(
            f"serving the review page on {host} (not a loopback address) needs a token: "
            f"set {TOKEN_ENV} to a secret of at least {MIN_TOKEN_LENGTH} characters"
        )
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise AccessError(f"{TOKEN_ENV} is too short: use at least {MIN_TOKEN_LENGTH} characters")
    # With a token, sessions survive a restart and die when the token changes.
    secret = _digest(token, "session") if token else secrets.token_hex(32)
    return Access(token=token, session_secret=secret, loopback=loopback)


def _offered_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get(TOKEN_HEADER)


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/crops/")) or "/pages/" in path


class TokenMiddleware(BaseHTTPMiddleware):
    """Lets a request through when it may see the page; sets ``request.state.via`` to how it
    was let in: local (no token needed), header or cookie."""

    def __init__(self, app, access: Access) -> None:  # noqa: ANN001 (ASGI app)
        super().__init__(app)
        self.access = access

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        request.state.via = self._via(request)
        path = request.url.path
        if request.state.via is None and not path.startswith(OPEN_PATHS):
            if _wants_json(request):
                return JSONResponse({"error": "a review token is needed"}, status_code=401)
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)
        return await call_next(request)

    def _via(self, request: Request) -> str | None:
        if self.access.token is None:
            return "local"
        if self.access.token_matches(_offered_token(request)):
            return "header"
        if hmac.compare_digest(request.session.get("auth", ""), self.access.fingerprint):
            return "cookie"
        return None


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def safe_next(target: str | None) -> str:
    """Only a path on this server ("/..."), never another site ("//evil", "https://...")."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/queue"
    return target


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, form_value: str | None) -> bool:
    if getattr(request.state, "via", None) == "header":
        return True
    sent = form_value or request.headers.get(CSRF_HEADER) or ""
    expected = request.session.get("csrf") or ""
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def reviewer(request: Request) -> str:
    """Who is deciding: the name given at login or on the page, an API client's header, or the
    user the server runs as."""
    name = request.session.get("reviewer") or request.headers.get(REVIEWER_HEADER)
    if not name and getattr(request.state, "via", None) == "header":
        name = "api"
    return clean_name(name) or _local_user()


def clean_name(name: str | None) -> str:
    return " ".join((name or "").split())[:100]


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"
