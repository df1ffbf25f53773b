"""The page's event handlers over a scripted service: streaming, history, errors, feedback, rebuild, upload."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest

from index.types import IndexBusy, IndexCorrupt, IndexMissing
from qa.feedback import read_feedback
from qa.types import QAError
from tests.ui.fake_service import FakeService
from ui.web import UNEXPECTED, ChatApp, build_app, check_host
from ui.web_chat import UNCHANGED


def run(app: ChatApp, question: str, chat=None, records=None) -> list[tuple]:
    return list(app.respond(question, chat or [], records or {}))


def test_answer_streams_then_links_markers_and_shows_sources(settings):
    app = ChatApp(FakeService(settings))
    steps = run(app, "Who co-chaired the dialogue?")
    assert len(steps) >= 5  # placeholder, passages, several tokens, final
    partial = [chat[-1]["content"] for chat, _, _ in steps[1:-1]]
    assert any("Ishaq" in p and "Wang" not in p for p in partial), "the answer should grow token by token"
    chat, sources, records = steps[-1]
    assert chat[0] == {"role": "user", "content": "Who co-chaired the dialogue?"}
    assert chat[1]["content"] == (
        "It was co-chaired by Ishaq Dar and Wang Yi "
        '<a class="qa-cite" href="#qa-src-1-2" title="Show passage 2">[2]</a>.'
    )
    assert 'id="qa-src-1-2"' in sources and '<mark class="qa-quote">The message was conveyed' in sources
    assert records[1]["complete"] and records[1]["citations"][0]["n"] == 2


def test_stop_and_new_chat_stop_the_sessions_own_answer_under_way(settings):
    from types import SimpleNamespace

    service = FakeService(settings)
    app = ChatApp(service)
    mine, other = SimpleNamespace(session_hash="mine"), SimpleNamespace(session_hash="other")
    answering = [app.respond("Who co-chaired the dialogue?", [], {}, request) for request in (mine, other)]
    for steps in answering:
        next(steps), next(steps)  # under way: the service is streaming
    my_stop, other_stop = service.stops
    app.stop(other)
    assert other_stop.is_set() and not my_stop.is_set()
    app.new_chat(mine)
    assert my_stop.is_set()
    for steps in answering:
        assert list(steps) == [UNCHANGED]  # a stopped answer changes nothing more on the page
    assert app._stops == {}  # nothing left registered once the answers ended
    run(app, "Who co-chaired the dialogue?")
    assert not service.stops[-1].is_set()  # a new answer starts unstopped


def test_an_answer_left_unfinished_says_it_was_stopped_instead_of_keeping_its_cursor(settings):
    from types import SimpleNamespace

    service = FakeService(settings)
    app = ChatApp(service)
    mine = SimpleNamespace(session_hash="mine")
    steps = app.respond("Who co-chaired the dialogue?", [], {}, mine)
    for _ in range(3):
        chat, _, records = next(steps)
    assert chat[-1]["content"].endswith('<span class="qa-cursor">▍</span>')
    shown = app.stop_button(chat, mine)
    assert service.stops[0].is_set() and list(steps) == [UNCHANGED]
    assert shown[-1]["content"] == 'It <span class="qa-note">(stopped)</span>' and shown[0] == chat[0]
    # a new question sent while it was still writing (the page's chat has the cursor): marked in the new chat
    chat, _, _ = run(app, "When?", chat, records)[-1]
    assert chat[1]["content"].endswith("(stopped)</span>") and "qa-cursor" not in chat[1]["content"]


def test_a_new_question_takes_over_from_the_answer_under_way_in_the_same_chat(settings):
    from types import SimpleNamespace

    service = FakeService(settings)
    app = ChatApp(service)
    mine = SimpleNamespace(session_hash="mine")
    steps = app.respond("Who co-chaired the dialogue?", [], {}, mine)
    next(steps), next(steps)
    assert app.take_question("   ", mine) == ("", "   ") and not service.stops[0].is_set()  # Enter again
    assert list(app.respond("   ", [], {}, mine)) == [UNCHANGED]  # no "Please type a question." in between
    assert app.take_question("When?", mine) == ("", "When?")
    assert service.stops[0].is_set() and list(steps) == [UNCHANGED]  # it would overwrite the new answer's chat
    steps = app.respond("When?", [], {}, mine)
    assert list(steps)[-1][2][1]["complete"]  # the new one runs to its end
    assert run(app, "   ")[-1][0][-1]["content"] == "Please type a question."  # when nothing is under way


def test_follow_up_gets_raw_history_of_completed_turns(settings):
    service = FakeService(settings)
    app = ChatApp(service)
    chat, _, records = run(app, "Who met <b>?</b>")[-1]
    run(app, "And when?", chat, records)
    question, history = service.calls[-1]
    assert question == "And when?"
    assert history == [
        {"role": "user", "content": "Who met <b>?</b>"},
        {"role": "assistant", "content": service.answer_text},
    ]


def test_stopped_and_failed_turns_are_left_out_of_history(settings):
    service = FakeService(settings)
    app = ChatApp(service)
    steps = app.respond("first", [], {})
    for _ in range(4):  # stop mid-answer, as the Stop button does
        chat, _, records = next(steps)
    steps.close()
    assert not records[1]["complete"]
    chat, _, records = run(app, "", chat, records)[-1]
    run(app, "third", chat, records)
    assert service.calls[-1][1] == []


@pytest.mark.parametrize(
    "error, shown",
    [
        (QAError("The question is too long (200,000 characters; the limit is 2,000)."), "The question is too long"),
        (IndexMissing("there is no index in /srv/data/store yet; run `qa index build`"), "Nothing is indexed yet"),
        (
            IndexCorrupt("the index at /srv/data/store is damaged; run `qa index rebuild`"),
            "the index at (path hidden) is damaged",
        ),
        (RuntimeError("boom in /srv/secret/path.py"), UNEXPECTED),
    ],
)
def test_errors_become_a_friendly_chat_message(settings, error, shown):
    app = ChatApp(FakeService(settings, fail=error))
    chat, sources, records = run(app, "Who co-chaired the dialogue?")[-1]
    assert chat[-1]["role"] == "assistant" and chat[-1]["content"].startswith(shown)
    assert "Traceback" not in chat[-1]["content"] and "/srv/" not in chat[-1]["content"] + sources
    assert records[1]["error"]


def test_empty_question_asks_for_one_without_an_empty_bubble(settings):
    chat, _, _ = run(ChatApp(FakeService(settings)), "   ")[-1]
    assert chat == [{"role": "assistant", "content": "Please type a question."}]


def test_hostile_question_is_escaped_in_the_bubble(settings):
    chat, _, _ = run(ChatApp(FakeService(settings)), "<img src=x onerror=alert(1)>")[-1]
    assert chat[0]["content"] == "&lt;img src=x onerror=alert(1)&gt;"


def test_like_and_dislike_append_to_the_feedback_log(settings):
    app = ChatApp(FakeService(settings))
    chat, _, records = run(app, "Who co-chaired the dialogue?")[-1]
    app.like(records, gr.LikeData(None, {"index": 1, "value": chat[1]["content"], "liked": True}))
    app.like(records, gr.LikeData(None, {"index": 1, "value": chat[1]["content"], "liked": False}))
    app.like(records, gr.LikeData(None, {"index": 0, "value": "user message", "liked": True}))  # not an answer
    votes = read_feedback(settings)
    assert [v["rating"] for v in votes] == ["up", "down"]
    assert votes[0]["question"] == "Who co-chaired the dialogue?"
    assert votes[0]["answer"] == "It was co-chaired by Ishaq Dar and Wang Yi [2]."
    assert votes[0]["citations"][0]["quote"].startswith("The message was conveyed")


def test_api_returns_the_answer_json_and_accepts_history_as_json(settings):
    service = FakeService(settings)
    app = ChatApp(service)
    out = app.ask("Who co-chaired the dialogue?", json.dumps([["Hi", "Hello"]]))
    assert set(out) == {"question", "answer", "abstained", "citations", "passages", "rewritten_question", "timings_ms"}
    assert service.calls[-1][1] == [["Hi", "Hello"]]
    with pytest.raises(gr.Error, match="history must be JSON"):
        app.ask("q", "[not json")
    with pytest.raises(gr.Error, match="Please type a question"):
        app.ask("")


def test_rebuild_shows_progress_then_the_report(settings):
    app = ChatApp(FakeService(settings))
    steps = list(app.rebuild())
    progress = [html for html, _ in steps]
    assert "embedding 2/3" in " ".join(progress)
    assert "Index rebuilt in 1.2 s: 2 documents, 20 passages" in progress[-1]
    assert 'data-state="done"' in progress[-1]


def test_rebuild_already_running_is_reported(settings):
    app = ChatApp(FakeService(settings, fail=IndexBusy("A rebuild is already running; wait for it to finish.")))
    last, _ = list(app.rebuild())[-1]
    assert "A rebuild is already running" in last and 'data-state="error"' in last


def test_upload_saves_safe_files_then_rebuilds(settings, tmp_path):
    service = FakeService(settings)
    app = ChatApp(service)
    incoming = tmp_path / "gradio-cache"
    incoming.mkdir()
    (incoming / "notes.md").write_text("# Notes\nGwadar port has a new terminal.\n")
    (incoming / "tool.exe").write_bytes(b"MZ")
    last, _ = list(app.add_documents([str(incoming / "notes.md"), str(incoming / "tool.exe")]))[-1]
    assert (settings.seeds_dir / "notes.md").exists() and not (settings.seeds_dir / "tool.exe").exists()
    assert service.rebuilds == 1
    assert "Added notes.md." in last and "&#x27;tool.exe&#x27; was refused" in last


def test_upload_with_nothing_acceptable_does_not_rebuild(settings, tmp_path):
    service = FakeService(settings)
    bad = tmp_path / "empty.txt"
    bad.write_bytes(b"")
    last, _ = list(ChatApp(service).add_documents([str(bad)]))[-1]
    assert "No documents were added." in last and "the file is empty" in last
    assert service.rebuilds == 0


def test_page_exposes_the_named_endpoints(settings):
    demo = build_app(FakeService(settings))
    names = {d.get("api_name") for d in demo.config["dependencies"]}
    assert {"ask", "chat", "rebuild", "add_documents"} <= names


@pytest.mark.parametrize(
    "host, allowed",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_only_loopback_without_an_explicit_flag(host, allowed):
    if allowed:
        check_host(host, allow_remote=False)
    else:
        with pytest.raises(ValueError, match="--allow-remote"):
            check_host(host, allow_remote=False)
        check_host(host, allow_remote=True, auth="ana:s3cret-pass")
        check_host(host, allow_remote=True, no_auth=True)


def test_serve_refuses_a_public_interface_before_loading_anything(settings, monkeypatch):
    import ui.web

    monkeypatch.setattr(ui.web, "QAService", lambda s: pytest.fail("nothing may load before the host check"))
    with pytest.raises(ValueError, match="Refusing to listen on 0.0.0.0"):
        ui.web.serve(settings, host="0.0.0.0")
    with pytest.raises(ValueError, match="QA_AUTH must look like user:password"):
        ui.web.serve(settings.with_overrides(auth="no-colon"))


@pytest.mark.parametrize(
    "text, leaks",
    [
        ("the manifest /home/John Smith/qa/.qa/store/builds/x/manifest.json is missing", ["Smith", "manifest.json"]),
        ("cannot read '/srv/qa data/seeds/a.txt'", ["data/seeds", "a.txt", "seeds"]),
        ("see file:///home/u/x and file://host/share/y.txt", ["home/u", "share", "file:"]),
        ("store at /tmp/qa run 7/store: damaged", ["run 7", "store:"]),
    ],
)
def test_paths_with_spaces_and_file_urls_are_hidden(settings, monkeypatch, text, leaks):
    from ui.web import hide_paths

    monkeypatch.setenv("HOME", "/home/John Smith")
    monkeypatch.setenv("TMPDIR", "/tmp/qa run 7")
    ChatApp(
        FakeService(
            settings.with_overrides(seeds_dir=Path("/srv/qa data/seeds"), data_dir=Path("/home/John Smith/qa/.qa"))
        )
    )
    shown = hide_paths(text)
    assert "(path hidden)" in shown
    for leak in leaks:
        assert leak not in shown, shown


def test_no_votes_on_error_turns_and_session_records_are_bounded(settings):
    from ui.web import MAX_RECORDS

    app = ChatApp(FakeService(settings, fail=QAError("The index is being rebuilt.")))
    chat, _, records = run(app, "Who co-chaired the dialogue?")[-1]
    assert records[1]["error"]
    app.like(records, gr.LikeData(None, {"index": 1, "value": chat[1]["content"], "liked": True}))
    assert read_feedback(settings) == []

    app = ChatApp(FakeService(settings))
    chat, _, records = run(app, "Who co-chaired the dialogue? " + "x" * 50_000)[-1]
    assert len(records[1]["question"]) == settings.max_query_chars
    for i in range(MAX_RECORDS + 5):
        chat, _, records = run(app, f"question {i}", chat, records)[-1]
    assert len(records) == MAX_RECORDS and max(records) == len(chat) - 1
