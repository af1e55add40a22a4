"""The review page in a real browser (Debian's chromium driven by Selenium through
chromedriver): clear three fields from the keyboard, then check the database and the CSV.

Screenshots of the queue and of a document view are written to $OCRD_SCREENSHOT_DIR (the
README's are made with ``OCRD_SCREENSHOT_DIR=docs``), else to the test's temporary folder.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ocrd.cli import app
from ocrd.config import load_settings
from ocrd.review import ReviewServer, build_app
from ocrd.store import open_store

from .conftest import _free_port
from .review_pages import store_failed, store_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT = 15

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed "
    "(`make test` installs them when run as root: apt-get install chromium chromium-driver)",
)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def served(store, tmp_path: Path) -> Iterator[tuple[str, int, object]]:  # noqa: ANN001
    document_id = store_page(store, tmp_path / "processed", "form-1.png")
    store_failed(store, tmp_path / "failed")
    server = ReviewServer(build_app(store, load_settings()), "127.0.0.1", _free_port())
    server.start()
    yield server.url.rstrip("/"), document_id, store
    server.stop()


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("OCRD_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_clear_three_fields_from_the_keyboard(browser, served, tmp_path: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    base, document_id, store = served
    wait = WebDriverWait(browser, WAIT)

    def current() -> tuple[str, str]:  # (result id shown, crop loaded?)
        return browser.execute_script(
            "const i = document.getElementById('crop');"
            "return [i.dataset.result, String(i.complete && i.naturalWidth > 0)];"
        )

    def shows_next(previous: str) -> str:
        wait.until(lambda _: current()[0] != previous and current()[1] == "true")
        return current()[0]

    browser.get(f"{base}/queue")
    first = shows_next("")
    answer = browser.find_element(By.ID, "answer")
    assert answer.get_attribute("value") == "4711"
    assert browser.switch_to.active_element == answer  # ready to type, no click needed
    assert browser.find_element(By.ID, "queue-count").text == "4"
    digits = browser.find_element(By.ID, "digits").text
    assert "0.55" in digits and "or 8 0.20" in digits  # per-digit confidence and runner-up
    browser.save_screenshot(str(screenshot_dir(tmp_path) / "review-queue.png"))

    answer.send_keys(Keys.ENTER)  # 1: the reading 4711 is right
    second = shows_next(first)
    answer = browser.find_element(By.ID, "answer")
    assert answer.get_attribute("value") == "2028"
    answer.send_keys("2026", Keys.ENTER)  # 2: typing replaces the selected reading
    third = shows_next(second)
    browser.find_element(By.ID, "answer").send_keys("?")  # 3: illegible
    fourth = shows_next(third)
    wait.until(lambda d: d.find_element(By.ID, "queue-count").text == "1")
    browser.find_element(By.ID, "answer").send_keys(Keys.ARROW_UP)  # back to 3, decided
    assert shows_next(fourth) == third
    assert "illegible by" in browser.find_element(By.ID, "state").text
    browser.find_element(By.ID, "answer").send_keys(Keys.ARROW_DOWN)
    assert shows_next(third) == fourth

    decided = {int(first): ("accepted", "4711"), int(second): ("corrected", "2026"),
               int(third): ("illegible", None)}  # fmt: skip
    from sqlalchemy import select

    from ocrd.store import Review

    with store.session(write=False) as session:
        rows = {r.result_id: (r.status, r.text) for r in session.scalars(select(Review))}
    assert rows == decided

    url = str(store.url.render_as_string(hide_password=False))
    exported = CliRunner().invoke(app, ["results", "--csv", "--db", url])
    assert exported.exit_code == 0, exported.output
    records = {int(r["result_id"]): r for r in csv.DictReader(io.StringIO(exported.output))}
    assert list(records[int(first)])[-2:] == ["review_status", "reviewed_text"]
    for result_id, (status, text) in decided.items():
        assert records[result_id]["review_status"] == status
        assert records[result_id]["reviewed_text"] == (text or "")
    assert records[int(second)]["text"] == "2028"  # text stays what the machine read
    final = CliRunner().invoke(app, ["results", "--csv", "--final", "--db", url])
    finals = {int(r["result_id"]): r["text"] for r in csv.DictReader(io.StringIO(final.output))}
    assert [finals[int(i)] for i in (first, second, third)] == ["4711", "2026", ""]
    waiting = CliRunner().invoke(app, ["results", "--csv", "--needs-review", "--db", url])
    assert [int(r["result_id"]) for r in csv.DictReader(io.StringIO(waiting.output))] == [
        int(fourth)
    ]

    browser.get(f"{base}/documents/{document_id}")
    wait.until(lambda d: d.execute_script(
        "return document.querySelectorAll('figure.page svg g.field').length") == 5)  # fmt: skip
    states = browser.execute_script(
        "return Array.from(document.querySelectorAll('g.field')).map(g => g.getAttribute('class'))"
    )
    expected = ["accepted", "corrected", "illegible", "waiting", "ok"]
    assert sorted(states) == sorted(f"field s-{state}" for state in expected)
    width = int(browser.find_element(By.CSS_SELECTOR, "figure.page svg").get_attribute("width"))
    browser.find_element(By.CSS_SELECTOR, "[data-zoom='1.25']").click()
    zoomed = int(browser.find_element(By.CSS_SELECTOR, "figure.page svg").get_attribute("width"))
    assert zoomed == pytest.approx(width * 1.25, abs=2)
    browser.find_element(By.CSS_SELECTOR, "[data-zoom='fit']").click()
    browser.save_screenshot(str(screenshot_dir(tmp_path) / "review-document.png"))

    browser.get(f"{base}/documents?status=failed")
    assert "not an image (looks like text)" in browser.find_element(By.ID, "documents").text


def test_whole_page_cleared_shows_the_empty_queue(browser, served) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    base, _document_id, _store = served
    browser.get(f"{base}/queue")
    wait = WebDriverWait(browser, WAIT)
    for remaining in (3, 2, 1, 0):
        wait.until(lambda d: d.find_element(By.ID, "answer").is_displayed())
        browser.find_element(By.ID, "answer").send_keys(Keys.ENTER)
        wait.until(lambda d, n=remaining: d.find_element(By.ID, "queue-count").text == str(n))
    wait.until(lambda d: d.find_element(By.ID, "empty").is_displayed())
    browser.get(f"{base}/queue")
    assert browser.find_element(By.ID, "empty").is_displayed()
    assert browser.find_element(By.ID, "queue-count").text == "0"
    assert open_store  # the page opened the same store the test wrote
