"""The page in Chromium against a light real server (extractive backend, behind the Host check): the copy button
puts the answer's plain text on the clipboard, not its HTML."""

from __future__ import annotations

import shutil

import pytest

from tests.servers import ANSWER_SECONDS, rebuilt_server
from tests.ui.test_browser import ARGS, CHROMIUM, FINAL, ask

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def light_server(tmp_path_factory):
    with rebuilt_server(tmp_path_factory.mktemp("copy"), "copy-server", QA_LLM="extractive") as server:
        yield server


def test_the_copy_button_copies_the_answer_as_plain_text(light_server):
    if not shutil.which(CHROMIUM):
        pytest.fail("Chromium is missing: run `make browser` (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=light_server.url.rstrip("/"))
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.goto(light_server.url)
            page.wait_for_selector("#qa-status:has-text('Indexed:')")
            ask(page, "Who co-chaired the dialogue?")
            page.wait_for_function(FINAL, timeout=ANSWER_SECONDS * 1000)
            shown = page.locator("#qa-chat [data-testid=bot]").last.inner_text().strip()
            assert page.locator("#qa-chat a.qa-cite").count() >= 1
            page.locator("#qa-chat [data-testid=bot]").last.hover()
            page.locator("#qa-chat").get_by_label("Copy message").last.click()
            copied = page.evaluate("navigator.clipboard.readText()")
            assert "<a" not in copied and "qa-cite" not in copied and "&#x27;" not in copied and "&amp;" not in copied
            assert copied.strip() == shown and ("[1]" in copied or "[2]" in copied), (copied, shown)
        finally:
            browser.close()
