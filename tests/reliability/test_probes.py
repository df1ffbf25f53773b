"""Bad input, each with its expected clear behaviour: questions through the real service, the `qa ask --json`
command and the page's /ask API; files through the page's upload and in the seeds folder.

A probe either is refused with a clear message (and changes nothing), or is answered from the article, or is
handled: answered with citations or politely declined in the question's language, never a crash.
"""

from __future__ import annotations

import io
import json
import re

import pytest

from qa.prompts import abstain_message
from qa.service import clean_question
from qa.text import script_of
from qa.types import QAError
from tests.index.test_uploads import text_pdf
from tests.reliability.conftest import UPLOAD_MAX_MB
from tests.reliability.qa_cli import assert_no_traceback, run_qa

EMPTY = "Please type a question."
TOO_LONG = "The question is too long (200,000 characters; the limit is 2,000). Please shorten it."

# (id, question, expected): "refused: <message>", "answered" (names the co-chairs, cited) or "handled".
PROBES = [
    ("empty", "", f"refused: {EMPTY}"),
    ("whitespace", " \t \u00a0  ", f"refused: {EMPTY}"),
    ("200k-chars", "x" * 200_000, f"refused: {TOO_LONG}"),
    ("control-only", "\x00\x01\x08\x1b\x7f", f"refused: {EMPTY}"),
    ("nul-and-controls", "Who co-chaired\x00 the\x07 dialogue?\x1b", "answered"),
    ("ansi-escapes", "\x1b[31mWho co-chaired the dialogue?\x1b[0m", "handled"),
    ("html", "<b>Who</b> co-chaired the <i>dialogue</i>?", "handled"),
    ("script", "<script>alert(1)</script>", "handled"),
    ("img-onerror", "<img src=x onerror=alert(1)>", "handled"),
    ("sql-and-shell", "'; DROP TABLE embeddings; -- $(rm -rf ~) `id`", "handled"),
    ("urdu", "اسٹریٹجک ڈائیلاگ کی مشترکہ صدارت کس نے کی؟", "handled"),
    ("chinese", "谁共同主持了这次战略对话？", "handled"),
    ("arabic", "من شارك في رئاسة الحوار الاستراتيجي؟", "handled"),
]
IDS = [p[0] for p in PROBES]


def check_answer(out: dict, question: str, expected: str) -> None:
    """One answer in the public JSON format, against what the probe expects."""
    assert out["question"] == clean_question(question, len(question))  # kept as given, minus control characters
    for raw in ("<script", "<img", "onerror"):
        assert raw not in out["answer"]
    if expected == "answered":
        assert not out["abstained"] and "Dar" in out["answer"] and "Wang Yi" in out["answer"] and out["citations"]
    elif out["abstained"]:  # declined politely, in the question's language
        assert out["answer"] == abstain_message(script_of(out["question"])) and out["citations"] == []
    else:  # answered: every citation quotes a passage it was given
        texts = {p["n"]: p["text"] for p in out["passages"]}
        assert out["citations"] and all(c["quote"] in texts[c["n"]] for c in out["citations"])


@pytest.mark.parametrize("question, expected", [p[1:] for p in PROBES], ids=IDS)
def test_service(article_service, question, expected):
    if expected.startswith("refused: "):
        with pytest.raises(QAError) as err:
            article_service.ask(question)
        assert str(err.value) == expected.removeprefix("refused: ")
    else:
        check_answer(article_service.ask(question).to_json(), question, expected)


@pytest.mark.slow  # a `qa ask` process
def test_cli_json_mode(article_settings):
    """All probes in one `qa ask --json -` batch (one per stdin line; a blank line is an empty question)."""
    lines = [q.replace("\n", " ") for _, q, _ in PROBES]
    out = run_qa(
        ["ask", "--json", "--llm", "extractive", "-"],
        article_settings.seeds_dir,
        article_settings.data_dir,
        stdin="\n".join(lines) + "\n",
    )
    assert_no_traceback(out.stdout, out.stderr)
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(results) == len(PROBES) and out.returncode == 1  # the batch went on past the refusals
    for (pid, question, expected), result in zip(PROBES, results):
        if expected.startswith("refused: "):
            assert result == {"question": question, "error": expected.removeprefix("refused: ")}, pid
        else:
            check_answer(result, question, expected)


@pytest.mark.parametrize("question, expected", [p[1:] for p in PROBES], ids=IDS)
def test_page_ask_api(page_server, question, expected):
    from gradio_client.exceptions import AppError

    client = page_server.client()
    if expected.startswith("refused: "):
        with pytest.raises(AppError) as err:
            client.predict(question, None, api_name="/ask")
        assert expected.removeprefix("refused: ") in str(err.value)
        assert_no_traceback(str(err.value))
    else:
        check_answer(client.predict(question, None, api_name="/ask"), question, expected)


