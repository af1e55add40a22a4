"""Opening the database: engine set-up, connectivity and schema checks, migrations under a lock."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DatabaseError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from ocrd.store.urls import DatabaseUrlError, mask_url, parse_database_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "ocrd_write"  # connection execution option: this transaction will write
# Any fixed 64-bit number, the same in every ocrd process: serialises migrations on PostgreSQL.
PG_MIGRATION_LOCK_KEY = 0x6F637264_6D696772  # "ocrdmigr"


class StoreError(Exception):
    """The database cannot be used; the message says why and how to fix it."""


class DatabaseUnavailableError(StoreError):
    pass


class SchemaOutdatedError(StoreError):
    pass


def _first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 (DBAPI types)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_store_engine(url: str | URL) -> Engine:
    try:
        parsed = url if isinstance(url, URL) else parse_database_url(url)
    except DatabaseUrlError as exc:
        raise StoreError(str(exc)) from None
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"unsupported database URL {mask_url(parsed)}: {exc}") from None


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    # A file database gets a fresh connection per checkout (cheap for SQLite) so that no
    # pooled connection outlives a fork or holds the WAL open between commands.
    engine = create_engine(url, poolclass=None if in_memory else NullPool)
    event.listen(engine, "connect", _set_sqlite_pragmas)
    # pysqlite's own transaction handling defers BEGIN; emit it ourselves so that
    # SQLAlchemy's transaction boundaries are SQLite's (needed for correct locking).
    event.listen(engine, "connect", lambda conn, _rec: setattr(conn, "isolation_level", None))
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_begin(connection: Connection) -> None:
    # Writers take the write lock up front (BEGIN IMMEDIATE): a deferred transaction that
    # reads and then writes fails at once with SQLITE_BUSY when another writer got there
    # first, instead of waiting out the busy timeout.
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def migrations_dir() -> Path:
    """The Alembic environment: shipped inside the package for wheel installs (copied there by
    setup.py's build step), or the repository's top-level ``migrations/`` in a source checkout."""
    packaged = Path(__file__).with_name("migrations")
    if (packaged / "env.py").is_file():
        return packaged
    source = Path(__file__).resolve().parents[2] / "migrations"
    if (source / "env.py").is_file():
        return source
    raise StoreError("the Alembic migrations are missing from this installation of ocrd")


def _alembic_config(connection: Connection | None = None):  # noqa: ANN202 (lazy import)
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


# The newest migration in migrations/versions. Checked against Alembic's own reading of that
# folder by tests/test_migrations.py; a constant because importing Alembic and parsing the
# scripts cost every command ~0.45 s of start-up, only to learn that nothing is to be done.
HEAD_REVISION = "0003"


def head_revision() -> str | None:
    """The newest migration this installation of ocrd knows."""
    return HEAD_REVISION


@functools.cache
def alembic_head() -> str | None:
    """The newest migration as Alembic reads it from the migrations folder."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(_alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(connection: Connection) -> str | None:
    """The database's schema revision (None: no ocrd schema), read as Alembic stores it, in
    one query and without importing Alembic."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:  # branches: never written by ocrd's linear history; Alembic decides
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()
    return rows[0] if rows else None


class Store:
    """An open database: an engine, a session factory and the lifecycle helpers' home."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time. Threads of this process that want to write queue
        # here and wake the moment the lock is free; left to SQLite's busy handler they sleep
        # 1-100 ms between tries (the daemon's intake, committer and claimer collide all the
        # time in a burst). Other processes still wait in the busy handler.
        self._write_lock: threading.RLock | None = (
            threading.RLock() if engine.dialect.name == "sqlite" else None
        )

    @property
    def url(self) -> URL:
        return self.engine.url

    @property
    def dialect(self) -> str:
        """The dialect name: sqlite or postgresql."""
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on an exception.

        ``write=False`` for read-only work: on SQLite a write session takes the database's
        write lock when it starts (waiting up to the busy timeout), a read session never does.
        """
        lock = self._write_lock if write else None
        with lock or contextlib.nullcontext(), self._sessions() as session, session.begin():
            session.connection(execution_options={WRITE_OPTION: write})
            yield session

    @contextlib.contextmanager
    def kept_open(self) -> Iterator[None]:
        """Hold one idle connection while a run of transactions goes on (`ocrd process`, the
        daemon). A SQLite file gets a connection per session (NullPool), and closing the last
        connection to a WAL database checkpoints it and syncs the file: ~14 ms a transaction
        on this VM, where a commit with another connection open costs ~1.5 ms. The idle
        connection holds no transaction, so it blocks no writer and no checkpoint."""
        if _sqlite_file(self) is None:
            yield
            return
        with self.engine.connect():
            yield

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return current_revision(connection)

    def is_up_to_date(self) -> bool:
        return self.current_revision() == head_revision()

    def upgrade(self) -> None:
        """``alembic upgrade head`` under a lock, so processes starting together never race."""
        current = self.current_revision()
        if current == head_revision():
            return
        self._refuse_unknown_revision(current)
        from alembic import command

        with self._migration_lock() as connection:
            config = _alembic_config(connection)
            command.upgrade(config, "head")

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[Connection]:
        if self.dialect == "postgresql":
            with self.engine.connect() as connection, _pg_advisory_lock(connection):
                yield connection
                connection.commit()
            return
        with _sqlite_file_lock(self.engine.url), self.engine.connect() as connection:
            yield connection
            connection.commit()

    def check_schema(self) -> None:
        """Raise SchemaOutdatedError unless the database is at the newest migration."""
        current, head = self.current_revision(), head_revision()
        if current == head:
            return
        self._refuse_unknown_revision(current)
        state = "has no ocrd tables" if current is None else f"is at revision {current}"
        raise SchemaOutdatedError(
            f"database {mask_url(self.url)} {state} (newest is {head}); run `ocrd db upgrade`"
        )

    def _refuse_unknown_revision(self, current: str | None) -> None:
        if current is not None and not _known_revision(current):
            raise SchemaOutdatedError(
                f"database {mask_url(self.url)} is at revision {current}, which this version of "
                "ocrd does not know (written by a newer ocrd?); upgrade ocrd"
            )

    def dispose(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def _pg_advisory_lock(connection: Connection) -> Iterator[None]:
    """A session-level advisory lock, held across the migration's own transactions."""
    key = {"key": PG_MIGRATION_LOCK_KEY}
    connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
        connection.commit()


@contextlib.contextmanager
def _sqlite_file_lock(url: URL) -> Iterator[None]:
    """An exclusive flock on ``<database>.lock`` (a separate file: closing any descriptor of
    the database file itself would drop SQLite's own POSIX locks)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_reachable(store: Store) -> None:
    try:
        with store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise DatabaseUnavailableError(
            f"cannot connect to database {mask_url(store.url)}: {_first_line(exc)}"
        ) from None
    except DatabaseError as exc:  # SQLite: "file is not a database" (and other foreign files)
        raise not_a_database(store, exc) from None


def not_a_database(store: Store, exc: BaseException) -> StoreError:
    """The one-line error for a --db that points at something that is not an ocrd database."""
    where = _sqlite_file(store) or mask_url(store.url)
    return StoreError(
        f"{where} is not a usable database ({_first_line(exc)}): point --db / database_url at "
        "an ocrd SQLite file, a new file name, or a postgresql:// URL"
    )


def _sqlite_file(store: Store) -> Path | None:
    database = store.engine.url.database
    if store.dialect != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else Path(database)


def database_revision(url: str) -> str | None:
    """The schema revision of the database at ``url`` (None: no ocrd schema), never creating
    anything."""
    store = Store(create_store_engine(url))
    try:
        sqlite_path = _sqlite_file(store)
        if sqlite_path is not None and not sqlite_path.exists():
            return None
        _check_reachable(store)
        return store.current_revision()
    finally:
        store.dispose()


def open_store(url: str | None = None, *, upgrade: bool = True) -> Store:
    """Open the database at ``url`` (default: the configured ``database_url``).

    ``upgrade=True`` (every command that writes) applies pending migrations under a lock;
    ``upgrade=False`` (read-only commands) raises SchemaOutdatedError instead and never
    creates a SQLite file that does not exist yet.
    """
    if url is None:
        from ocrd.config import load_settings

        url = load_settings().database_url
    store = Store(create_store_engine(url))
    sqlite_path = _sqlite_file(store)
    if sqlite_path is not None:
        if not upgrade and not sqlite_path.exists():
            raise SchemaOutdatedError(
                f"database file {sqlite_path} does not exist; run `ocrd db upgrade` "
                "(or `ocrd process`) to create it"
            )
        if not sqlite_path.parent.is_dir():
            raise DatabaseUnavailableError(
                f"cannot create database {mask_url(store.url)}: "
                f"folder {sqlite_path.parent} does not exist"
            )
    _check_reachable(store)
    try:
        if upgrade:
            store.upgrade()
        else:
            store.check_schema()
    except OperationalError as exc:
        raise DatabaseUnavailableError(
            f"database {mask_url(store.url)} failed: {_first_line(exc)}"
        ) from None
    except DatabaseError as exc:
        raise not_a_database(store, exc) from None
    return store
