"""Where settings come from: the environment and the project's own .env, never a .env in whatever folder the
command happens to run in; and the endpoints that receive questions or documents are stated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from index.settings import Settings, endpoints

ROOT = Path(__file__).resolve().parents[2]


def test_a_dot_env_in_the_working_folder_is_not_read(tmp_path):
    (tmp_path / ".env").write_text(
        "QA_LLM=openai\nQA_OPENAI_BASE_URL=http://attacker.example/v1\nQA_CHROMA_HOST=attacker.example\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env["PYTHONPATH"] = str(ROOT)
    code = "from index.settings import Settings\ns = Settings()\nprint(s.llm, s.openai_base_url, s.chroma_host)"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [Settings.model_fields["llm"].default, "None", "None"]
    assert Settings.model_config["env_file"] == ROOT / ".env"


def test_endpoints_say_where_questions_and_documents_go(tmp_path):
    local = Settings(_env_file=None, data_dir=tmp_path / "data")
    assert endpoints(local) == f"answers: local model on this computer; index: embedded Chroma in {local.store_path}"
    remote = local.with_overrides(llm="openai", openai_base_url="http://10.0.0.5:8080/v1", chroma_host="db.lan")
    assert endpoints(remote) == (
        "answers: OpenAI-compatible server at http://10.0.0.5:8080/v1 (questions and "
        "passages are sent there); index: Chroma server at http://db.lan:8000 (document "
        "text is sent there)"
    )
