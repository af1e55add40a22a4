"""The review page: a small local web application to check and correct uncertain fields.

app.py       routes and handlers (Starlette + Jinja2 templates in templates/, static/)
queries.py   the queue, one field, documents list and one document
images.py    field crops and page images cut from the stored file, cached
security.py  token for non-loopback binds, login cookie, CSRF, reviewer name
server.py    uvicorn, in the foreground (`ocrd review`) or a thread (the daemon)
"""

from ocrd.review.server import ReviewServer, build_app

__all__ = ["ReviewServer", "build_app"]
