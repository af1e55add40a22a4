"""`ocrd review`: serve the review page (queue, documents) on 127.0.0.1."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from ocrd.cli.app import ConfigOption, DbOption, OcrdError, app, cli_settings


@app.command()
def review(
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="Port to listen on (setting: review_port; default 8765).",
            show_default=False,
        ),
    ] = None,  # fmt: skip
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Any address other than loopback needs the "
            "OCRD_REVIEW_TOKEN environment variable (a secret of 16+ characters).",
        ),
    ] = "127.0.0.1",
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Serve the review page: the fields the reader was unsure of, oldest first, to accept,
    correct or mark illegible from the keyboard; and every document with its fields drawn on
    the page. Decisions are stored in the database and exported by `ocrd results`.
    """
    from ocrd.review.security import AccessError
    from ocrd.review.server import DEFAULT_PORT, ReviewServer, build_app
    from ocrd.store import open_store

    settings = cli_settings(config, database_url=db, review_port=port)
    store = open_store(settings.database_url, upgrade=True)
    try:
        application = build_app(store, settings, host=host)
    except AccessError as exc:
        raise OcrdError(str(exc)) from None
    server = ReviewServer(application, host, settings.review_port or DEFAULT_PORT)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s: %(message)s")
    typer.echo(f"review page on {server.url} (Ctrl-C to stop)", err=True)
    server.run()
    store.dispose()
    if not server.server.started:
        raise OcrdError(f"cannot listen on {server.url} (port in use?)")
