"""The server is closed by default, tested with real HTTP requests against real servers (extractive backend):
requests for another host name are refused (DNS rebinding), Gradio's run history is off, every event that
changes state needs the login when one is set (also when called by fn_index through /queue/join), and serving
the network without a login needs an explicit --no-auth."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest

from index import store
from tests.servers import start_server, stop_process


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def test_requests_for_another_host_name_are_refused(page_server):
    """A page on evil.example that rebinds its name to 127.0.0.1 sends `Host: evil.example`: refused."""
    port = urllib.parse.urlsplit(page_server.url).port
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}", f"localhost.:{port}x"):
        r = httpx.get(page_server.url, headers={"Host": host}, timeout=30)
        assert r.status_code in (400, 421), (host, r.status_code)
        assert "Ask your documents" not in r.text
        r = httpx.post(
            page_server.url + "gradio_api/queue/join",
            headers={"Host": host},
            timeout=30,
            json={"data": [], "fn_index": 0, "session_hash": "rebind"},
        )
        assert r.status_code in (400, 421), (host, r.status_code)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        r = httpx.get(page_server.url + "gradio_api/info", headers={"Host": host}, timeout=30)
        assert r.status_code == 200, (host, r.status_code)


def test_the_server_states_where_questions_and_documents_go(page_server):
    log = page_server.log.read_text()
    assert f"answers: extractive (no model); index: embedded Chroma in {page_server.data_dir / 'store'}" in log


def test_run_history_is_off(page_server):
    """Questions, answers and passages are not kept in the browser's run history, and its page is gone."""
    config = httpx.get(page_server.url + "config", timeout=30).json()
    assert config.get("run_history") is False
    assert httpx.get(page_server.url + "gradio_api/runs", timeout=30).status_code == 404


def _dependencies(config: dict) -> dict[int, dict]:
    return {d["id"]: d for d in config["dependencies"]}


@pytest.mark.slow  # starts a page server
def test_every_event_needs_the_login_when_one_is_set(tmp_path):
    """Without the login, no event runs: not the named endpoints, not the private ones (like, upload, rebuild)
    called by their fn_index, not a file upload. With it, a private event called by fn_index runs.
    (Also: the server removes a partial upload left in the seeds folder by a killed server when it starts.)"""
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / ".upload-k1ll3d.part").write_bytes(b"half an upload")
    server, proc = start_server(tmp_path, "guard-auth-server", QA_LLM="extractive", QA_AUTH="ana:s3cret-pass")
    try:
        assert not (server.seeds_dir / ".upload-k1ll3d.part").exists()
        anonymous = httpx.Client(base_url=server.url, timeout=30)
        assert anonymous.get("config").status_code == 401
        logged_in = httpx.Client(base_url=server.url, timeout=30)
        r = logged_in.post("login", data={"username": "ana", "password": "s3cret-pass"})
        assert r.status_code == 200, r.text
        deps = _dependencies(logged_in.get("config").json())
        named = {d.get("api_name"): i for i, d in deps.items()}
        assert {"rebuild", "add_documents", "chat", "ask"} <= set(named)
        for fn_index in deps:
            r = anonymous.post("gradio_api/queue/join", json={"data": [], "fn_index": fn_index, "session_hash": "anon"})
            assert r.status_code == 401, (deps[fn_index].get("api_name"), r.status_code)
            r = anonymous.post(
                "gradio_api/run/predict", json={"data": [], "fn_index": fn_index, "session_hash": "anon"}
            )
            assert r.status_code == 401, (deps[fn_index].get("api_name"), r.status_code)
        r = anonymous.post("gradio_api/upload", files={"files": ("x.txt", b"Some text.", "text/plain")})
        assert r.status_code == 401
        for api_name in ("rebuild", "add_documents", "ask"):
            assert anonymous.post(f"gradio_api/call/{api_name}", json={"data": []}).status_code == 401
        assert not list(server.seeds_dir.parent.rglob("feedback.jsonl"))
        assert not (server.data_dir / "store" / store.POINTER).exists()  # nothing was built

        # Logged in, the private `like` event (found by fn_index) is accepted by the queue.
        like = next(i for i, d in deps.items() if any(t[1] == "like" for t in d.get("targets", [])))
        r = logged_in.post(
            "gradio_api/queue/join",
            json={"data": [{}, None], "fn_index": like, "session_hash": "ana", "event_data": {}},
        )
        assert r.status_code == 200, r.text
    finally:
        stop_process(proc)


def test_serving_the_network_without_a_login_needs_no_auth(settings, monkeypatch):
    """--allow-remote without QA_AUTH refuses to start (before anything loads) unless --no-auth is passed."""
    import ui.web

    class Loaded(Exception):
        pass

    def service(_settings):
        raise Loaded

    monkeypatch.setattr(ui.web, "QAService", service)
    monkeypatch.setattr(ui.web, "claim_store", lambda *a: None)
    keyed = settings.with_overrides(api_key="k" * 32)  # the HTTP API always wants its key on the network
    with pytest.raises(ValueError, match="--no-auth"):
        ui.web.serve(keyed, host="0.0.0.0", allow_remote=True)
    with pytest.raises(ValueError, match="QA_API_KEY"):
        ui.web.serve(settings.with_overrides(auth="ana:s3cret-pass"), host="0.0.0.0", allow_remote=True)
    with pytest.raises(Loaded):  # past the checks
        ui.web.serve(keyed.with_overrides(auth="ana:s3cret-pass"), host="0.0.0.0", allow_remote=True)
    with pytest.raises(Loaded):
        ui.web.serve(keyed, host="0.0.0.0", allow_remote=True, no_auth=True)
    with pytest.raises(Loaded):  # loopback needs neither
        ui.web.serve(settings, host="127.0.0.1")


def test_allowed_host_names_follow_the_bound_address():
    from ui.web import allowed_hosts

    assert set(allowed_hosts("127.0.0.1")) >= {"127.0.0.1", "localhost", "::1"}
    assert "evil.example" not in allowed_hosts("127.0.0.1")
    assert "qa.lan" in allowed_hosts("qa.lan") and "files.lan" in allowed_hosts("qa.lan", "files.lan, x.lan")
    assert "*" not in allowed_hosts("0.0.0.0")


def test_command_line_readers_wait_their_turn_while_the_server_owns_the_store(page_server):
    """Opening Chroma's embedded store writes to it (measured: chroma.sqlite3 and the vector segment change on
    every open), so `qa ask`/`qa search` beside a running server are refused with what to do instead, before
    touching the store."""
    from index.owner import store_owner
    from index.settings import Settings
    from tests.reliability.qa_cli import assert_no_traceback, run_qa

    owner = store_owner(Settings(_env_file=None, data_dir=page_server.data_dir))
    assert owner is not None and owner[0] == "serve"
    chroma = page_server.data_dir / "store" / "chroma" / "chroma.sqlite3"
    before = chroma.stat().st_mtime_ns
    for args in (["ask", "--json", "--llm", "extractive", "Who co-chaired the dialogue?"], ["search", "co-chaired"]):
        out = run_qa(args, page_server.seeds_dir, page_server.data_dir, timeout=120)
        assert out.returncode == 1, out.stdout
        assert f"in use by a running `qa serve` (pid {owner[1]})" in out.stderr
        assert "ask through the page or its /ask API" in out.stderr
        assert_no_traceback(out.stdout, out.stderr)
    assert chroma.stat().st_mtime_ns == before
