"""The review page's HTTP side on SQLite and PostgreSQL (Starlette's TestClient, real store):
decisions stored and replaced, the token for non-loopback binds, CSRF on every form and
fetch, ids that do not exist, images by id only, the documents list and view."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from ocrd.config import load_settings
from ocrd.review import build_app
from ocrd.review.security import TOKEN_ENV, AccessError
from ocrd.store import Review

from .review_pages import FIELDS, store_failed, store_page

TOKEN = "s3cret-review-token-123"
LOCAL = "http://127.0.0.1"


@pytest.fixture
def page_store(store, tmp_path: Path):  # noqa: ANN001, ANN201
    store.document_id = store_page(store, tmp_path / "processed")
    return store


def client_for(store, monkeypatch: pytest.MonkeyPatch, *, host: str = "127.0.0.1",
               token: str | None = None, base_url: str = LOCAL) -> TestClient:  # fmt: skip  # noqa: ANN001
    if token is None:
        monkeypatch.delenv(TOKEN_ENV, raising=False)
    else:
        monkeypatch.setenv(TOKEN_ENV, token)
    return TestClient(build_app(store, load_settings(), host=host), base_url=base_url)


def csrf_of(client: TestClient, path: str = "/queue") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text)[1]


def reviews(store) -> dict[int, Review]:  # noqa: ANN001
    with store.session(write=False) as session:
        return {r.result_id: r for r in session.scalars(select(Review))}


def test_queue_lists_marked_fields_oldest_first_and_decisions_leave_it(
    page_store, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    client = client_for(page_store, monkeypatch)
    queue = client.get("/api/queue").json()
    waiting = [f for f in FIELDS if f[3]]
    assert queue["count"] == len(waiting)
    assert [item["text"] for item in queue["items"]] == [f[1] for f in waiting]
    ids = [item["id"] for item in queue["items"]]
    assert ids == sorted(ids)
    first = queue["items"][0]
    assert first["digits"][0] == {"digit": "4", "confidence": 0.55, "runner_up": "8",
                                  "runner_up_confidence": 0.2}  # fmt: skip
    assert "path" not in first and "processed" not in str(first)  # ids only, no file paths
    csrf = csrf_of(client)
    sent = {"action": "correct", "text": " 4712 ", "csrf_token": csrf}
    answer = client.post(f"/api/results/{ids[0]}/review", data=sent)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "corrected" and answer.json()["text"] == "4712"
    # a second decision on the same field replaces the first
    again = {"action": "illegible", "csrf_token": csrf}
    assert client.post(f"/api/results/{ids[0]}/review", data=again).status_code == 200
    stored = reviews(page_store)
    assert len(stored) == 1 and stored[ids[0]].status == "illegible" and stored[ids[0]].text is None
    assert stored[ids[0]].reviewer  # who
    assert stored[ids[0]].reviewed_at is not None  # when
    after = client.get("/api/queue").json()
    assert after["count"] == len(waiting) - 1 and ids[0] not in [i["id"] for i in after["items"]]
    paged = client.get("/api/queue", params={"after": ids[1], "limit": 1}).json()
    assert [i["id"] for i in paged["items"]] == [ids[2]]


def test_queue_filters_by_template_field_and_date(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    store_page(store, tmp_path / "a", "a.png", template="invoice")
    store_page(store, tmp_path / "b", "b.png", template="cheque")
    client = client_for(store, monkeypatch)
    assert client.get("/api/queue").json()["count"] == 8
    assert client.get("/api/queue", params={"template": "cheque"}).json()["count"] == 4
    by_field = client.get("/api/queue", params={"field": "year"}).json()
    assert by_field["count"] == 2 and {i["field"] for i in by_field["items"]} == {"year"}
    assert client.get("/api/queue", params={"since": "1h"}).json()["count"] == 8
    assert client.get("/api/queue", params={"until": "1h"}).json()["count"] == 0
    bad = client.get("/api/queue", params={"since": "next tuesday"})
    assert bad.status_code == 400 and "cannot read time" in bad.json()["error"]
    page = client.get("/queue", params={"template": "cheque"})
    assert page.status_code == 200 and ">4</span> field(s) waiting" in page.text


def test_csrf_is_required_for_every_change(page_store, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    client = client_for(page_store, monkeypatch)
    result_id = client.get("/api/queue").json()["items"][0]["id"]
    csrf = csrf_of(client)
    for sent in ({"action": "accept"}, {"action": "accept", "csrf_token": "forged"}):
        refused = client.post(f"/api/results/{result_id}/review", data=sent)
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    assert reviews(page_store) == {}
    # another browser session's token is not this one's
    other = client_for(page_store, monkeypatch)
    stolen = other.post(f"/api/results/{result_id}/review",
                        data={"action": "accept", "csrf_token": csrf})  # fmt: skip
    assert stolen.status_code == 403
    by_header = client.post(f"/api/results/{result_id}/review", data={"action": "accept"},
                            headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert by_header.status_code == 200 and by_header.json()["status"] == "accepted"
    assert client.post("/reviewer", data={"name": "eve"}).status_code == 403
    assert client.post("/logout", data={}).status_code == 403


def test_ids_that_do_not_exist_are_404(page_store, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    client = client_for(page_store, monkeypatch)
    csrf = csrf_of(client)
    missing = client.post(
        "/api/results/987654/review", data={"action": "accept", "csrf_token": csrf}
    )
    assert missing.status_code == 404 and "987654" in missing.json()["error"]
    assert client.get("/api/results/987654").status_code == 404
    assert client.get("/crops/987654.png").status_code == 404
    assert client.get("/documents/987654").status_code == 404
    assert client.get("/documents/987654/pages/1.jpg").status_code == 404
    assert client.get(f"/documents/{page_store.document_id}/pages/9.jpg").status_code == 404
    assert client.get("/crops/abc.png").status_code == 404  # ids only: nothing else routes
    assert client.get("/crops/..%2F..%2Fetc%2Fpasswd").status_code == 404
    result_id = client.get("/api/queue").json()["items"][0]["id"]
    bad = client.post(
        f"/api/results/{result_id}/review", data={"action": "delete", "csrf_token": csrf}
    )
    assert bad.status_code == 400
    empty = client.post(f"/api/results/{result_id}/review",
                        data={"action": "correct", "text": "  ", "csrf_token": csrf})  # fmt: skip
    assert empty.status_code == 400 and "illegible" in empty.json()["error"]
    assert reviews(page_store) == {}


def test_crop_and_page_images_come_from_the_stored_file(
    page_store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # noqa: ANN001
    import cv2
    import numpy as np

    client = client_for(page_store, monkeypatch)
    item = client.get("/api/queue").json()["items"][0]
    crop = client.get(item["crop_url"])
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(crop.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    x, y, w, h = item["box"]
    margin = h // 3
    assert image.shape == (h + 2 * margin, w + 2 * margin)
    assert (image < 128).mean() > 0.02  # the written digits and the box are in it
    page = client.get(f"/documents/{item['document_id']}/pages/1.jpg")
    assert page.status_code == 200 and page.content[:3] == b"\xff\xd8\xff"
    (tmp_path / "processed" / "form-1.png").unlink()  # the file went away: a clear 404
    gone = client.get(f"/crops/{client.get('/api/queue').json()['items'][1]['id']}.png")
    assert gone.status_code == 404 and "no longer" in gone.json()["error"]


def test_documents_list_searches_and_shows_failures(
    page_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    store_failed(page_store, tmp_path)
    client = client_for(page_store, monkeypatch)
    listing = client.get("/documents")
    assert "form-1.png" in listing.text and "broken.png" in listing.text
    assert "not an image (looks like text)" in listing.text
    failed = client.get("/documents", params={"status": "failed"}).text
    assert "broken.png" in failed and "form-1.png" not in failed
    found = client.get("/documents", params={"q": "form"}).text
    assert "form-1.png" in found and "broken.png" not in found
    assert "form-1.png" not in client.get("/documents", params={"template": "cheque"}).text
    view = client.get(f"/documents/{page_store.document_id}")
    assert view.status_code == 200
    assert view.text.count('class="field s-waiting"') == 4 and view.text.count("s-ok") >= 1
    assert "amount: 4711 0.55 (waiting)" in view.text


def test_non_loopback_bind_needs_a_token(page_store, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    with pytest.raises(AccessError, match=TOKEN_ENV):
        client_for(page_store, monkeypatch, host="0.0.0.0")
    with pytest.raises(AccessError, match="too short"):
        client_for(page_store, monkeypatch, host="0.0.0.0", token="short")
    client = client_for(page_store, monkeypatch, host="0.0.0.0", token=TOKEN,
                        base_url="http://192.0.2.10:8765")  # fmt: skip
    assert client.get("/api/queue").status_code == 401
    assert client.get("/crops/1.png").status_code == 401
    page = client.get("/queue", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=/queue")
    assert client.get("/api/queue", headers={"X-OCRD-Review-Token": "wrong" * 5}).status_code == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/queue", headers=bearer).json()["count"] == 4
    result_id = client.get("/api/queue", headers=bearer).json()["items"][0]["id"]
    decided = client.post(f"/api/results/{result_id}/review", data={"action": "accept"},
                          headers={**bearer, "X-OCRD-Reviewer": "batch-script"})  # fmt: skip
    assert decided.status_code == 200 and decided.json()["reviewer"] == "batch-script"


def test_login_form_sets_a_cookie_that_holds_no_token(
    page_store, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    client = client_for(page_store, monkeypatch, host="0.0.0.0", token=TOKEN,
                        base_url="http://192.0.2.10:8765")  # fmt: skip
    csrf = csrf_of(client, "/login")
    wrong = client.post("/login", data={"token": "x" * 20, "name": "ann", "csrf_token": csrf})
    assert wrong.status_code == 401 and "wrong token" in wrong.text
    no_csrf = client.post("/login", data={"token": TOKEN, "name": "ann"}, follow_redirects=False)
    assert no_csrf.status_code != 303
    signed_in = client.post("/login", follow_redirects=False,
                            data={"token": TOKEN, "name": "ann", "csrf_token": csrf,
                                  "next": "//evil.example/x"})  # fmt: skip
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/queue"
    assert TOKEN not in str(client.cookies.get("ocrd_review"))
    assert client.get("/api/queue").status_code == 200
    result_id = client.get("/api/queue").json()["items"][0]["id"]
    csrf = csrf_of(client)
    decided = client.post(f"/api/results/{result_id}/review",
                          data={"action": "accept", "csrf_token": csrf})  # fmt: skip
    assert decided.json()["reviewer"] == "ann"
    client.post("/logout", data={"csrf_token": csrf})
    assert client.get("/api/queue").status_code == 401


def test_loopback_server_refuses_other_host_names(
    page_store, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """DNS rebinding: a page elsewhere resolving its own name to 127.0.0.1 gets nothing."""
    client = client_for(page_store, monkeypatch, base_url="http://attacker.example:8765")
    assert client.get("/api/queue").status_code == 400
    assert (
        client_for(page_store, monkeypatch, base_url="http://localhost:8765")
        .get("/api/queue")
        .status_code
        == 200
    )
