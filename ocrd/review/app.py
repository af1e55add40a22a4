"""The review web application (Starlette + Jinja2): the queue, documents, and the decisions.

Pages: /queue, /documents, /documents/{id}, /login. JSON: /api/queue, /api/results/{id},
POST /api/results/{id}/review. Images by id only: /crops/{result_id}.png,
/documents/{id}/pages/{n}.jpg. Every decision is logged (logger ``ocrd.review``) with who and when.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ocrd.review import queries
from ocrd.review.images import ImageUnavailable, PageImages
from ocrd.review.security import (
    CSRF_FIELD,
    LOOPBACK_HOSTS,
    Access,
    TokenMiddleware,
    clean_name,
    csrf_ok,
    csrf_token,
    reviewer,
    safe_next,
)
from ocrd.store import Store
from ocrd.store.models import Document, DocumentStatus, Result
from ocrd.store.queries import parse_when
from ocrd.store.reviews import Decision, ReviewStatus, decide
from ocrd.types import Box

log = logging.getLogger("ocrd.review")
HERE = Path(__file__).parent
QUEUE_BATCH = 5  # items per fetch; the page asks for more before it runs out
ACTIONS = {"accept": ReviewStatus.ACCEPTED, "correct": ReviewStatus.CORRECTED,
           "illegible": ReviewStatus.ILLEGIBLE}  # fmt: skip
SESSION_HOURS = 12
CHOICES_SECONDS = 30.0


class ReviewApp:
    """The handlers, bound to one store and one image cache."""

    def __init__(self, store: Store, images: PageImages, access: Access) -> None:
        self.store = store
        self.images = images
        self.access = access
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["pager"] = _with_page
        self._choices_cache: tuple[float, dict[str, list[str]]] | None = None

    # -- helpers ----------------------------------------------------------------------------

    def render(self, request: Request, name: str, **context: Any) -> Response:
        context.update(
            csrf=csrf_token(request),
            reviewer=reviewer(request),
            needs_login=self.access.token is not None,
        )
        return self.templates.TemplateResponse(request, name, context)

    def read(self, work):  # noqa: ANN001, ANN201 (a function of a Session)
        with self.store.session(write=False) as session:
            return work(session)

    @staticmethod
    def _id(request: Request, name: str) -> int:
        try:
            return int(request.path_params[name])
        except (KeyError, ValueError):
            raise HTTPException(404, "not found") from None

    # -- queue ------------------------------------------------------------------------------

    def queue_page(self, request: Request) -> Response:
        filters, problems = _queue_filter(request)
        (items, pages), count, choices = self.read(
            lambda s: (
                queries.queue_items(s, filters, limit=QUEUE_BATCH),
                queries.queue_count(s, filters),
                self._choices(s),
            )
        )
        self.images.warm(pages)
        return self.render(
            request, "queue.html", items=items, count=count, choices=choices,
            filters=request.query_params, problems=problems,
        )  # fmt: skip

    def _choices(self, session) -> dict[str, list[str]]:  # noqa: ANN001 (Session)
        """The filter menus, re-read at most every CHOICES_SECONDS (they change slowly)."""
        now = time.monotonic()
        if self._choices_cache is None or now - self._choices_cache[0] > CHOICES_SECONDS:
            self._choices_cache = (now, queries.queue_choices(session))
        return self._choices_cache[1]

    def queue_api(self, request: Request) -> Response:
        filters, problems = _queue_filter(request)
        if problems:
            return JSONResponse({"error": "; ".join(problems)}, status_code=400)
        after = _int_param(request, "after", 0)
        limit = min(50, max(1, _int_param(request, "limit", QUEUE_BATCH)))
        (items, pages), count = self.read(
            lambda s: (
                queries.queue_items(s, filters, after=after, limit=limit),
                queries.queue_count(s, filters),
            )
        )
        self.images.warm(pages)
        return JSONResponse({"count": count, "items": items})

    def result_api(self, request: Request) -> Response:
        result_id = self._id(request, "result_id")
        item = self.read(lambda s: queries.field(s, result_id))
        if item is None:
            return JSONResponse({"error": f"no result with id {result_id}"}, status_code=404)
        return JSONResponse(item)

    async def review_api(self, request: Request) -> Response:
        result_id = self._id(request, "result_id")
        form = await request.form()
        if not csrf_ok(request, _form_text(form, CSRF_FIELD)):
            return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
        action = _form_text(form, "action")
        if action not in ACTIONS:
            return JSONResponse(
                {"error": f"action must be one of {', '.join(ACTIONS)}"}, status_code=400
            )
        decision = Decision(result_id, ACTIONS[action], _form_text(form, "text"), reviewer(request))
        try:
            item = await run_in_threadpool(self._decide, decision)
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(item)

    def _decide(self, decision: Decision) -> dict[str, Any]:
        with self.store.session() as session:
            review = decide(session, decision)
            item = queries.review_item(review)
            machine = session.get(Result, decision.result_id).text
        log.info(
            "review: result %d %s by %s at %s (read %r, now %r)",
            decision.result_id, review.status, review.reviewer, item["reviewed_at"],
            machine, review.text,
        )  # fmt: skip
        return {"result_id": decision.result_id, **item}

    # -- images -----------------------------------------------------------------------------

    def crop(self, request: Request) -> Response:
        result_id = self._id(request, "result_id")
        source = self.read(lambda s: queries.crop_source(s, result_id))
        if source is None:
            return JSONResponse({"error": f"no result with id {result_id}"}, status_code=404)
        path, page, result = source
        box = Box(result.x, result.y, result.w, result.h)
        try:
            data = self.images.crop_png(result_id, path, page, box)
        except ImageUnavailable as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return Response(data, media_type="image/png", headers=_private_cache())

    def page_image(self, request: Request) -> Response:
        document_id, number = self._id(request, "document_id"), self._id(request, "page")
        document = self.read(lambda s: s.get(Document, document_id))
        if document is None:
            return JSONResponse({"error": f"no document with id {document_id}"}, status_code=404)
        try:
            data = self.images.page_jpeg(document.path, number)
        except ImageUnavailable as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return Response(data, media_type="image/jpeg", headers=_private_cache())

    # -- documents --------------------------------------------------------------------------

    def documents_page(self, request: Request) -> Response:
        params = request.query_params
        problems: list[str] = []
        status = params.get("status") or None
        if status and status not in {s.value for s in DocumentStatus}:
            problems.append(f"unknown status {status!r}")
            status = None
        filters = queries.DocumentFilter(
            path_glob=params.get("q") or None,
            status=status,
            template=params.get("template") or None,
            since=_when(params.get("since"), "since", problems),
            until=_when(params.get("until"), "until", problems),
            page=max(1, _int_param(request, "page", 1)),
        )
        documents, total = self.read(lambda s: queries.documents_page(s, filters))
        pages = max(1, -(-total // queries.DOCUMENTS_PAGE))
        return self.render(
            request, "documents.html", documents=documents, total=total, filters=params,
            page=filters.page, pages=pages, statuses=[s.value for s in DocumentStatus],
            problems=problems,
        )  # fmt: skip

    def document_page(self, request: Request) -> Response:
        document_id = self._id(request, "document_id")

        def load(session):  # noqa: ANN001, ANN202
            document = session.get(Document, document_id)
            if document is None:
                return None
            fields = queries.document_fields(session, document_id)
            return queries.document_item(document), fields, document.path

        loaded = self.read(load)
        if loaded is None:
            raise HTTPException(404, f"no document with id {document_id}")
        document, fields, path = loaded
        sizes = {}
        for number in range(1, document["pages"] + 1):
            try:
                height, width = self.images.page(path, number).shape[:2]
                sizes[number] = (width, height)
            except ImageUnavailable as exc:
                document["notes"] = [*document["notes"], f"page {number}: {exc}"]
        by_page = {n: [f for f in fields if f["page"] == n] for n in sizes}
        return self.render(
            request, "document.html", document=document, fields=fields, sizes=sizes,
            by_page=by_page,
        )  # fmt: skip

    # -- login and reviewer name ------------------------------------------------------------

    def login_page(self, request: Request) -> Response:
        return self.render(request, "login.html", next=safe_next(request.query_params.get("next")))

    async def login(self, request: Request) -> Response:
        form = await request.form()
        target = safe_next(_form_text(form, "next"))
        if not csrf_ok(request, _form_text(form, CSRF_FIELD)):
            return self.render(
                request, "login.html", next=target, error="the form expired: try again"
            )
        if self.access.token is not None and not self.access.token_matches(
            _form_text(form, "token")
        ):
            log.warning(
                "review: failed login from %s", request.client.host if request.client else "?"
            )
            response = self.render(request, "login.html", next=target, error="wrong token")
            response.status_code = 401
            return response
        request.session["auth"] = self.access.fingerprint
        name = clean_name(_form_text(form, "name"))
        if name:
            request.session["reviewer"] = name
        log.info("review: %s signed in", reviewer(request))
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request, _form_text(form, CSRF_FIELD)):
            return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    async def set_reviewer(self, request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request, _form_text(form, CSRF_FIELD)):
            return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
        name = clean_name(_form_text(form, "name"))
        if name:
            request.session["reviewer"] = name
        return RedirectResponse(safe_next(_form_text(form, "next")), status_code=303)


def _with_page(params: Any, page: int) -> str:
    from urllib.parse import urlencode

    return urlencode({**dict(params), "page": page})


def _private_cache() -> dict[str, str]:
    return {"Cache-Control": "private, max-age=300"}


def _form_text(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _int_param(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params.get(name, default))
    except ValueError:
        return default


def _when(text: str | None, name: str, problems: list[str]):  # noqa: ANN202 (datetime | None)
    if not text:
        return None
    try:
        return parse_when(text)
    except ValueError as exc:
        problems.append(f"{name}: {exc}")
        return None


def _queue_filter(request: Request) -> tuple[queries.QueueFilter, list[str]]:
    params = request.query_params
    problems: list[str] = []
    filters = queries.QueueFilter(
        template=params.get("template") or None,
        field=params.get("field") or None,
        since=_when(params.get("since"), "since", problems),
        until=_when(params.get("until"), "until", problems),
    )
    return filters, problems


async def _not_found(request: Request, exc: HTTPException) -> Response:
    if request.url.path.startswith(("/api/", "/crops/")) or "/pages/" in request.url.path:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    return Response(f"{exc.status_code}: {exc.detail}\n", status_code=exc.status_code,
                    media_type="text/plain")  # fmt: skip


def create_app(store: Store, access: Access, *, max_pixels: int, pdf_dpi: int) -> Starlette:
    handlers = ReviewApp(store, PageImages(max_pixels=max_pixels, pdf_dpi=pdf_dpi), access)
    routes = [
        Route("/", lambda request: RedirectResponse("/queue", status_code=303)),
        Route("/queue", handlers.queue_page),
        Route("/documents", handlers.documents_page),
        Route("/documents/{document_id:int}", handlers.document_page),
        Route("/documents/{document_id:int}/pages/{page:int}.jpg", handlers.page_image),
        Route("/crops/{result_id:int}.png", handlers.crop),
        Route("/api/queue", handlers.queue_api),
        Route("/api/results/{result_id:int}", handlers.result_api),
        Route("/api/results/{result_id:int}/review", handlers.review_api, methods=["POST"]),
        Route("/login", handlers.login_page),
        Route("/login", handlers.login, methods=["POST"]),
        Route("/logout", handlers.logout, methods=["POST"]),
        Route("/reviewer", handlers.set_reviewer, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = []
    if access.loopback:  # DNS rebinding: only requests addressed to the loopback host
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS))
    middleware += [
        Middleware(
            SessionMiddleware,
            secret_key=access.session_secret,
            session_cookie="ocrd_review",
            max_age=SESSION_HOURS * 3600,
            same_site="strict",
        ),  # fmt: skip
        Middleware(TokenMiddleware, access=access),
    ]
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers={HTTPException: _not_found}
    )
