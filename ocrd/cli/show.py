"""`ocrd show FILE|ID|SHA256`: one document's record and what was read from it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from ocrd.cli.app import ConfigOption, DbOption, OcrdError, app, cli_settings
from ocrd.cli.store import _console, _open

NOT_FOUND_EXIT = 1


@dataclass
class DocumentView:
    """What `ocrd show` prints: the document, where its content was read, and its fields."""

    document: Any  # ocrd.store.Document
    original: Any | None  # the document a duplicate repeats
    duplicates: list[Any]  # later drops of the same content
    fields: list[Any]  # ocrd.store.Result, in reading order (the original's, for a duplicate)
    others: list[Any] = field(default_factory=list)  # further documents the key matched

    def as_dict(self) -> dict[str, object]:
        from ocrd.store.queries import format_time

        doc = self.document
        return {
            "id": doc.id,
            "status": doc.status,
            "path": doc.path,
            "original_name": doc.original_name,
            "sha256": doc.sha256,
            "size": doc.size,
            "media_type": doc.media_type,
            "pages": doc.pages,
            "attempts": doc.attempts,
            "received_at": format_time(doc.received_at) or None,
            "started_at": format_time(doc.started_at) or None,
            "finished_at": format_time(doc.finished_at) or None,
            "error": doc.error,
            "notes": list(doc.notes or []),
            "duplicate_of": _ref(self.original) if doc.duplicate_of is not None else None,
            "duplicates": [_ref(d) for d in self.duplicates],
            "fields_from": self.fields[0].document_id if self.fields else None,
            "fields": [_field_dict(r) for r in self.fields],
            "other_matches": [_ref(d) for d in self.others],
        }


def _ref(document: Any | None) -> dict[str, object] | None:
    return None if document is None else {"id": document.id, "path": document.path}


def _field_dict(result: Any) -> dict[str, object]:
    return {
        "page": result.page,
        "box": [result.x, result.y, result.w, result.h],
        "text": result.text,
        "confidence": round(result.confidence, 5),
        "kind": result.kind,
        "model": result.model,
        "needs_review": bool(result.needs_review),
        "review_reason": result.review_reason,
        "template": result.template,
        "field": result.field,
        "digits": result.digits,
    }


def _matches(session: Any, key: str) -> list[Any]:
    """An existing file (by its content, preferring the row recorded at that path), a
    document id, a sha256, or a path / file name as recorded."""
    from ocrd.store import documents
    from ocrd.store.queries import SHA256_HEX, find_documents

    given = Path(key)
    if given.is_file():
        digest = documents.digest_file(given)
        found = find_documents(session, sha256=digest.sha256)
        here = str(given.resolve())
        return sorted(found, key=lambda d: d.path != here)  # stable: the newest next
    if key.isdigit():
        return find_documents(session, document_id=int(key))
    if SHA256_HEX.match(key):
        return find_documents(session, sha256=key)
    return find_documents(session, path=key)


def load_view(store: Any, key: str) -> DocumentView | None:
    from ocrd.store import Document
    from ocrd.store.queries import duplicates_of, reading_order

    with store.session(write=False) as session:
        found = _matches(session, key)
        if not found:
            return None
        document, others = found[0], found[1:]
        original = session.get(Document, document.duplicate_of) if document.duplicate_of else None
        source = original if original is not None else document
        view = DocumentView(
            document=document,
            original=original,
            duplicates=duplicates_of(session, document.id),
            fields=reading_order(list(source.results)),
            others=others,
        )
        session.expunge_all()  # plain objects from here on: printed after the session closes
    return view


def _print_view(view: DocumentView) -> None:
    from ocrd.store.queries import format_time

    console = _console()
    doc = view.document

    def line(label: str, value: object) -> None:
        if value not in (None, "", []):
            console.print(f"{label:<13}{value}", markup=False, highlight=False)

    line("document", f"#{doc.id}  {doc.status}")
    line("path", doc.path)
    if Path(doc.path).name != doc.original_name:
        line("received as", doc.original_name)
    kind = ", ".join(str(v) for v in (doc.media_type, f"{doc.size:,} bytes") if v)
    pages = f", {doc.pages} page{'s' if doc.pages != 1 else ''}" if doc.pages else ""
    line("content", f"{kind}{pages}")
    line("sha256", doc.sha256)
    line("received", format_time(doc.received_at))
    line("started", format_time(doc.started_at))
    line("finished", format_time(doc.finished_at))
    line("attempts", doc.attempts or None)
    if doc.duplicate_of is not None:
        where = view.original.path if view.original is not None else "(no longer recorded)"
        line("duplicate of", f"#{doc.duplicate_of}  {where}")
    for dup in view.duplicates:
        line("duplicate", f"#{dup.id}  {dup.path}")
    line("error", doc.error)
    for note in doc.notes or []:
        line("note", note)
    _print_fields(console, view)
    if view.others:
        also = ", ".join(f"#{d.id} {Path(d.path).name}" for d in view.others[:10])
        more = f" and {len(view.others) - 10} more" if len(view.others) > 10 else ""
        console.print(f"also matches: {also}{more} (ocrd show ID for one of them)",
                      markup=False, highlight=False)  # fmt: skip


def _print_fields(console: Any, view: DocumentView) -> None:
    if not view.fields:
        if view.document.status == "done":
            console.print("fields       none found", highlight=False)
        return
    source = view.fields[0].document_id
    title = f"{len(view.fields)} field(s) in reading order"
    if source != view.document.id:
        title += f", read from the original #{source}"
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, title=title,
                  title_justify="left")  # fmt: skip
    for name in ("page", "text", "conf", "kind", "box", "field", "review"):
        table.add_column(name, overflow="fold")
    for result in view.fields:
        review = (result.review_reason or "yes") if result.needs_review else ""
        table.add_row(str(result.page), result.text, f"{result.confidence:.3f}", result.kind,
                      f"{result.x},{result.y} {result.w}x{result.h}", result.field or "",
                      review)  # fmt: skip
    console.print(table)


@app.command()
def show(
    key: Annotated[
        str,
        typer.Argument(
            metavar="FILE|ID|SHA256",
            help="A file (found by its content), a document id, a sha256, or a path or file "
            "name as recorded (processed files keep their original name).",
            show_default=False,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Show one document: its status, dates, pages, duplicate or original, error or notes,
    and the fields read from it in reading order.

    A duplicate shows its original and the original's fields. When the key matches several
    documents the most recent is shown and the others are listed. Exit status 1 when nothing
    matches.
    """
    store = _open(cli_settings(config, database_url=db), write=False)
    try:
        view = load_view(store, key)
    except OSError as exc:
        raise OcrdError(f"cannot read {key}: {exc.strerror or exc}") from None
    finally:
        store.dispose()
    if view is None:
        typer.echo(f"ocrd: no document matches {key}", err=True)
        raise typer.Exit(NOT_FOUND_EXIT)
    if as_json:
        typer.echo(json.dumps(view.as_dict(), ensure_ascii=False))
    else:
        _print_view(view)
