"""The result store: SQLAlchemy models, opening/migrating the database, document lifecycle,
and the queries behind ``ocrd results`` and ``ocrd status``.

    store = open_store(url)              # migrates to head under a lock
    with store.session() as session:     # one transaction
        doc = documents.register(session, path, documents.digest_file(path))
"""

from ocrd.store import documents
from ocrd.store.engine import (
    DatabaseUnavailableError,
    SchemaOutdatedError,
    Store,
    StoreError,
    mask_url,
    open_store,
)
from ocrd.store.models import Base, Document, DocumentStatus, Result
from ocrd.store.reviews import Review, ReviewStatus

__all__ = [
    "Base",
    "DatabaseUnavailableError",
    "Document",
    "DocumentStatus",
    "Result",
    "Review",
    "ReviewStatus",
    "SchemaOutdatedError",
    "Store",
    "StoreError",
    "documents",
    "mask_url",
    "open_store",
]