# --- files -------------------------------------------------------------------------------------------------------
def _encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf("secret minutes"))))
    writer.encrypt("pw", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# (file name as sent, content, what the refusal says); Gradio itself drops some characters from names ($ | \ < >).
BAD_FILES = [
    ("minutes.pdf", _encrypted_pdf, "encrypted PDF"),
    ("broken.pdf", lambda: b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage", "damaged"),
    ("latin1.txt", lambda: "caf\xe9 cr\xe8me".encode("latin-1"), "not UTF-8"),
    ("empty.txt", lambda: b"", "the file is empty"),
    ("binary.md", lambda: b"\x89PNG\r\n\x1a\n\x00\x00" * 50, "binary"),
    ("notes; rm -rf ~.txt", lambda: b"text", "not allowed"),
    ("..\\..\\evil.txt", lambda: b"text", "'..'"),
    ("<img src=x onerror=alert(1)>;.txt", lambda: b"text", "not allowed"),
]


def test_bad_uploads_are_refused_one_by_one_and_change_nothing(page_server, tmp_path):
    from gradio_client import handle_file

    before = sorted(p.name for p in page_server.seeds_dir.iterdir())
    pointer = (page_server.data_dir / "store" / "ACTIVE.json").read_text()
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for name, content, _ in BAD_FILES:
        (incoming / name).write_bytes(content())

    progress, _status = page_server.client().predict(
        [handle_file(str(incoming / name)) for name, _, _ in BAD_FILES], api_name="/add_documents"
    )
    assert 'data-state="error"' in progress and "No documents were added." in progress
    reasons = re.findall(r"<li>(.*?)</li>", progress)
    assert len(reasons) == len(BAD_FILES)
    for (name, _, says), reason in zip(BAD_FILES, reasons):
        assert "was refused" in reason and says.replace("'", "&#x27;") in reason, (name, reason)
    assert sorted(p.name for p in page_server.seeds_dir.iterdir()) == before
    assert (page_server.data_dir / "store" / "ACTIVE.json").read_text() == pointer  # no rebuild ran
    assert not (tmp_path / "evil.txt").exists() and not (page_server.seeds_dir.parent / "evil.txt").exists()

    # A type the page does not take is refused by Gradio for the whole batch, before our code sees it.
    from gradio_client.exceptions import AppError

    (incoming / "setup.sh").write_bytes(b"echo hi\n")
    with pytest.raises(AppError, match=r"Invalid file type.*\.txt"):
        page_server.client().predict([handle_file(str(incoming / "setup.sh"))], api_name="/add_documents")
    assert sorted(p.name for p in page_server.seeds_dir.iterdir()) == before


def test_a_file_over_the_upload_limit_is_refused_by_the_server(page_server):
    """gradio_client refuses it before sending; a raw HTTP upload shows the server refuses it too."""
    import httpx

    big = b"a" * (UPLOAD_MAX_MB * 1024 * 1024 + 1)
    r = httpx.post(page_server.url + "gradio_api/upload", files={"files": ("big.txt", big, "text/plain")}, timeout=60)
    assert r.status_code == 413 and "maximum allowed size" in r.text
    assert "big.txt" not in {p.name for p in page_server.seeds_dir.iterdir()}


def test_hostile_file_names_in_the_seeds_folder_are_indexed_as_plain_names(settings, tmp_path, monkeypatch):
    """Names are data: nothing runs, nothing is written outside, and the sources panel shows them as text."""
    from index.build import build_index
    from qa.service import QAService
    from ui.web_render import sources_html

    names = {
        "Alder": "$(touch PWNED).txt",
        "Birch": "; rm -rf ~.md",
        "Cedar": "`id`.txt",
        "Damson": "<img src=x onerror=alert(1)>.txt",
        "Elder": "line\nbreak.txt",
        "Fir": "ﬁle\u202egnp.txt",
    }
    for word, name in names.items():
        (settings.seeds_dir / name).write_text(
            f"{word} quarry report\n\nThe {word} quarry ships limestone to the Kohat plant by the {word} road.\n",
            encoding="utf-8",
        )
    monkeypatch.chdir(tmp_path)
    report = build_index(settings.with_overrides(llm="extractive"), progress=False)
    assert report.documents == len(names) + 1 and not report.skipped
    assert not list(tmp_path.rglob("PWNED")) and (tmp_path / "seeds").is_dir()

    answer = QAService(settings.with_overrides(llm="extractive")).ask("Where does the Damson quarry ship limestone?")
    assert answer.passages[0].source == "<img src=x onerror=alert(1)>.txt"
    panel = sources_html(answer, 1)
    assert "<img" not in panel and "&lt;img src=x onerror=alert(1)&gt;.txt" in panel
