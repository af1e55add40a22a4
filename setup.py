"""Packaging hook (everything else is in pyproject.toml).

The Alembic environment lives at the top level in ``migrations/`` (where developers and the
Alembic CLI expect it). A wheel must carry it too, so the build step copies it into the
package as ``ocrd/store/migrations/``; ``ocrd.store.engine.migrations_dir()`` looks there
first and falls back to ``<repo>/migrations`` for source checkouts and editable installs.
A plain copy (no symlink) keeps wheels and sdists portable.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithMigrations(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # editable installs read migrations/ from the source tree
        shutil.copytree(
            HERE / "migrations",
            Path(self.build_lib) / "ocrd" / "store" / "migrations",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )


setup(cmdclass={"build_py": BuildPyWithMigrations})
