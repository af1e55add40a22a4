"""`ocrd watch` (the daemon) and `ocrd retry` (failed files back into the inbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ocrd.cli.app import ConfigOption, DbOption, app, cli_settings


@app.command()
def watch(
    inbox: Annotated[
        Path | None,
        typer.Argument(
            help="Folder to watch (default: ./inbox or the configured inbox).", show_default=False
        ),
    ] = None,
    processed: Annotated[
        Path | None,
        typer.Option(
            help="Where done files go (YYYY/MM/DD/ below it) (default: sibling processed/).",
            show_default=False,
        ),
    ] = None,
    failed: Annotated[
        Path | None,
        typer.Option(
            help="Where unreadable files go, with <name>.error.txt (default: sibling failed/).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    polling: Annotated[
        bool | None,
        typer.Option(
            "--polling/--no-polling",
            help="Poll the inbox instead of inotify (NFS/SMB shares).",
            show_default=False,
        ),
    ] = None,
    recursive: Annotated[
        bool | None,
        typer.Option(
            "--recursive/--no-recursive",
            help="Also take files from sub-folders.",
            show_default=False,
        ),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            help="Extra glob pattern to skip (repeatable); hidden, *.part, *.tmp... always are.",
            show_default=False,
        ),
    ] = None,
    settle_seconds: Annotated[
        float | None,
        typer.Option(
            help="A file must be unchanged this long before it is read (default: 1).",
            show_default=False,
        ),
    ] = None,
    rescan_seconds: Annotated[
        float | None,
        typer.Option(help="Full inbox rescan interval (default: 30).", show_default=False),
    ] = None,
    duplicates: Annotated[
        str | None,
        typer.Option(
            help="Content seen before: skip | reprocess (default: skip).", show_default=False
        ),
    ] = None,
    on_done: Annotated[
        str | None,
        typer.Option(help="Done files: move | delete (default: move).", show_default=False),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Vision worker threads (default: min(4, cores)).", show_default=False),
    ] = None,
    max_batch: Annotated[
        int | None,
        typer.Option(help="Most digit crops per model call (default: 256).", show_default=False),
    ] = None,
    max_delay_ms: Annotated[
        int | None,
        typer.Option(help="Longest wait to fill a batch, ms (default: 20).", show_default=False),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics on 127.0.0.1:PORT (0 = off).", show_default=False
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="DEBUG | INFO | WARNING | ERROR (default: INFO).", show_default=False),
    ] = None,
    worker_id: Annotated[
        str | None,
        typer.Option(
            help="Name of this daemon in the store (default: host:pid).", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Watch INBOX and read every file dropped into it, exactly once, until stopped.

    Results go to the database; done files move to processed/YYYY/MM/DD/, unreadable ones
    to failed/ with the reason beside them.

    Every option can also be set as OCRD_<NAME> or in the config file. SIGTERM finishes
    in-flight files and exits; SIGHUP reloads the config.
    """
    from ocrd import service

    overrides: dict[str, object] = {
        "inbox": inbox,
        "processed": processed,
        "failed": failed,
        "database_url": db,
        "polling": polling,
        "recursive": recursive,
        "settle_seconds": settle_seconds,
        "rescan_seconds": rescan_seconds,
        "duplicates": duplicates,
        "on_done": on_done,
        "workers": workers,
        "max_batch": max_batch,
        "max_delay_ms": max_delay_ms,
        "metrics_port": metrics_port,
        "log_level": log_level,
        "worker_id": worker_id,
    }
    settings = cli_settings(config, **overrides)
    if ignore:
        settings.ignore = [*settings.ignore, *ignore]

    def reload() -> object:
        fresh = cli_settings(config, **overrides)
        if ignore:
            fresh.ignore = [*fresh.ignore, *ignore]
        return fresh

    raise typer.Exit(service.run(settings, reload_settings=reload))


@app.command()
def retry(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="File names in the failed folder (default: all of them).", show_default=False
        ),
    ] = None,
    inbox: Annotated[
        Path | None, typer.Option(help="Inbox to put them back into.", show_default=False)
    ] = None,
    failed: Annotated[Path | None, typer.Option(help="Failed folder.", show_default=False)] = None,
    config: ConfigOption = None,
) -> None:
    """Put failed files back into the inbox (their .error.txt is removed) so they are read again."""
    from ocrd.intake import failed_files, retry_failed

    settings = cli_settings(config, inbox=inbox, failed=failed)
    if not settings.inbox.is_dir():
        typer.echo(f"ocrd: error: inbox {settings.inbox} does not exist", err=True)
        raise typer.Exit(2)
    wanted = set(names or [])
    missing = wanted - {p.name for p in failed_files(settings.failed)}
    if missing:
        typer.echo(f"ocrd: error: not in {settings.failed}: {', '.join(sorted(missing))}", err=True)
        raise typer.Exit(2)
    moved = retry_failed(settings.failed, settings.inbox, wanted)
    for path in moved:
        typer.echo(f"retry {path.name}")
    typer.echo(f"{len(moved)} file(s) back in {settings.inbox}")
