"""The Gradio chat: streamed answers beside their cited passages, document upload and index rebuild.

build_app(service) lays out the page and wires its events to a ChatApp (ui/web_chat.py), which holds the logic
and is testable without a browser. serve(settings) starts the server on loopback unless told otherwise. Text
from people and documents reaches the page only through ui.web_render, which escapes it.
"""

from __future__ import annotations

import ipaddress
import logging
import threading

import gradio as gr

from index.owner import claim_store
from index.settings import Settings, endpoints
from qa.service import QAService
from index.uploads import ALLOWED_SUFFIXES, remove_partial_uploads
from ui import web_render as render
from ui.gate import AnswerGate
from ui.web_chat import MAX_RECORDS, NO_INDEX, UNEXPECTED, ChatApp, hide_paths

log = logging.getLogger(__name__)

CSS = """
#qa-sources-box { max-height: 70vh; overflow-y: auto; }
.qa-sources h3 { margin: 0 0 6px; font-size: 1.05em; }
.qa-passage { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
  margin: 8px 0; scroll-margin: 16px; }
.qa-passage.qa-cited { border-left: 4px solid var(--color-accent); }
.qa-passage header { display: flex; flex-wrap: wrap; gap: .4em; align-items: baseline; font-size: .86em; }
.qa-n, .qa-title { font-weight: 600; }
.qa-where { color: var(--body-text-color-subdued); margin-left: auto; }
.qa-text { white-space: pre-wrap; margin: 6px 0 0; font-size: .92em; line-height: 1.45; }
mark.qa-quote { background: #fde68a; color: #111; padding: 0 1px; border-radius: 2px; }
.qa-source-list { margin: 0 0 6px 1.1em; padding: 0; font-size: .9em; }
.qa-source-list q { color: var(--body-text-color-subdued); }
.qa-flash { animation: qa-flash 1.8s ease-out; }
@keyframes qa-flash { from { box-shadow: 0 0 0 3px var(--color-accent); } to { box-shadow: 0 0 0 0 transparent; } }
a.qa-cite { font-weight: 600; text-decoration: none; cursor: pointer; padding: 0 1px; }
.qa-note, .qa-empty, .qa-status { color: var(--body-text-color-subdued); font-size: .9em; }
.qa-cursor { opacity: .6; }
.qa-progress progress { vertical-align: middle; width: 12em; }
.qa-progress.qa-error { color: var(--error-text-color, #b91c1c); }
#qa-chat .message-content .md { white-space: pre-wrap; }
"""

# Marker and source links scroll their passage into view (opening "Other passages" if it is folded) and flash
# it. One delegated listener: chat messages are re-rendered all the time, so per-element handlers would be lost.
HEAD = """
<script>
(() => {
  document.addEventListener('click', (ev) => {
    const link = ev.target.closest && ev.target.closest('a.qa-cite, a.qa-source-link');
    if (!link) return;
    ev.preventDefault();
    ev.stopPropagation();
    const el = document.getElementById((link.getAttribute('href') || '').slice(1));
    if (!el) { link.title = 'The sources panel shows the latest answer'; return; }
    const folded = el.closest('details');
    if (folded) folded.open = true;
    el.scrollIntoView({behavior: 'smooth', block: 'nearest'});
    el.classList.remove('qa-flash'); void el.offsetWidth; el.classList.add('qa-flash');
  }, true);
  // The chat's copy button copies a message's content, which is our escaped HTML: give the clipboard the plain
  // text instead (tags dropped, the entities html.escape writes decoded), for copies made from the chat only.
  const plain = (html) => html.replace(/<[^>]*>/g, '').replace(/&(amp|lt|gt|quot|#x27);/g,
    (m, e) => ({amp: '&', lt: '<', gt: '>', quot: '"', '#x27': "'"})[e]).replace(/\u258d$/, '');
  window.qaPlainText = plain;
  const clip = navigator.clipboard;
  if (clip && clip.writeText) {
    const write = clip.writeText.bind(clip);
    clip.writeText = (text) => {
      const inChat = document.activeElement && document.activeElement.closest &&
        document.activeElement.closest('#qa-chat');
      return write(inChat && typeof text === 'string' ? plain(text) : text);
    };
  }
})();
</script>
"""

FOCUS_QUESTION = "() => { document.querySelector('#qa-question textarea')?.focus(); }"


