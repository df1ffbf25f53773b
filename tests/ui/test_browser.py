"""The page in Debian's Chromium driven by Playwright, against the real server and the real local model.

Never downloads a browser: Chromium comes from apt (`make browser`). Screenshots of the main states go to
test-artifacts/.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.servers import ANSWER_SECONDS, ARTIFACTS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUESTION = "#qa-question textarea"
ANSWER_MS = ANSWER_SECONDS * 1000
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"
HOSTILE_DOC = (
    f"Zorblax Valve Manual {IMG}\n\n"
    f"The Zorblax valve was designed by the engineer Ayesha Khan. {IMG} {SCRIPT}\n"
    "It opens at 42 degrees and is serviced every spring.\n"
)

# Text of the newest bot message, and whether it is still streaming (the cursor is shown until the answer is final).
LAST_BOT = "() => { const m = [...document.querySelectorAll('#qa-chat [data-testid=bot]')].pop(); return m ? m.innerText : ''; }"
FINAL = (
    "() => { const m = [...document.querySelectorAll('#qa-chat [data-testid=bot]')].pop();"
    " return !!m && !m.querySelector('.qa-cursor') && m.innerText.trim().length > 0; }"
)


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail("Chromium is missing: run `make browser` (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh chat session; fails the test if any JavaScript dialog (alert) opens."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(live_server.url)
    page.wait_for_selector(QUESTION)
    page.wait_for_selector("#qa-status:has-text('Indexed:')")
    yield page
    context.close()
    assert dialogs == [], f"a script ran: {dialogs}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def ask(page, question: str) -> None:
    count = page.locator("#qa-chat [data-testid=bot]").count()
    page.fill(QUESTION, question)
    page.press(QUESTION, "Enter")
    page.wait_for_function(f"() => document.querySelectorAll('#qa-chat [data-testid=bot]').length > {count}")


def test_question_streams_an_answer_with_markers_and_highlighted_sources(page, live_server):
    assert page.get_by_role("button", name="Select example 1").is_visible()  # example questions on first load
    shot(page, "ui-1-start")
    ask(page, "Who co-chaired the dialogue?")
    assert page.input_value(QUESTION) == ""  # the input clears ...
    assert page.evaluate(
        "document.activeElement === document.querySelector('#qa-question textarea')"
    )  # ... keeps focus

    # The answer is the best sentence, so there is nothing to stream token by token (tests/ui/test_chat_logic.py
    # covers streaming); the checked answer replaces the draft at once.
    page.wait_for_function(FINAL, timeout=ANSWER_MS)
    final = page.evaluate(LAST_BOT)
    assert "Dar" in final or "Wang Yi" in final

    marker = page.locator("#qa-chat a.qa-cite").first
    target = marker.get_attribute("href").lstrip("#")
    passage = page.locator(f"#qa-sources-box #{target}")
    assert "co-chaired by" in passage.locator("mark.qa-quote").inner_text()

    page.locator("#qa-sources-box").evaluate("el => el.scrollTop = el.scrollHeight")  # move it out of view
    marker.click()
    page.wait_for_function(f"() => document.getElementById('{target}').classList.contains('qa-flash')")
    page.wait_for_timeout(800)  # smooth scrolling
    assert passage.is_visible() and _in_view(page, target)
    shot(page, "ui-3-answer")

    page.locator("#qa-sources-box").evaluate("el => el.scrollTop = el.scrollHeight")
    page.locator("#qa-sources-box a.qa-source-link").first.click()  # the source list works the same way
    page.wait_for_timeout(800)
    assert _in_view(page, page.locator("#qa-sources-box a.qa-source-link").first.get_attribute("href").lstrip("#"))

    page.get_by_role("button", name="Like", exact=True).last.click()
    page.wait_for_selector("text=your feedback was saved")
    votes = [json.loads(line) for line in (live_server.data_dir / "feedback.jsonl").read_text().splitlines()]
    assert votes[-1]["rating"] == "up" and votes[-1]["question"] == "Who co-chaired the dialogue?"
    assert votes[-1]["citations"]

    page.click("#qa-new-chat")
    page.wait_for_function("() => !document.querySelector('#qa-chat [data-testid=bot]')")
    assert "the passages behind the answer appear here" in page.inner_text("#qa-sources-box")


def _in_view(page, element_id: str) -> bool:
    """Whether the element is inside the visible part of the sources panel."""
    return page.evaluate(
        """(id) => { const el = document.getElementById(id), box = document.getElementById('qa-sources-box');
                     const a = el.getBoundingClientRect(), b = box.getBoundingClientRect();
                     return a.top < b.bottom && a.bottom > b.top; }""",
        element_id,
    )


def test_stop_ends_a_generation_and_the_next_question_is_taken_at_once(page):
    # A question in another language waits for the model's translation: Stop lands while it is under way, and
    # ends it (the model stops writing at its next token) instead of letting it run on for seconds.
    ask(page, "双方同意加快哪个港口的建设？")
    page.wait_for_timeout(300)
    page.click("#qa-stop")
    page.wait_for_function("() => document.querySelector('#qa-chat [data-testid=bot]').innerText.includes('(stopped)')")
    stopped = page.locator("#qa-chat [data-testid=bot]").last.inner_text()
    assert stopped.strip() == "(stopped)" and page.locator("#qa-chat .qa-cursor").count() == 0
    # Sent once, right away (when the translation could not be stopped, a question sent in the seconds it ran
    # on got no answer): the page answers it.
    ask(page, "Who co-chaired the dialogue?")
    page.wait_for_function(FINAL, timeout=ANSWER_MS)
    assert "Ishaq Dar" in page.evaluate(LAST_BOT)
    page.wait_for_timeout(3000)
    assert page.locator("#qa-chat [data-testid=bot]").nth(-2).inner_text() == stopped, "text arrived after Stop"


def test_a_question_sent_while_another_is_under_way_takes_over(page):
    ask(page, "双方同意加快哪个港口的建设？")  # translated first: seconds of the model's work
    page.wait_for_timeout(300)
    ask(page, "Who co-chaired the dialogue?")
    page.wait_for_function(FINAL, timeout=ANSWER_MS)
    answered = page.evaluate(LAST_BOT)
    assert "Ishaq Dar" in answered
    for _ in range(14):  # past the time the first question's translation and answer would take
        page.wait_for_timeout(500)
        assert page.evaluate(LAST_BOT) == answered, "the first answer's output overwrote the chat"
        assert page.locator("#qa-chat [data-testid=bot]").count() == 2
    assert page.locator("#qa-chat [data-testid=bot]").first.inner_text().strip() == "(stopped)"


def test_enter_again_on_an_empty_box_leaves_the_answer_under_way_alone(page):
    ask(page, "双方同意加快哪个港口的建设？")
    page.wait_for_timeout(300)
    page.press(QUESTION, "Enter")  # a second Enter (or Send), the box already cleared
    page.wait_for_function(FINAL, timeout=ANSWER_MS)
    assert page.locator("#qa-chat [data-testid=bot]").count() == 1
    assert page.evaluate(LAST_BOT) != "Please type a question."  # the question's own answer (or abstention)


@pytest.mark.parametrize("payload", [IMG, SCRIPT])
def test_script_in_a_question_shows_literally_and_never_runs(page, payload):
    ask(page, payload)
    page.wait_for_function(FINAL, timeout=ANSWER_MS)
    assert page.locator("#qa-chat [data-testid=user]").last.inner_text().strip() == payload
    assert page.locator("#qa-chat img[src='x'], #qa-sources-box img, #qa-chat script").count() == 0
    shot(page, "ui-4-hostile-question")


def test_rebuild_button_finishes(page):
    page.click("#qa-rebuild")
    page.wait_for_selector("#qa-progress[data-state=done]", timeout=ANSWER_MS)
    assert "Index" in page.inner_text("#qa-progress")
    shot(page, "ui-5-rebuilt")


def test_script_in_an_uploaded_document_renders_inert(page, live_server, tmp_path):
    path = tmp_path / "zorblax manual.txt"
    path.write_text(HOSTILE_DOC, encoding="utf-8")
    page.locator("input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#qa-progress[data-state=done]", timeout=ANSWER_MS)
    assert "Added zorblax_manual.txt." in page.inner_text("#qa-progress")
    assert (live_server.seeds_dir / "zorblax_manual.txt").exists()

    ask(page, "Who designed the Zorblax valve?")
    page.wait_for_function(FINAL, timeout=ANSWER_MS)
    shown = page.locator("#qa-sources-box").text_content()  # includes folded passages
    assert IMG in shown and SCRIPT in shown  # as text
    assert any(IMG in title for title in page.locator("#qa-sources-box .qa-title").all_text_contents())  # title too
    assert page.locator("#qa-sources-box img, #qa-sources-box script, #qa-chat img[src='x']").count() == 0
    shot(page, "ui-6-hostile-document")
