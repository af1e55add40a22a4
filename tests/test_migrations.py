"""The Alembic migrations produce exactly the ORM schema, on SQLite and PostgreSQL, and
concurrent upgrades never race."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from ocrd.store import Base, SchemaOutdatedError, open_store
from ocrd.store.engine import alembic_head, create_store_engine, current_revision, head_revision

REPO_ROOT = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def test_upgrade_head_matches_models(db_url: str) -> None:
    store = open_store(db_url)
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
    assert store.current_revision() == head_revision()
    store.dispose()


def test_head_constant_is_alembics_head() -> None:
    # ocrd compares against a constant (no Alembic import at start-up): a new migration
    # must move it.
    assert head_revision() == alembic_head()


def test_revision_query_reads_what_alembic_reads(db_url: str) -> None:
    from alembic import command

    from ocrd.store.engine import _alembic_config

    engine = create_store_engine(db_url)
    for target in ("0001", "0002", "head"):
        with engine.connect() as connection:
            command.upgrade(_alembic_config(connection), target)
            connection.commit()
        with engine.connect() as connection:
            ours = current_revision(connection)
            assert ours == MigrationContext.configure(connection).get_current_revision()
            assert ours == (head_revision() if target == "head" else target)
    engine.dispose()


def test_revision_of_an_empty_database_is_none(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with engine.connect() as connection:
        assert current_revision(connection) is None
    engine.dispose()


def test_canonical_sha256_index_is_partial_and_unique(db_url: str) -> None:
    store = open_store(db_url)
    indexes = {ix["name"]: ix for ix in inspect(store.engine).get_indexes("documents")}
    canonical = indexes["uq_documents_sha256_canonical"]
    assert canonical["unique"]
    assert canonical["column_names"] == ["sha256"]
    where = canonical["dialect_options"][f"{store.dialect}_where"]
    assert "duplicate" in str(where) and "status" in str(where)
    store.dispose()


def test_read_only_open_refuses_unmigrated_database(db_url: str) -> None:
    engine = create_store_engine(db_url)
    with engine.begin() as connection:  # the database exists but has no tables
        connection.exec_driver_sql("CREATE TABLE unrelated (id INTEGER)")
    engine.dispose()
    with pytest.raises(SchemaOutdatedError, match="ocrd db upgrade"):
        open_store(db_url, upgrade=False)
    open_store(db_url).dispose()  # upgrading fixes it
    open_store(db_url, upgrade=False).dispose()


def test_processes_starting_together_migrate_once(db_url: str) -> None:
    script = (
        "import sys; from ocrd.store import open_store; "
        "s = open_store(sys.argv[1]); print(s.current_revision())"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert out.strip() == head_revision()
    engine = create_store_engine(db_url)
    with engine.connect() as connection:
        versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    engine.dispose()
    assert versions == [(head_revision(),)]


def test_non_editable_install_ships_the_migrations(tmp_path: Path) -> None:
    """A regular (wheel) install has no source tree beside it: `ocrd db upgrade` must still
    find the Alembic environment, copied into the package by setup.py."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    for folder in ("ocrd", "migrations"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=IGNORED)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert (site / "ocrd" / "store" / "migrations" / "env.py").is_file()
    shutil.rmtree(source)  # nothing may be read from the source tree any more
    script = (
        "import ocrd, sys; from ocrd.store import open_store; "
        "print(ocrd.__file__); print(open_store(sys.argv[1]).current_revision())"
    )
    url = f"sqlite:///{tmp_path / 'wheel.db'}"
    ran = subprocess.run(
        [sys.executable, "-c", script, url],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    module_file, revision = ran.stdout.split()
    assert module_file.startswith(str(site)) and revision == head_revision()


def test_database_from_a_newer_ocrd_is_refused(db_url: str) -> None:
    open_store(db_url).dispose()
    engine = create_store_engine(db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    engine.dispose()
    for upgrade in (True, False):
        with pytest.raises(SchemaOutdatedError, match="9999_future.*newer ocrd"):
            open_store(db_url, upgrade=upgrade)
