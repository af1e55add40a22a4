"""vision commands (placeholder)."""

from ocrd.cli.app import app  # noqa: F401
