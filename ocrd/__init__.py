"""ocrd: batch OCR daemon for folders of scanned forms.

Pipeline stages, data flowing one way:
    intake (watch, settle, claim) -> vision (load, deskew, find fields, normalise)
    -> recognition (models, batching) -> store (schema, queries, export) -> cli / service
"""

__version__ = "0.1.0"
