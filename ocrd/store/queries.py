"""Read-side queries: the filtered, streamed result export, one document's record (``ocrd show``)
and the status summary."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import Row, Select, Text, case, cast, func, or_, select
from sqlalchemy.orm import Session, aliased

from ocrd.store.engine import Store
from ocrd.store.models import Document, DocumentStatus, Result, utcnow
from ocrd.store.reviews import Review, queue_stats, waiting

# The stable export contract: these columns first, in this order; more may be appended.
STABLE_COLUMNS = (
    "path", "page", "x", "y", "w", "h", "text", "confidence", "kind", "model",
    "processed_at", "sha256",
)  # fmt: skip
EXTRA_COLUMNS = (
    "document_id", "result_id", "status", "original_name", "error", "digits",
    # a duplicate: the document it repeats (id and path); with --path, a duplicate's rows are
    # its original's results, marked by these two cells
    "duplicate_of", "duplicate_of_path",
    "needs_review", "review_reason",
    # the review page's decision (accepted / corrected / illegible) and the value it gave
    "review_status", "reviewed_text",
)  # fmt: skip
TEMPLATE_COLUMNS = ("template", "field")  # the form template the page matched, its field
COLUMNS = STABLE_COLUMNS + EXTRA_COLUMNS + TEMPLATE_COLUMNS

STREAM_BATCH = 2000
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_SPAN_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time from ``today``, ``yesterday``, ``now``, an ISO date or datetime (naive
    means local time) or a span back from now (``30m``, ``2h``, ``7d``, ``1w``); UTC-aware.
    Raises ValueError with a one-line message for anything else."""
    now = now or utcnow()
    word = text.strip().lower()
    local_midnight = datetime.combine(now.astimezone().date(), time()).astimezone()
    if word == "now":
        return now
    if word == "today":
        return local_midnight.astimezone(UTC)
    if word == "yesterday":
        return (local_midnight - timedelta(days=1)).astimezone(UTC)
    if match := _SPAN.match(word):
        amount, unit = float(match[1]), match[2].lower()
        return now - timedelta(**{_SPAN_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use today, yesterday, now, an ISO date or datetime "
            "(2026-01-31, 2026-01-31T08:00) or a span like 30m, 2h, 7d, 1w"
        ) from None
    return parsed.astimezone(UTC)  # naive datetimes are taken as local time


def like_literal(text: str) -> str:
    """``text`` matched literally by SQL LIKE with ``\\`` as escape."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_to_like(pattern: str) -> str:
    """Shell glob (``*`` and ``?``) to an SQL LIKE pattern with ``\\`` as escape."""
    return like_literal(pattern).replace("*", "%").replace("?", "_")


@dataclass(frozen=True)
class ResultFilter:
    since: datetime | None = None  # documents finished at or after
    until: datetime | None = None  # ... and before
    path_glob: str | None = None  # matches the full path or the original file name
    min_confidence: float | None = None
    kind: str | None = None
    status: str | None = None  # with a status, documents without results are listed too
    limit: int | None = None
    oldest_first: bool = False  # default: the newest documents first
    needs_review: bool = False  # only the fields waiting for review
    final: bool = False  # ``text`` is the reviewed value where there is one ("" if illegible)
    template: str | None = None  # only fields of pages that matched this template


def results_query(filters: ResultFilter) -> Select:
    original = aliased(Document, name="original")
    processed_at = Document.finished_at.label("processed_at")
    text = Result.text
    if filters.final:
        text = case((Review.id.is_not(None), func.coalesce(Review.text, "")), else_=Result.text)
    columns = [
        Document.path, Result.page, Result.x, Result.y, Result.w, Result.h, text.label("text"),
        Result.confidence, Result.kind, Result.model, processed_at, Document.sha256,
        Document.id.label("document_id"), Result.id.label("result_id"), Document.status,
        Document.original_name, Document.error,
        # the stored JSON text as is: exporting never parses and re-serialises it
        cast(Result.digits, Text).label("digits"),
        Document.duplicate_of, original.path.label("duplicate_of_path"),
        Result.needs_review, Result.review_reason,
        Review.status.label("review_status"), Review.text.label("reviewed_text"),
        Result.template, Result.field,
    ]  # fmt: skip
    query = select(*columns).select_from(Document)
    query = query.outerjoin(original, original.id == Document.duplicate_of)
    owner = Document.id
    if filters.path_glob:  # a duplicate asked for by name answers with its original's results
        owner = func.coalesce(Document.duplicate_of, Document.id)
    if filters.status:
        query = query.outerjoin(Result, Result.document_id == owner)
        query = query.where(Document.status == filters.status)
    else:
        query = query.join(Result, Result.document_id == owner)
    query = query.outerjoin(Review, Review.result_id == Result.id)
    if filters.needs_review:
        query = query.where(waiting())
    if filters.since is not None:
        query = query.where(Document.finished_at >= filters.since)
    if filters.until is not None:
        query = query.where(Document.finished_at < filters.until)
    if filters.path_glob:
        like = glob_to_like(filters.path_glob)
        query = query.where(
            Document.path.ilike(like, escape="\\") | Document.original_name.ilike(like, escape="\\")
        )
    if filters.min_confidence is not None:
        query = query.where(Result.confidence >= filters.min_confidence)
    if filters.kind:
        query = query.where(Result.kind == filters.kind)
    if filters.template:
        query = query.where(Result.template == filters.template)
    when = func.coalesce(Document.finished_at, Document.received_at)  # pending: not finished
    if filters.oldest_first:
        query = query.order_by(when, Document.id, Result.page, Result.id)
    else:
        query = query.order_by(when.desc(), Document.id.desc(), Result.page, Result.id)
    if filters.limit is not None:
        query = query.limit(filters.limit)
    return query


def iter_results(store: Store, filters: ResultFilter) -> Iterator[Row]:
    """Matching rows (attributes and order as ``COLUMNS``; ``digits`` is JSON text), streamed
    from a server-side cursor: constant memory however many rows match."""
    with store.engine.connect() as connection:
        rows = connection.execution_options(stream_results=True, yield_per=STREAM_BATCH).execute(
            results_query(filters)
        )
        yield from rows


def count_results(store: Store, filters: ResultFilter) -> int:
    """How many rows ``iter_results`` would give (counted by the database)."""
    matching = results_query(filters).order_by(None).subquery()
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(matching)).scalar_one()


@functools.lru_cache(maxsize=4096)  # results of one document share its timestamp
def format_time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


_PROCESSED_AT = COLUMNS.index("processed_at")
_CONFIDENCE = COLUMNS.index("confidence")
_NEEDS_REVIEW = COLUMNS.index("needs_review")


def export_values(row: Row) -> list[object]:
    """One row as CSV cells in ``COLUMNS`` order (None is written as an empty cell)."""
    cells = list(row)
    cells[_PROCESSED_AT] = format_time(cells[_PROCESSED_AT])
    if cells[_CONFIDENCE] is not None:
        cells[_CONFIDENCE] = round(cells[_CONFIDENCE], 5)
    if cells[_NEEDS_REVIEW] is not None:  # the same cell on SQLite (0/1) and PostgreSQL
        cells[_NEEDS_REVIEW] = "true" if cells[_NEEDS_REVIEW] else "false"
    return cells


def export_json(row: Row) -> str:
    """One row as a JSON object on one line (``digits`` as a JSON array)."""
    record = dict(zip(COLUMNS, export_values(row), strict=True))
    record["processed_at"] = record["processed_at"] or None
    record["digits"] = json.loads(row.digits) if row.digits is not None else None
    if row.needs_review is not None:
        record["needs_review"] = bool(row.needs_review)
    return json.dumps(record, ensure_ascii=False)


# -- one row per document: what a spreadsheet wants ------------------------

WIDE_LEAD_COLUMNS = ("path", "page", "processed_at", "sha256", "document_id")
WIDE_TAIL_COLUMNS = ("needs_review",)  # the fields a person should check, space-separated


def template_fields(store: Store, template: str) -> list[str]:
    """The template's field names as stored, in the order they were first recorded (for a
    template whose file is gone)."""
    query = (
        select(Result.field, func.min(Result.id).label("first"))
        .where(Result.template == template, Result.field.is_not(None))
        .group_by(Result.field)
        .order_by("first")
    )
    with store.engine.connect() as connection:
        return [row.field for row in connection.execute(query)]


def wide_columns(field_names: list[str]) -> tuple[str, ...]:
    return WIDE_LEAD_COLUMNS + tuple(field_names) + WIDE_TAIL_COLUMNS


def iter_wide(store: Store, filters: ResultFilter, field_names: list[str]) -> Iterator[list]:
    """One row per document that matched ``filters.template``: the lead columns (`page`: the
    first page that matched), one cell per field (its text; empty when nothing was written),
    then the fields needing review. A field read on more than one page (several copies of
    the form in one file) gets its readings joined by " | " in page order and is listed for
    review. Streamed: results arrive grouped by document."""
    assert filters.template, "a wide export is per template"
    rows = iter_results(store, dataclasses.replace(filters, status=None, limit=None))
    index = {name: i for i, name in enumerate(field_names)}
    current, cells, review, seen, emitted = None, [], [], set(), 0
    for row in rows:
        if row.document_id != current:
            if current is not None:
                yield cells + [" ".join(review)]
                emitted += 1
                if filters.limit is not None and emitted >= filters.limit:
                    return
            current, review, seen = row.document_id, [], set()
            lead = [row.path, row.page, format_time(row.processed_at), row.sha256, row.document_id]
            cells = lead + [""] * len(field_names)
        if row.field not in index:
            continue
        cell = len(WIDE_LEAD_COLUMNS) + index[row.field]
        again = row.field in seen
        seen.add(row.field)
        cells[cell] = f"{cells[cell]} | {row.text}" if again else row.text
        if (row.needs_review or again) and row.field not in review:
            review.append(row.field)
    if current is not None:
        yield cells + [" ".join(review)]


@dataclass
class StatusSummary:
    counts: dict[str, int] = field(default_factory=dict)  # documents by status (all statuses)
    results: int = 0
    last_processed: dict[str, object] | None = None  # path, status, finished_at
    oldest_pending: dict[str, object] | None = None  # path, received_at, age_seconds
    window_minutes: int = 60
    files_last_window: int = 0  # done or failed in the window
    results_last_window: int = 0
    no_fields: int = 0  # done documents noted "no fields found"
    unreadable: list[dict[str, str]] = field(default_factory=list)  # inbox files (see cli)
    recent_failures: list[dict[str, object]] = field(default_factory=list)  # path, error, when
    failure_reasons: dict[str, int] = field(default_factory=dict)  # reason -> failed documents
    review_queue: int = 0  # fields waiting for a person
    oldest_review: datetime | None = None  # when the oldest of them was read

    @property
    def review_age_seconds(self) -> float:
        if self.oldest_review is None:
            return 0.0
        return (utcnow() - self.oldest_review).total_seconds()

    @property
    def files_per_minute(self) -> float:
        return self.files_last_window / self.window_minutes

    @property
    def results_per_minute(self) -> float:
        return self.results_last_window / self.window_minutes

    def as_dict(self) -> dict[str, object]:
        def stamp(entry: dict[str, object] | None) -> dict[str, object] | None:
            if entry is None:
                return None
            return {k: format_time(v) if isinstance(v, datetime) else v for k, v in entry.items()}

        return {
            "documents": self.counts,
            "results": self.results,
            "last_processed": stamp(self.last_processed),
            "oldest_pending": stamp(self.oldest_pending),
            "window_minutes": self.window_minutes,
            "files_per_minute": round(self.files_per_minute, 3),
            "results_per_minute": round(self.results_per_minute, 3),
            "review_queue": self.review_queue,
            "oldest_review": format_time(self.oldest_review) or None,
            "review_age_seconds": round(self.review_age_seconds, 1),
            "no_fields_found": self.no_fields,
            "unreadable": self.unreadable,
            "recent_failures": [stamp(entry) for entry in self.recent_failures],
            "failure_reasons": self.failure_reasons,
        }


def failure_reason(error: str | None) -> str:
    """The kind of a stored failure, for counting: the text before the first ': ' (``corrupt
    JPEG file: <libjpeg's words>`` -> ``corrupt JPEG file``), or all of it."""
    text = (error or "unknown error").strip()
    return text.split(": ", 1)[0] if ": " in text else text


def status_summary(
    store: Store, *, window_minutes: int = 60, recent_failures: int = 5
) -> StatusSummary:
    now = utcnow()
    window_start = now - timedelta(minutes=window_minutes)
    processed = (DocumentStatus.DONE.value, DocumentStatus.FAILED.value)
    summary = StatusSummary(window_minutes=window_minutes)
    with store.session(write=False) as session:
        by_status = dict(
            session.execute(select(Document.status, func.count()).group_by(Document.status)).all()
        )
        summary.counts = {status.value: by_status.get(status.value, 0) for status in DocumentStatus}
        summary.results = session.scalar(select(func.count()).select_from(Result)) or 0
        last = session.execute(
            select(Document.path, Document.status, Document.finished_at)
            .where(Document.status.in_(processed), Document.finished_at.is_not(None))
            .order_by(Document.finished_at.desc())
            .limit(1)
        ).first()
        if last is not None:
            summary.last_processed = dict(last._mapping)
        oldest = session.execute(
            select(Document.path, Document.received_at)
            .where(Document.status == DocumentStatus.PENDING.value)
            .order_by(Document.received_at)
            .limit(1)
        ).first()
        if oldest is not None:
            age = (now - oldest.received_at).total_seconds()
            summary.oldest_pending = {**oldest._mapping, "age_seconds": round(age, 1)}
        summary.files_last_window = session.scalar(
            select(func.count())
            .select_from(Document)
            .where(Document.status.in_(processed), Document.finished_at >= window_start)
        ) or 0  # fmt: skip
        summary.no_fields = session.scalar(
            select(func.count())
            .select_from(Document)
            .where(
                Document.status == DocumentStatus.DONE.value,
                cast(Document.notes, Text).like('%"no fields found"%'),
            )
        ) or 0  # fmt: skip
        summary.results_last_window = session.scalar(
            select(func.count()).select_from(Result).where(Result.created_at >= window_start)
        ) or 0  # fmt: skip
        summary.review_queue, summary.oldest_review = queue_stats(session)
        _add_failures(session, summary, recent_failures)
    return summary


def _add_failures(session: Session, summary: StatusSummary, recent: int) -> None:
    failed = Document.status == DocumentStatus.FAILED.value
    last = session.execute(
        select(Document.id, Document.path, Document.error, Document.finished_at)
        .where(failed)
        .order_by(Document.finished_at.desc(), Document.id.desc())
        .limit(recent)
    ).all()
    summary.recent_failures = [dict(row._mapping) for row in last]
    reasons: dict[str, int] = {}
    by_error = select(Document.error, func.count()).where(failed).group_by(Document.error)
    for error, count in session.execute(by_error):
        reason = failure_reason(error)
        reasons[reason] = reasons.get(reason, 0) + count
    summary.failure_reasons = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


# -- one document (`ocrd show`) --------------------------------------------------------------------

SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


def find_documents(
    session: Session,
    *,
    document_id: int | None = None,
    sha256: str | None = None,
    path: str | None = None,
) -> list[Document]:
    """Documents by id, by content (sha256) or by file (the full path it has now, a path
    ending in ``path``, or its original name); the most recently received first."""
    query = select(Document)
    if document_id is not None:
        query = query.where(Document.id == document_id)
    elif sha256 is not None:
        query = query.where(Document.sha256 == sha256.lower())
    elif path is not None:
        tail = "%/" + like_literal(path)
        query = query.where(
            or_(
                Document.path == path,
                Document.path.like(tail, escape="\\"),
                Document.original_name == path,
            )
        )
    else:
        raise ValueError("give a document id, a sha256 or a path")
    return list(session.scalars(query.order_by(Document.received_at.desc(), Document.id.desc())))


def duplicates_of(session: Session, document_id: int) -> list[Document]:
    return list(
        session.scalars(
            select(Document).where(Document.duplicate_of == document_id).order_by(Document.id)
        )
    )


def reading_order(results: list[Result]) -> list[Result]:
    """Fields page by page, top to bottom, and left to right within a line (fields whose
    vertical centre lies within the first field of the line)."""
    ordered: list[Result] = []
    by_centre = sorted(results, key=lambda r: (r.page, r.y + r.h / 2, r.x))
    line: list[Result] = []
    for result in by_centre:
        first = line[0] if line else None
        if first is not None and (
            first.page != result.page or result.y + result.h / 2 > first.y + first.h
        ):
            ordered.extend(sorted(line, key=lambda r: r.x))
            line = []
        line.append(result)
    ordered.extend(sorted(line, key=lambda r: r.x))
    return ordered