def _chat_column():
    """The conversation, the question box and its buttons (inside the page's left column)."""
    chat = gr.Chatbot(
        elem_id="qa-chat",
        height=520,
        show_label=False,
        layout="bubble",
        render_markdown=False,
        sanitize_html=True,
        allow_tags=False,
        feedback_options=("Like", "Dislike"),
        buttons=["copy"],
        placeholder="Answers cite the passages they come from, shown on the right.",
    )
    with gr.Row(equal_height=True):
        question = gr.Textbox(
            elem_id="qa-question",
            show_label=False,
            scale=8,
            lines=1,
            max_lines=6,
            autofocus=True,
            placeholder="Ask a question about the documents and press Enter",
        )
        send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="qa-send")
        stop = gr.Button("Stop", variant="stop", scale=1, min_width=80, elem_id="qa-stop")
    new_chat = gr.Button("New chat", size="sm", elem_id="qa-new-chat")
    return chat, question, send, stop, new_chat


def build_app(service: QAService, gate: AnswerGate | None = None) -> gr.Blocks:
    """The chat page over one service. Call .queue() yourself or use serve(), which sizes it."""
    app = ChatApp(service, gate)
    s = service.settings
    answer_limit = {"concurrency_id": "answer", "concurrency_limit": max(1, s.llm_parallel)}
    rebuild_limit = {"concurrency_id": "rebuild", "concurrency_limit": 1}
    private = {"queue": False, "api_visibility": "private"}

    with gr.Blocks(title="Grounded QA", analytics_enabled=False) as demo:
        gr.HTML('<h2 style="margin:0">Ask your documents</h2>', js_on_load=None)
        status = gr.HTML(app.status(), elem_id="qa-status-box", js_on_load=None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chat, question, send, stop, new_chat = _chat_column()
            with gr.Column(scale=2):
                sources = gr.HTML(render.sources_placeholder(), elem_id="qa-sources-box", js_on_load=None)
        with gr.Row(equal_height=True):
            upload = gr.UploadButton(
                "Add documents",
                file_count="multiple",
                size="sm",
                scale=0,
                min_width=160,
                elem_id="qa-upload",
                file_types=list(ALLOWED_SUFFIXES),
            )
            rebuild = gr.Button("Rebuild index", size="sm", scale=0, min_width=160, elem_id="qa-rebuild")
            gr.HTML(
                f'<span class="qa-note">.txt, .md, .html, .pdf or .docx, up to {s.upload_max_mb} MB each</span>',
                js_on_load=None,
            )
        progress = gr.HTML("", elem_id="qa-progress-box", js_on_load=None)
        pending = gr.Textbox(visible=False)
        records = gr.State({})

        answering = []
        for trigger in (question.submit, send.click):
            step = trigger(app.take_question, [question], [question, pending], **private)
            step.then(None, js=FOCUS_QUESTION, **private)
            api = {"api_name": "chat"} if not answering else {"api_visibility": "private"}
            answering.append(
                step.then(
                    app.respond,
                    [pending, chat, records],
                    [chat, sources, records],
                    trigger_mode="multiple",  # sent even while a stopped answer winds down (take_question)
                    **api,
                    **answer_limit,
                )
            )
        picked = chat.example_select(app.pick_example, None, [question, pending], **private)
        answering.append(
            picked.then(
                app.respond,
                [pending, chat, records],
                [chat, sources, records],
                api_visibility="private",
                trigger_mode="multiple",
                **answer_limit,
            )
        )
        stop.click(app.stop_button, [chat], [chat], cancels=answering, **private)
        new_chat.click(app.new_chat, None, [chat, records, sources], cancels=answering, **private)
        chat.clear(app.new_chat, None, [chat, records, sources], cancels=answering, **private)
        chat.like(app.like, [records], None, api_visibility="private")  # queued: gr.Info needs the queue

        rebuild.click(app.rebuild, None, [progress, status], api_name="rebuild", **rebuild_limit)
        upload.upload(app.add_documents, [upload], [progress, status], api_name="add_documents", **rebuild_limit)
        demo.load(app.on_load, None, [status, chat], **private)
        if getattr(service, "watch_status", None) is not None:  # a watched folder rebuilds by itself: keep it shown
            gr.Timer(3).tick(app.status, None, [status], **private)
        gr.api(app.ask, api_name="ask", **answer_limit)
    return demo


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool, auth: str | None = None, no_auth: bool = False) -> None:
    """Refuse to listen beyond this computer unless asked to explicitly, and to serve the network without a
    login unless that is asked for explicitly too (ValueError with what to do)."""
    if _loopback(host):
        return
    if not allow_remote:
        raise ValueError(
            f"Refusing to listen on {host}: by default only this computer (127.0.0.1) may connect. "
            "Pass --allow-remote (and set QA_AUTH=user:password) to serve other machines."
        )
    if not auth and not no_auth:
        raise ValueError(
            f"Refusing to serve {host} without a login: anyone on the network could read the "
            "documents and add files. Set QA_AUTH=user:password, or pass --no-auth to serve "
            "without one."
        )


