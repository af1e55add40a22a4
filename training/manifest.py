"""The shipped models' manifest: what each `.keras` file is, how it was made, its sha256."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ocrd.recognition import file_sha256

MANIFEST_NAME = "manifest.json"

# One hash for training and the load-time check, so they cannot disagree.
sha256_of = file_sha256


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return {"models": {}}
    return json.loads(path.read_text())


def record_model(folder: Path, key: str, model_file: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Add or replace `key` in the folder's manifest, with the file's sha256 and size."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    entry = {
        **entry,
        "file": model_file.name,
        "sha256": sha256_of(model_file),
        "size_bytes": model_file.stat().st_size,
    }
    manifest.setdefault("models", {})[key] = entry
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return entry


def init_note(init: Path | None) -> str | None:
    """What a continued training stage started from: file name and sha256."""
    if init is None:
        return None
    return f"{Path(init).name} sha256 {sha256_of(Path(init))}"
