"""Shared pytest fixtures for every ocrd test module.

Databases
    ``postgres_server`` (session)  A throwaway PostgreSQL server started for the test session:
        ``initdb`` from the newest ``/usr/lib/postgresql/*/bin`` into a temporary directory
        (run as the ``postgres`` user via ``runuser`` when the tests run as root, because
        initdb refuses root), trust auth, listening on 127.0.0.1 on a free port; stopped and
        removed at the end. Tests that use it are skipped (with the reason) when no
        PostgreSQL binaries are installed. ``postgres_server.create_database()`` returns the
        URL of a new empty database; ``postgres_server.url(name)`` builds URLs.
    ``postgres_url``  A fresh, empty (unmigrated) database on that server for one test,
        dropped afterwards, e.g. ``postgresql+psycopg://postgres@127.0.0.1:PORT/t_1a2b3c``.
        Several processes (daemons) may connect to it at once.
    ``sqlite_url``  ``sqlite:///<tmp_path>/ocrd.db`` (file not created yet).
    ``db_url``  Parametrised over both: every test using it runs once on SQLite and once on
        PostgreSQL (marked ``postgres``); the database is empty, not migrated.
    ``store``  ``open_store(db_url)``: a migrated ``ocrd.store.Store`` on each engine.

Other
    ``--run-slow``  runs tests marked ``@pytest.mark.slow`` (skipped by default).
    ``write_png(path, ...)``  writes a small real PNG (module-level helper, also a fixture).
    Every test runs with the ``OCRD_*`` setting variables and ``OCRD_CONFIG`` removed from the
    environment and ``/etc/ocrd/ocrd.toml`` ignored, so a developer's set-up cannot leak in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


# -- options -----------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="also run @pytest.mark.slow tests"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow training check: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    """A test that needs the data sets skips, saying where they go, when the data sets
    folder is absent; with the folder present a missing or broken file still fails."""
    report = yield
    from training.readers import MissingDataError, default_data_dir

    data_dir = default_data_dir()
    missing = call.excinfo is not None and call.excinfo.errisinstance(MissingDataError)
    if missing and not data_dir.is_dir():
        report.outcome = "skipped"
        report.longrepr = (
            str(item.path),
            item.location[1] or 0,
            f"Skipped: data sets not found at {data_dir} (put them at ../shared/data "
            f"or set OCRD_DATA_DIR): {call.excinfo.value}",
        )
    return report


@pytest.fixture(autouse=True)
def _isolated_ocrd_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ocrd import config

    for name in (*config.SETTING_NAMES, "config"):
        monkeypatch.delenv(f"OCRD_{name.upper()}", raising=False)
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "no-system-config.toml")


# -- PostgreSQL --------------------------------------------------------------------------------


def find_postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian layout), if any."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary directory."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.as_root = os.geteuid() == 0
        self.directory = Path(tempfile.mkdtemp(prefix="ocrd-pg-"))
        self.data = self.directory / "data"
        self.port = _free_port()
        if self.as_root:
            shutil.chown(self.directory, user="postgres", group="postgres")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync",
                  "-E", "UTF8", "--locale=C")  # fmt: skip
        self.resume()

    def pause(self) -> None:
        """Stop the server (an outage); `resume()` starts it again on the same port."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.directory / "server.log"), "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(sql)

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    server = PostgresServer(bin_dir)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        log = server.directory / "server.log"
        details = log.read_text() if log.exists() else ""
        server.stop()
        pytest.fail(f"could not start PostgreSQL: {exc.stderr or exc.stdout}{details}")
    deadline = time.monotonic() + 30
    while True:  # pg_ctl -w waits for the socket; make sure TCP answers too
        try:
            server._admin("SELECT 1")
            break
        except Exception:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.2)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ocrd.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(db_url: str):  # noqa: ANN201 (ocrd.store.Store, imported lazily)
    from ocrd.store import open_store

    opened = open_store(db_url)
    yield opened
    opened.dispose()


# -- files ---------------------------------------------------------------------------------------


def write_png(path: Path, *, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    """A small real grayscale PNG; different seeds give different content (and sha256)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode="L").save(path)
    return path


@pytest.fixture(name="write_png")
def write_png_fixture():  # noqa: ANN201
    return write_png


@pytest.fixture(scope="module")
def orand_holdout():
    """The fixed ORAND-CAR-A hold-out (real cheque amounts), as `training.readers` splits it."""
    from training.readers import load_orand_car_a, split_holdout

    return split_holdout(load_orand_car_a())[1]
