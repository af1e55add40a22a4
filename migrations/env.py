"""Alembic environment for the ocrd store.

ocrd runs it programmatically (``ocrd db upgrade`` and every writing command, under a lock),
handing over an open connection in ``config.attributes["connection"]``. Developers can also
use the Alembic CLI: ``alembic -c migrations/alembic.ini revision --autogenerate -m "..."``
(the URL comes from ``-x db=URL`` or the usual ocrd settings).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ocrd.store.models import Base

target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url_for_cli() -> str:
    url = context.get_x_argument(as_dictionary=True).get("db")
    if url:
        return url
    from ocrd.config import load_settings

    return load_settings().database_url


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    from ocrd.store.engine import create_store_engine

    engine = create_store_engine(_url_for_cli())
    with engine.connect() as connection:
        _configure_and_run(connection)
        connection.commit()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url_for_cli(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
