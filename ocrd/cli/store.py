"""Store commands: process, results, status, config, db upgrade / db current."""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ocrd.cli.app import ConfigOption, DbOption, OcrdError, app, cli_settings
from ocrd.config import SETTING_NAMES, Settings, settings_as_dict
from ocrd.types import DocumentReading

if TYPE_CHECKING:
    from sqlalchemy import Row  # imported lazily: sqlalchemy costs ~0.3 s of every command

TABLE_ROWS = 50
STATUS_UNREADABLE_SHOWN = 10
FILE_NAME_ROOM = 28
SAVE_GROUP = 16  # readings `ocrd process` commits in one transaction at most
OUTPUT_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json"}

db_app = typer.Typer(help="Database schema: apply or show migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


class Kind(StrEnum):
    handwritten = "handwritten"
    printed = "printed"
    unknown = "unknown"


class Status(StrEnum):
    pending = "pending"
    processing = "processing"
    done = "done"
    failed = "failed"
    duplicate = "duplicate"


def _console(file: TextIO | None = None) -> Console:
    """Rich output; when not writing to a terminal, never wrap cells (keeps lines greppable)."""
    file = file or sys.stdout
    return Console(file=file, width=None if file.isatty() else 1000)


def _open(settings: Settings, *, write: bool):  # noqa: ANN202 (ocrd.store.Store)
    from ocrd.store import open_store

    return open_store(settings.database_url, upgrade=write)


# -- process ------------------------------------------------------------------------------------


def _ignored(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def collect_files(paths: Iterable[Path], *, recursive: bool, ignore: list[str]) -> list[Path]:
    """Files named on the command line, plus the files in named folders (sorted; ignore
    patterns apply to names found in folders, never to files named explicitly)."""
    found: dict[Path, None] = {}
    for given in paths:
        if not given.exists():
            raise OcrdError(f"{given}: no such file or directory")
        if not given.is_dir():  # a file, or a FIFO/device named on purpose: fails with why
            found[given.resolve()] = None
            continue
        for root, dirs, files in os.walk(given):
            dirs[:] = sorted(d for d in dirs if recursive and not _ignored(d, ignore))
            for name in sorted(files):
                if not _ignored(name, ignore):
                    found[(Path(root) / name).resolve()] = None
    return list(found)


@dataclass
class ProcessTally:
    done: int = 0
    duplicates: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    results: int = 0

    def summary(self) -> str:
        total = self.done + self.duplicates + len(self.failed)
        return (
            f"{total} file{'s' if total != 1 else ''}: {self.done} done ({self.results} results), "
            f"{self.duplicates} duplicate, {len(self.failed)} failed"
        )


class FileProcessor:
    """What `ocrd process` does: registers each file, reads it through the pipeline engine
    (`ocrd.engine`, the one the daemon runs) and stores its outcome, file after file in the
    order given while a bounded window of files is read in parallel."""

    def __init__(self, store, settings: Settings) -> None:  # noqa: ANN001 (ocrd.store.Store)
        self.store = store
        self.settings = settings
        self._engine = None
        self._started: set[int] = set()  # registered as processing, outcome not stored yet

    def engine(self):  # noqa: ANN201 (ocrd.engine.Engine)
        """The models and vision workers, started once and only when a file really needs
        reading; a broken model install stops the command (exit 2) instead of failing every
        file."""
        if self._engine is None:
            from ocrd.engine import Engine
            from ocrd.recognition import load_recognizer

            try:
                recognizer = load_recognizer()
            except Exception as exc:
                raise OcrdError(f"cannot load the recognition models: {exc}") from None
            self._engine = Engine(recognizer, self.settings)
            self._engine.templates = self._templates()
        return self._engine

    def _templates(self):  # noqa: ANN202 (ocrd.templates.TemplateSet)
        """The form templates in templates_dir; a broken one stops the command (exit 2)."""
        from ocrd.templates import TemplateError, load_templates

        try:
            return load_templates(self.settings.templates_dir)
        except TemplateError as exc:
            raise OcrdError(str(exc)) from None

    def run(self, files: Iterable[Path]) -> Iterator[tuple[Path, str, int, str]]:
        """(path, outcome: done | duplicate | failed, result count, failure reason) per file,
        in the order given, each yielded once its outcome is committed."""
        from ocrd.engine import InOrder

        window = 4 * max(1, self.settings.workers)
        unsaved: list[tuple[Path, int, DocumentReading]] = []  # read, not committed yet
        try:
            with self.store.kept_open():  # no WAL checkpoint at each commit (Store doc)
                ordered = InOrder(self._prepared(files), lambda p: self.engine().submit(p), window)
                for (path, doc_id, early), future in ordered:
                    outcome = early if future is None else self._reading(doc_id, future)
                    if not isinstance(outcome, DocumentReading):  # committed already
                        yield from self._save(unsaved)  # the readings before it go first
                        yield (path, *outcome)
                        continue
                    unsaved.append((path, doc_id, outcome))
                    # Readings are committed in groups while more are ready (a transaction
                    # costs the main thread ~2 ms), never held while the next one is awaited.
                    if len(unsaved) >= SAVE_GROUP or not ordered.next_ready():
                        yield from self._save(unsaved)
        except (KeyboardInterrupt, OcrdError):
            from ocrd.store import documents

            self._save(unsaved)  # read in full: kept
            with self.store.session() as session:  # not these files' fault: read them next time
                for doc_id in self._started:
                    documents.release(session, doc_id)
            raise
        finally:
            if self._engine is not None:
                self._engine.close()

    def _save(
        self, unsaved: list[tuple[Path, int, DocumentReading]]
    ) -> list[tuple[Path, str, int, str]]:
        """Commit the readings in one transaction (emptying `unsaved`); their outcomes."""
        from ocrd.store import documents

        if not unsaved:
            return []
        with self.store.session() as session:
            documents.finish_many(session, [(doc_id, reading) for _p, doc_id, reading in unsaved])
        self._started.difference_update(doc_id for _p, doc_id, _r in unsaved)
        saved = [(path, "done", len(reading.fields), "") for path, _id, reading in unsaved]
        unsaved.clear()
        return saved

    def _prepared(self, files: Iterable[Path]) -> Iterator[tuple[tuple, Path | None]]:
        """Register each file; those to read come with their path, the rest with an outcome."""
        from ocrd.intake import is_utf8, utf8_name
        from ocrd.store import Document, DocumentStatus, documents
        from ocrd.types import BadInputError
        from ocrd.vision import sniff_media_type

        reprocess = self.settings.duplicates == "reprocess"
        for path in files:
            try:
                digest = documents.digest_file(path)
            except OSError as exc:
                yield (path, 0, ("failed", 0, f"cannot read file: {exc.strerror or exc}")), None
                continue
            note = None
            # A name that is not UTF-8 is recorded with its bad bytes as %XX (the store holds
            # text).
            recorded = path if is_utf8(path) else Path(utf8_name(str(path)))
            with self.store.session() as session:
                document = documents.register(session, recorded, digest, reprocess=reprocess)
                if document.status == DocumentStatus.DUPLICATE:
                    original = session.get(Document, document.duplicate_of or -1)
                    where = f"#{original.id} {original.path}" if original else "(original gone)"
                    note = f"document #{document.id}, same content as {where}: not read again"
                else:  # started in the same transaction: no other reader sees it pending
                    documents.start(session, document.id, worker=self.settings.worker_id)
            if note is not None:  # yielded outside the transaction, which must not stay open
                yield (path, document.id, ("duplicate", 0, note)), None
                continue
            self._started.add(document.id)
            try:
                sniff_media_type(path)  # cheap: not-an-image files fail without loading models
            except BadInputError as exc:
                yield (path, document.id, self._failed(document.id, str(exc) or "bad input")), None
                continue
            yield (path, document.id, None), path

    def _reading(self, doc_id: int, future):  # noqa: ANN001, ANN202 (Future; reading | outcome)
        """The file's reading, or its failed outcome (stored) when it could not be read."""
        from ocrd.types import BadInputError

        try:
            return future.result()
        except BadInputError as exc:
            return self._failed(doc_id, str(exc) or "bad input")
        except Exception as exc:  # one broken file never stops the batch
            return self._failed(doc_id, f"{type(exc).__name__}: {exc}")

    def _failed(self, doc_id: int, reason: str) -> tuple[str, int, str]:
        from ocrd.store import documents

        with self.store.session() as session:
            documents.fail(session, doc_id, reason)
        self._started.discard(doc_id)
        return "failed", 0, reason


class _Reporter:
    """Per-file progress and failure lines on stderr; a live progress bar on a terminal."""

    def __init__(self, progress=None, task=None) -> None:  # noqa: ANN001 (rich objects)
        self._progress, self._task = progress, task

    def reading(self, name: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=name[-40:])

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1)

    def failed(self, path: Path, reason: str) -> None:
        from ocrd.logsafe import printable

        self.note(f"ocrd: failed: {printable(path)}: {reason}")

    def note(self, line: str) -> None:
        if self._progress is not None:  # print above the live bar, not through it
            self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            typer.echo(line, err=True)


@contextmanager
def _reporter(total: int) -> Iterator[_Reporter]:
    if not sys.stderr.isatty():
        yield _Reporter()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield _Reporter(progress, progress.add_task("reading", total=total))


@app.command()
def process(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to read.")],
    reprocess: Annotated[
        bool | None,
        typer.Option(
            "--reprocess/--skip-duplicates",
            help="Read content that was already read again, replacing its results "
            "(setting: duplicates).",
            show_default=False,
        ),
    ] = None,
    recursive: Annotated[
        bool | None,
        typer.Option(
            "--recursive/--no-recursive",
            help="Descend into sub-folders (setting: recursive).",
            show_default=False,
        ),
    ] = None,
    input_kind: Annotated[
        str | None,
        typer.Option(
            "--input-kind",
            help="What the files hold: auto | page | field | digit (setting: input_kind; "
            "default auto, decided from each image's content).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Read files and folders now (synchronously) and store the results.

    Exit status: 0 when every file was read (or was a duplicate), 1 when some failed (each
    failure is named on stderr with its reason), 2 for bad arguments.
    """
    duplicates = None if reprocess is None else ("reprocess" if reprocess else "skip")
    settings = cli_settings(
        config, database_url=db, recursive=recursive, duplicates=duplicates, input_kind=input_kind
    )
    files = collect_files(paths, recursive=settings.recursive, ignore=settings.ignore)
    if files:
        from ocrd.engine import start_vision_server

        start_vision_server()  # its imports overlap opening the store and registering files
    store = _open(settings, write=True)
    processor = FileProcessor(store, settings)
    tally = ProcessTally()
    with _reporter(len(files)) as report:
        for path, outcome, count, reason in processor.run(files):
            report.reading(path.name)
            if outcome == "done":
                tally.done += 1
                tally.results += count
            elif outcome == "duplicate":
                tally.duplicates += 1
                report.note(f"duplicate: {path}: {reason}")
            else:
                tally.failed.append((path, reason))
                report.failed(path, reason)
            report.advance()
    store.dispose()
    typer.echo(tally.summary())
    if tally.failed:
        raise typer.Exit(1)


# -- results -------------------------------------------------------------------------------------


def _parse_time_option(name: str, value: str | None):  # noqa: ANN202 (datetime | None)
    from ocrd.store.queries import parse_when

    if value is None:
        return None
    try:
        return parse_when(value)
    except ValueError as exc:
        raise OcrdError(f"{name}: {exc}") from None


@contextmanager
def _output(output: Path | None) -> Iterator[TextIO]:
    if output is None:
        yield sys.stdout
        return
    try:
        handle = open(output, "w", newline="", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise OcrdError(f"cannot write {output}: {exc.strerror}") from None
    with handle:
        yield handle


def _output_format(as_csv: bool, as_json: bool, output: Path | None) -> str:
    """csv | json | table: the flag, else what the --output name says (.csv, .json, .jsonl),
    else a table. A flag that contradicts the name is refused before anything is written."""
    if as_csv and as_json:
        raise OcrdError("choose one of --csv and --json")
    flagged = "csv" if as_csv else "json" if as_json else None
    implied = OUTPUT_FORMATS.get(output.suffix.lower()) if output is not None else None
    if flagged and implied and flagged != implied:
        raise OcrdError(
            f"--{flagged} does not match the name {output.name} ({implied}): "  # type: ignore[union-attr]
            f"drop the flag or name the file .{flagged}"
        )
    return flagged or implied or "table"


def _short_time(value) -> str:  # noqa: ANN001 (datetime | None)
    """UTC to the second, for the table (exports keep ISO 8601 with the offset)."""
    from ocrd.store.queries import format_time

    return format_time(value).replace("T", " ").removesuffix("+00:00")


def duplicate_note(row: Row) -> str:
    """``duplicate of form.png #5``: where a duplicate's content was read."""
    if row.duplicate_of is None:
        return "duplicate (original gone)" if row.status == "duplicate" else ""
    name = Path(row.duplicate_of_path).name if row.duplicate_of_path else "?"
    return f"duplicate of {name} #{row.duplicate_of}"


def _write_table(rows: Iterable[Row], out: TextIO, matching: int) -> None:
    """A table of ``rows`` that fits the terminal (file names, not paths); ``matching`` is
    how many rows match in all."""
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("file", overflow="fold", ratio=3)
    table.add_column("page", justify="right")
    table.add_column("box", overflow="fold", ratio=2)
    table.add_column("text", overflow="fold", ratio=3)
    table.add_column("conf", justify="right")
    table.add_column("kind", overflow="fold", ratio=1)
    table.add_column("processed (UTC)", ratio=2)
    shown = review = longest_name = 0
    for row in rows:
        shown += 1
        name = Path(row.path).name
        longest_name = max(longest_name, len(name))
        if row.status == "duplicate":  # --path on a duplicate: its original's results
            name = f"{name} ({duplicate_note(row)})"
        box_cell = "" if row.x is None else f"{row.x},{row.y} {row.w}x{row.h}"
        confidence = "" if row.confidence is None else f"{row.confidence:.3f}"
        if row.needs_review:
            confidence += "*"
            review += 1
        text = row.text
        if row.result_id is None:  # a document without results (listed with --status)
            why = f"{row.status}: {row.error}" if row.error else duplicate_note(row) or row.status
            text = f"({why})"
        table.add_row(name, str(row.page or ""), box_cell, text, confidence, row.kind or "",
                      _short_time(row.processed_at))  # fmt: skip
    console = _console(out)
    # a whole file name of up to 28 characters before anything else gets room
    table.columns[0].min_width = min(longest_name, FILE_NAME_ROOM)
    if shown:
        console.print(table)
    if review:
        console.print("* needs review", highlight=False)
    if matching > shown:
        console.print(
            f"... {matching - shown} more rows not shown (--limit N, or --csv / --json for all)",
            highlight=False,
        )
    elif not shown:
        console.print("no results match")


@app.command()
def results(
    since: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="Processed at or after: today, yesterday, 2026-01-31, "
            "2026-01-31T08:00 (local), or a span back from now: 30m, 2h, 7d, 1w.",
        ),
    ] = None,  # fmt: skip
    until: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="Processed before (same forms as --since)."),
    ] = None,
    path: Annotated[
        str | None,
        typer.Option(
            "--path",
            metavar="GLOB",
            help="Glob (* and ?) on the file's path or original name. A duplicate matched "
            "this way lists its original's results, marked with the original.",
        ),
    ] = None,
    min_confidence: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Only results at least this sure.")
    ] = None,
    kind: Annotated[Kind | None, typer.Option(help="Only this kind of field.")] = None,
    status: Annotated[
        Status | None,
        typer.Option(help="Only documents in this state (also lists those without results)."),
    ] = None,
    needs_review: Annotated[
        bool, typer.Option("--needs-review", help="Only the fields waiting for review.")
    ] = False,
    final: Annotated[
        bool,
        typer.Option(
            "--final", help="text is the reviewed value where there is one (empty if illegible)."
        ),
    ] = False,
    oldest_first: Annotated[
        bool, typer.Option("--oldest-first", help="Oldest documents first (default: newest).")
    ] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a stable header.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one per result.")] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write to FILE instead of stdout; without --csv or --json the format follows "
            "its extension (.csv, .json, .jsonl), else a table.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help=f"At most N rows (the table shows {TABLE_ROWS} by default)."),
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="Only fields of pages that matched this form template.")
    ] = None,
    wide: Annotated[
        bool,
        typer.Option("--wide", help="With --template: one row per document, one column per field."),
    ] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """List or export stored results, newest documents first, streamed in constant memory.

    CSV columns: path,page,x,y,w,h,text,confidence,kind,model,processed_at,sha256, then
    document_id,result_id,status,original_name,error,digits (JSON per-digit details),
    duplicate_of,duplicate_of_path,needs_review,review_reason, review_status (accepted,
    corrected, illegible or empty), reviewed_text, template,field. With --template NAME
    --wide: path,page,processed_at,sha256,document_id, the template's fields in its order,
    then needs_review (the fields a person should check).
    """
    from ocrd.store.queries import (
        COLUMNS,
        ResultFilter,
        count_results,
        export_json,
        export_values,
        iter_results,
    )

    fmt = _output_format(as_csv, as_json, output)
    filters = ResultFilter(
        since=_parse_time_option("--since", since),
        until=_parse_time_option("--until", until),
        path_glob=path,
        min_confidence=min_confidence,
        kind=kind.value if kind else None,
        status=status.value if status else None,
        limit=limit,
        needs_review=needs_review,
        final=final,
        oldest_first=oldest_first,
        template=template,
    )
    if wide and not template:
        raise OcrdError("--wide needs --template NAME")
    settings = cli_settings(config, database_url=db)
    store = _open(settings, write=False)
    if wide:
        _write_wide(
            store, filters, settings, as_csv=fmt == "csv", as_json=fmt == "json", output=output
        )
        store.dispose()
        return
    table_rows, matching = limit or TABLE_ROWS, 0
    if fmt == "table":  # the table shows the first rows and counts the rest
        matching = count_results(store, dataclasses.replace(filters, limit=None))
        filters = dataclasses.replace(filters, limit=table_rows)
    rows = iter_results(store, filters)
    with _output(output) as out:
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow(export_values(row))
        elif fmt == "json":
            for row in rows:
                out.write(export_json(row) + "\n")
        else:
            _write_table(rows, out, matching)
    store.dispose()