def check_port(host: str, port: int, instead: str = "Pass --port N or set QA_PORT to use another port.") -> None:
    """Raise OSError (with what to do `instead`) when host:port cannot be bound, before anything loads: a failed
    start must not leave the model loading in another thread while the process exits."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise OSError(errno.EINVAL, f"Cannot listen on {host}: {exc.strerror or exc}.") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise OSError(
                exc.errno, f"Cannot listen on {host}:{port}: {exc.strerror or exc} (another server?). {instead}"
            ) from exc


def allowed_hosts(host: str, extra: str | None = None) -> list[str]:
    """The names a request's Host header may carry: the bound name, this computer's loopback names and the
    comma-separated `extra` names (QA_ALLOWED_HOSTS). Any other name is refused, so a web page whose name is
    re-pointed at this computer (DNS rebinding) cannot reach the server. On a wildcard address (0.0.0.0, ::)
    the machine's own names and addresses are allowed as well."""
    names = {"127.0.0.1", "localhost", "::1", host}
    if host in ("0.0.0.0", "::", ""):
        import socket

        names |= {socket.gethostname(), socket.getfqdn()}
        try:
            names |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
        except OSError:
            pass
    names |= {name.strip() for name in (extra or "").split(",")}
    return sorted(n.lower() for n in names if n and "*" not in n)


def _auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not (sep and user and password):
        raise ValueError("QA_AUTH must look like user:password.")
    return user, password


def launch(
    service: QAService, host: str, port: int, *, allow_remote: bool = False, no_auth: bool = False, block: bool = True
):
    """Start the page and the OpenAI-compatible API (/v1, ui/openai_api.py) for `service` on host:port; returns
    (app, url) when block is False (tests). Both share one limit on concurrent answers."""
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from ui.openai_api import OpenAIApi, check_api_key

    s = service.settings
    check_api_key(s, allow_remote)
    check_host(host, allow_remote, s.auth, no_auth)
    trusted = Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host, s.allowed_hosts), www_redirect=False)
    gate = AnswerGate(s.llm_parallel)
    demo = build_app(service, gate).queue(max_size=s.max_queue, default_concurrency_limit=4)
    theme = gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    fast_app, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        auth=_auth(s.auth),
        max_file_size=f"{s.upload_max_mb}mb",
        prevent_thread_lock=not block,
        show_error=False,
        quiet=not block,
        ssr_mode=False,
        footer_links=["api"],
        css=CSS,
        head=HEAD,
        theme=theme,
        run_history=False,
        app_kwargs={"middleware": [trusted], "routes": OpenAIApi(service, gate).routes()},
    )
    return demo, url


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    allow_remote: bool = False,
    no_auth: bool = False,
    watch: bool = True,
) -> None:
    """Serve the chat until interrupted. The models load in the background while the page starts. With `watch`,
    a change in the documents folder triggers the incremental rebuild (index/watch.py)."""
    host, port = host or settings.host, port or settings.port
    from ui.openai_api import check_api_key

    check_api_key(settings, allow_remote)
    check_host(host, allow_remote, settings.auth, no_auth)
    check_port(host, port)
    _auth(settings.auth)
    claim_store(settings, "serve")  # held until exit: `qa index build` in another process is refused meanwhile
    log.info("serving http://%s:%s; %s", host, port, endpoints(settings))
    for name in remove_partial_uploads(settings):
        log.info("removed %s, left by an interrupted upload", name)
    service = QAService(settings)

    def warm_up() -> None:
        try:
            service.warm_up()
        except Exception:  # noqa: BLE001 - the first question reports the problem to the person
            log.warning("warm-up failed", exc_info=True)

    threading.Thread(target=warm_up, name="qa-warm-up", daemon=True).start()
    if watch:
        from index.types import IndexBusy
        from index.watch import FolderWatcher

        watcher = FolderWatcher(
            settings.seeds_dir,
            lambda: service.rebuild(force=False),
            debounce=settings.watch_debounce_seconds,
            retry_on=(IndexBusy,),
        ).start(initial=False)
        service.watch_status = lambda: hide_paths(watcher.status)
    launch(service, host, port, allow_remote=allow_remote, no_auth=no_auth)


__all__ = [
    "MAX_RECORDS",
    "NO_INDEX",
    "UNEXPECTED",
    "ChatApp",
    "allowed_hosts",
    "build_app",
    "check_host",
    "check_port",
    "hide_paths",
    "launch",
    "serve",
]
