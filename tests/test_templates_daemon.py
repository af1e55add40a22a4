"""`ocrd watch` with form templates: named results, and SIGHUP reloading the templates (a
broken file is refused with its file and key, the templates in use are kept)."""

from __future__ import annotations

import signal
from pathlib import Path

import cv2
import numpy as np

from ocrd.templates import save_template
from ocrd.templates.create import create_template
from ocrd.types import Page
from tests.test_daemon import PROCESS_TIMEOUT, Watcher, all_settled, folders, wait_for
from training.forms import FORM_FAMILIES, DigitBank, render_form, warp_scan


def stored_templates(db_url: str) -> set[tuple[str | None, str | None]]:
    from ocrd.store import Result, open_store

    store = open_store(db_url, upgrade=False)
    try:
        with store.session() as session:
            return {(r.template, r.field) for r in session.query(Result).all()}
    finally:
        store.dispose()


def test_watch_names_fields_and_reloads_templates_on_sighup(tmp_path: Path, sqlite_url: str):
    root = folders(tmp_path)
    rng = np.random.default_rng(2)
    bank = DigitBank.holdout()
    templates = tmp_path / "templates"
    claim = render_form(FORM_FAMILIES["claim"], None, rng, dpi=200)
    save_template(create_template("claim", Page(1, claim.image, 200)), templates / "claim.toml")
    config = tmp_path / "ocrd.toml"
    config.write_text(f'templates_dir = "{templates}"\n')
    watcher = Watcher(tmp_path, "tpl", root / "inbox", sqlite_url, "--config", str(config))
    try:
        watcher.wait_ready()
        assert f"templates from {templates}: claim" in watcher.log()
        broken = templates / "order.toml"
        broken.write_text('name = "order"\nwidth = 10\nheight = 10\nfields = []\n')
        watcher.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "templates not reloaded" in watcher.log(), 30, "no reload attempt")
        assert f"keeping the 1 in use: {broken}: fields: expected at least one" in watcher.log()

        scan = warp_scan(render_form(FORM_FAMILIES["claim"], bank, rng, dpi=200), rng)
        staged = tmp_path / "claim-scan.png"
        assert cv2.imwrite(str(staged), scan.image)
        staged.rename(root / "inbox" / staged.name)
        wait_for(lambda: all_settled(sqlite_url, [staged.name]), PROCESS_TIMEOUT, "not read")
        named = stored_templates(sqlite_url)
        assert ("claim", "field_1") in named and all(t == "claim" for t, _ in named)

        order = render_form(FORM_FAMILIES["order"], None, rng, dpi=200)
        save_template(create_template("order", Page(1, order.image, 200)), broken)
        watcher.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "claim, order" in watcher.log(), 30, "order template not loaded")
    finally:
        code = watcher.stop()
    assert code == 0, watcher.log()