def _write_wide(
    store,  # noqa: ANN001 (ocrd.store.Store)
    filters,  # noqa: ANN001 (ocrd.store.queries.ResultFilter)
    settings: Settings,
    *,
    as_csv: bool,
    as_json: bool,
    output: Path | None,
) -> None:
    """`results --template NAME --wide`: fields in the template file's order (or as stored,
    when the file is gone)."""
    from ocrd.store.queries import iter_wide, template_fields, wide_columns
    from ocrd.templates import TemplateError, load_template

    path = settings.templates_dir / f"{filters.template}.toml"
    try:
        names = load_template(path).field_names() if path.is_file() else []
    except TemplateError:
        names = []
    stored = template_fields(store, filters.template)
    names += [name for name in stored if name not in names]
    columns = wide_columns(names)
    rows = iter_wide(store, filters, names)
    with _output(output) as out:
        if as_json:
            for row in rows:
                out.write(json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False))
                out.write("\n")
            return
        if as_csv:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(rows)
            return
        table = Table(*columns, header_style="bold")
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        _console(out).print(table)


# -- status --------------------------------------------------------------------------------------


def _age(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s"


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Show documents by status, the last processed file, throughput, the oldest pending file,
    and the last failures with their reasons.

    Throughput is files (done or failed) and results per minute over the last hour. Failures
    are counted by reason (the text before the first colon of the stored error).
    """
    from ocrd.intake import unreadable_files
    from ocrd.store.queries import format_time, status_summary

    settings = cli_settings(config, database_url=db)
    store = _open(settings, write=False)
    summary = status_summary(store)
    store.dispose()
    summary.unreadable = unreadable_files(settings.inbox, recursive=settings.recursive)
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
        return
    console = _console()
    table = Table("status", "documents", header_style="bold")
    for name, count in summary.counts.items():
        table.add_row(name, str(count))
    table.add_row("[bold]results[/]", str(summary.results))
    console.print(table)
    if summary.no_fields:
        console.print(f"done with no fields found: {summary.no_fields}")
    for entry in summary.unreadable[:STATUS_UNREADABLE_SHOWN]:
        console.print(f"cannot read: {entry['path']} ({entry['reason']})", markup=False)
    if len(summary.unreadable) > STATUS_UNREADABLE_SHOWN:
        console.print(f"cannot read: {len(summary.unreadable)} files in the inbox in all")
    last = summary.last_processed
    console.print(
        "last processed: "
        + (
            f"{last['path']} ({last['status']}, {format_time(last['finished_at'])})"
            if last
            else "none"
        )  # fmt: skip
    )
    console.print(
        f"last {summary.window_minutes} min: {summary.files_per_minute:.2f} files/min, "
        f"{summary.results_per_minute:.2f} results/min"
    )
    oldest = summary.oldest_pending
    console.print(
        "oldest pending: "
        + (f"{oldest['path']} (waiting {_age(oldest['age_seconds'])})" if oldest else "none")
    )
    waiting = summary.review_queue
    console.print(
        f"review queue: {waiting} field{'s' if waiting != 1 else ''}"
        + (f", oldest waiting {_age(summary.review_age_seconds)}" if summary.oldest_review else "")
    )
    _print_failures(console, summary)


def _print_failures(console: Console, summary) -> None:  # noqa: ANN001 (StatusSummary)
    from ocrd.store.queries import format_time

    if not summary.recent_failures:
        console.print("failures: none", highlight=False)
        return
    reasons = ", ".join(f"{count} {reason}" for reason, count in summary.failure_reasons.items())
    console.print(f"failures by reason: {reasons}", markup=False, highlight=False)
    title = f"last {len(summary.recent_failures)} failed"
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, title=title,
                  title_justify="left")  # fmt: skip
    table.add_column("id", justify="right")
    table.add_column("file", overflow="fold", ratio=1)
    table.add_column("reason", overflow="fold", ratio=3)
    table.add_column("failed (UTC)")
    for failure in summary.recent_failures:
        table.add_row(str(failure["id"]), Path(str(failure["path"])).name, str(failure["error"]),
                      format_time(failure["finished_at"]).removesuffix("+00:00"))  # fmt: skip
    console.print(table)
    console.print("(ocrd show ID for one document; ocrd results --status failed for all)",
                  markup=False, highlight=False)  # fmt: skip


# -- config --------------------------------------------------------------------------------------


@app.command("config")
def show_config(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Print the effective settings and where each came from.

    Precedence: flag > OCRD_<NAME> environment variable > TOML config file (--config,
    OCRD_CONFIG, /etc/ocrd/ocrd.toml) > default. Sources: flag, env, file:PATH, default.
    """
    from ocrd.store import mask_url

    settings = cli_settings(config, database_url=db)
    values = settings_as_dict(settings)
    values["database_url"] = mask_url(settings.database_url)
    if as_json:
        payload = {name: {"value": values[name], "source": settings.sources[name]}
                   for name in SETTING_NAMES}  # fmt: skip
        typer.echo(json.dumps(payload))
        return
    table = Table("setting", "value", "source", header_style="bold")
    for name in SETTING_NAMES:
        value = values[name]
        shown = ",".join(value) if isinstance(value, list) else str(value)
        if name == "accept_confidence" and value is None:
            shown = _calibrated_thresholds()
        table.add_row(name, shown, settings.sources[name])
    _console().print(table)


def _calibrated_thresholds() -> str:
    from ocrd.calibration import shipped_calibration

    forms, images = (shipped_calibration().accept_for(layout) for layout in ("free", "field"))
    return f"calibrated: {forms}, field images {images}"


# -- db ------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None, config: ConfigOption = None) -> None:
    """Create or migrate the database schema to the newest revision (safe to run concurrently)."""
    from ocrd.store import mask_url

    store = _open(cli_settings(config, database_url=db), write=True)
    typer.echo(f"{mask_url(store.url)}: at revision {store.current_revision()} (newest)")
    store.dispose()


@db_app.command("current")
def db_current(db: DbOption = None, config: ConfigOption = None) -> None:
    """Show the database's schema revision and the newest one this ocrd knows."""
    from ocrd.store import mask_url
    from ocrd.store.engine import database_revision, head_revision

    settings = cli_settings(config, database_url=db)
    current, head = database_revision(settings.database_url), head_revision()
    state = "up to date" if current == head else "run `ocrd db upgrade`"
    typer.echo(f"{mask_url(settings.database_url)}: revision {current or 'none'}, "
               f"newest {head} ({state})")  # fmt: skip
