"""Start-up checks of `ocrd watch`: folders, store, moves a crash left unrecorded, compute."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from ocrd.config import Settings
from ocrd.intake import ERROR_SUFFIX, candidate_names, processed_folder
from ocrd.service.intake_loop import INTAKE_BATCH
from ocrd.service.outbox import COMMIT_BATCH
from ocrd.store import Document, DocumentStatus, Store, documents, open_store

log = logging.getLogger("ocrd.service")

RECONCILE_LIMIT = 4 * (INTAKE_BATCH + COMMIT_BATCH)


class StartupError(Exception):
    """The daemon cannot start; the message says what to fix."""


# --- start-up checks ----------------------------------------------------------------------------


def _nested(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_folders(settings: Settings, *, create: bool = True) -> None:
    """Inbox must exist; processed/ and failed/ must be folders or creatable; all writable, and
    none may lie inside another (the daemon would read its own output). Nothing is created
    until every check passed; ``create=False`` leaves creating to ``create_folders`` (the
    daemon checks the database first)."""
    inbox = settings.inbox
    if not inbox.is_dir():
        raise StartupError(f"inbox {inbox} does not exist or is not a folder (mkdir -p {inbox})")
    folders = {"inbox": inbox, "processed": settings.processed, "failed": settings.failed}
    for name, folder in folders.items():
        _check_writable(name, folder)
    resolved = {name: folder.resolve() for name, folder in folders.items()}
    names = list(resolved)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            a, b = resolved[first], resolved[second]
            if _nested(a, b) or _nested(b, a):
                raise StartupError(
                    f"{first} ({a}) and {second} ({b}) must be separate folders, "
                    "neither inside the other"
                )
    if create:
        create_folders(settings)


def _check_writable(name: str, folder: Path) -> None:
    """A writable folder, or a missing one whose nearest existing parent lets us create it."""
    if folder.exists():
        if not folder.is_dir():
            raise StartupError(f"{name} {folder} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StartupError(f"{name} folder {folder} is not writable by this user")
        return
    parent = next(p for p in folder.absolute().parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise StartupError(f"cannot create {name} folder {folder}: {parent} is not writable")


def create_folders(settings: Settings) -> None:
    """processed/ and failed/ when missing (after the start-up checks passed)."""
    for name, folder in (("processed", settings.processed), ("failed", settings.failed)):
        if folder.is_dir():
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create {name} folder {folder}: {exc.strerror}") from None
        log.info("created %s folder %s", name, folder)


def open_checked_store(settings: Settings) -> Store:
    """Reachable and migrated (to head, under a lock), or a StartupError saying why not."""
    from ocrd.store import StoreError

    try:
        return open_store(settings.database_url, upgrade=True)
    except StoreError as exc:
        raise StartupError(str(exc)) from None


def reconcile_moves(store: Store, settings: Settings) -> int:
    """After a crash: rows whose outcome is committed and whose file left the inbox, but whose
    new place was not recorded yet. Finds the file in processed/ or failed/ (same name or a
    numbered variant, same content) and records it. Files still in the inbox are left to the
    intake, which completes their move."""
    prefix = str(settings.inbox) + os.sep
    final = [DocumentStatus.FAILED.value]
    if settings.on_done == "move":  # deleted files keep their inbox path for good
        final += [DocumentStatus.DONE.value, DocumentStatus.DUPLICATE.value]
    columns = (Document.id, Document.path, Document.status, Document.sha256, Document.size)
    with store.session() as session:
        rows = session.execute(
            select(*columns, Document.finished_at)
            .where(Document.status.in_(final), Document.path.startswith(prefix, autoescape=True))
            .order_by(Document.finished_at.desc())
            .limit(RECONCILE_LIMIT)  # a crash strands at most one commit group and intake batch
        ).all()
    fixes = []
    for doc_id, path_text, status, sha256, size, finished_at in rows:
        path = Path(path_text)
        if path.exists():
            continue
        reserve = 0
        if status == DocumentStatus.FAILED.value:
            folders, reserve = [settings.failed], len(ERROR_SUFFIX)
        else:
            day = (finished_at or datetime.now(UTC)).astimezone()
            below = path.parent.relative_to(settings.inbox)  # a sub-folder keeps its path
            folders = [
                processed_folder(settings.processed, day + timedelta(days=d)) / below
                for d in (0, 1)
            ]
        found = _find_moved(path.name, sha256, size, folders, reserve)
        if found is not None:
            fixes.append((doc_id, path_text, str(found)))
    if fixes:
        with store.session() as session:
            for doc_id, old, new in fixes:
                session.execute(
                    update(Document)
                    .where(Document.id == doc_id, Document.path == old)
                    .values(path=new)
                    .execution_options(synchronize_session=False)
                )
    return len(fixes)


def _find_moved(
    name: str, sha256: str, size: int, folders: list[Path], reserve: int = 0
) -> Path | None:
    for folder in folders:
        # Taken names have no gaps: stop at the first that does not exist.
        for candidate in candidate_names(name, reserve):
            path = folder / candidate
            try:
                if path.stat().st_size == size and documents.digest_file(path).sha256 == sha256:
                    return path
            except FileNotFoundError:
                break
    return None


# --- compute set-up -----------------------------------------------------------------------------


def configure_compute(workers: int) -> str:
    """GPU when present (memory grown on demand) with batched TensorFlow; on CPU, LiteRT
    (no TensorFlow import at all) while `workers` vision processes read pages in parallel.
    With the Keras runtime on CPU, TF uses every core for one batch. Returns a description
    for the log."""
    from ocrd.recognition import choose_runtime, import_tensorflow

    if choose_runtime() == "litert":
        return f"CPU (LiteRT with XNNPACK, {os.cpu_count()} cores, {workers} vision processes)"
    tf = import_tensorflow()  # quiet import; also lets GPU memory grow on demand
    gpus = tf.config.list_physical_devices("GPU")
    try:
        if not gpus:
            tf.config.threading.set_intra_op_parallelism_threads(os.cpu_count() or 1)
            tf.config.threading.set_inter_op_parallelism_threads(2)
    except RuntimeError:
        log.debug("TensorFlow already initialised; keeping its thread settings")
    if gpus:
        return f"GPU ({', '.join(g.name for g in gpus)})"
    return f"CPU (TensorFlow, {os.cpu_count()} cores, {workers} vision processes)"
