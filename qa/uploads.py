"""Save files a person uploads into the seeds folder, safely.

An uploaded file's name comes from the other side of the network: it is checked and rebuilt from a small
alphabet, never used as a path as given. Unsupported types, unreadable content and files over the size limit
are refused with a message that says why, and a refused file leaves nothing behind. Nothing already in the
seeds folder is ever overwritten: a different file with a taken name gets a numbered name.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from index.formats import SUPPORTED_SUFFIXES
from index.settings import Settings
from qa.types import QAError

ALLOWED_SUFFIXES = SUPPORTED_SUFFIXES  # the loader's list: whatever can be uploaded can be indexed
MAX_NAME_CHARS = 100

# Characters a shell, a URL or a path would give meaning to. A name holding any of them is refused outright:
# such a name is far more likely a probe than a document title.
_SHELL_CHARS = set(";&|$`\\\"'<>*?!{}()[]#~%^=\n\r\t")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE_RUN = re.compile(r"[^\w.-]+")


class UploadRejected(QAError):
    """One uploaded file was refused; the message names it and says why."""


@dataclass
class UploadResult:
    saved: list[str] = field(default_factory=list)  # names now in the seeds folder
    duplicates: list[str] = field(default_factory=list)  # identical copies already there: nothing to do
    rejected: list[str] = field(default_factory=list)  # one clear message per refused file


def safe_name(original: str) -> str:
    """A file name safe to create in the seeds folder, or UploadRejected.

    Refused: empty names, folders or `..` in the name, control or shell characters, hidden (dot) or
    option-like (dash) names, unsupported types. Accepted names are NFC-normalised, runs of anything other
    than letters, digits, `.`, `_` and `-` become `_`, and the stem is shortened to fit MAX_NAME_CHARS.
    """
    shown = _CONTROL.sub("?", original or "")[:120]
    name = unicodedata.normalize("NFC", (original or "").strip())
    if not name:
        raise UploadRejected("A file without a name was refused.")
    if "/" in name or "\\" in name or ".." in name:
        raise UploadRejected(f"{shown!r} was refused: file names may not contain folders or '..'.")
    if _CONTROL.search(name):
        raise UploadRejected(f"{shown!r} was refused: the name contains control characters.")
    bad = sorted(set(name) & _SHELL_CHARS)
    if bad:
        raise UploadRejected(f"{shown!r} was refused: the name contains characters that are not allowed "
                             f"({' '.join(bad)}). Rename the file using letters, digits, spaces, '-' or '_'.")
    if name.startswith((".", "-")):
        raise UploadRejected(f"{shown!r} was refused: hidden names and names starting with '-' are not allowed.")
    stem, dot, suffix = name.rpartition(".")
    suffix = f".{suffix.lower()}" if dot else ""
    if suffix not in ALLOWED_SUFFIXES:
        raise UploadRejected(f"{shown!r} was refused: only {', '.join(ALLOWED_SUFFIXES)} files can be added.")
    stem = _UNSAFE_RUN.sub("_", stem).strip("._-")
    if not stem:
        raise UploadRejected(f"{shown!r} was refused: the name has no letters or digits.")
    return stem[: MAX_NAME_CHARS - len(suffix)] + suffix


def _check_content(path: Path, name: str, settings: Settings) -> None:
    """Refuse content the index could not read, so a bad file never lands in the seeds folder."""
    if name.endswith((".pdf", ".docx")):
        _check_extracted(path, name, settings)
        return
    data = path.read_bytes()
    if b"\x00" in data:
        raise UploadRejected(f"{name} was refused: it looks like a binary file, not text.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadRejected(f"{name} was refused: it is not UTF-8 text. Save it as UTF-8 and try again.") from None
    if not text.strip():
        raise UploadRejected(f"{name} was refused: it contains no text.")
    if len(text) > settings.max_doc_chars:
        raise UploadRejected(f"{name} was refused: it has more than {settings.max_doc_chars:,} characters of text "
                             "(the limit is QA_MAX_DOC_CHARS).")


def _check_extracted(path: Path, name: str, settings: Settings) -> None:
    """A PDF or Word file: its text is extracted in a worker process under the same budgets as the index's."""
    from index.formats import Extractor, FormatError

    pdf = name.endswith(".pdf")
    with path.open("rb") as f:
        if f.read(5 if pdf else 4) != (b"%PDF-" if pdf else b"PK\x03\x04"):
            raise UploadRejected(f"{name} was refused: it is not a {'PDF' if pdf else 'Word (.docx)'} file.")
    try:
        with Extractor(settings.max_doc_chars, settings.max_extract_seconds, settings.max_extract_mb) as extractor:
            text = extractor.extract(path, ".pdf" if pdf else ".docx").text
    except FormatError as e:
        message = str(e)
        if "encrypted" in message:
            message = "it is an encrypted PDF. Remove the password and try again"
        elif "not a readable" in message:
            message = f"the {'PDF' if pdf else 'Word file'} is damaged and cannot be read"
        raise UploadRejected(f"{name} was refused: {message}.") from None
    if not text.strip():
        if pdf:
            raise UploadRejected(f"{name} was refused: the PDF has no text layer (a scan?), so it cannot be searched.")
        raise UploadRejected(f"{name} was refused: it contains no text.")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _free_name(folder: Path, name: str, digest: str) -> tuple[str, bool]:
    """(name to use, already present): an identical file is found by content, a taken name is numbered."""
    stem, suffix = name[: -len(Path(name).suffix)], Path(name).suffix
    for i in range(1, 1000):
        candidate = name if i == 1 else f"{stem}-{i}{suffix}"
        target = folder / candidate
        if not target.exists():
            return candidate, False
        if target.is_file() and _sha256(target) == digest:
            return candidate, True
    raise UploadRejected(f"{name} was refused: too many files with this name already.")


def save_upload(source: str | Path, original_name: str, settings: Settings) -> tuple[str, bool]:
    """Check one uploaded file (a temporary path plus the name the client sent) and copy it into the seeds
    folder. Returns (stored name, True if an identical file was already there). Raises UploadRejected."""
    name = safe_name(original_name)
    source = Path(source)
    try:
        size = source.stat().st_size
    except OSError:
        raise UploadRejected(f"{name} was refused: the upload could not be read.") from None
    limit = settings.upload_max_mb * 1024 * 1024
    if size > limit:
        raise UploadRejected(f"{name} was refused: it is {size / 1048576:.1f} MB; the limit is "
                             f"{settings.upload_max_mb} MB.")
    if size == 0:
        raise UploadRejected(f"{name} was refused: the file is empty.")
    _check_content(source, name, settings)

    folder = Path(settings.seeds_dir)
    folder.mkdir(parents=True, exist_ok=True)
    digest = _sha256(source)
    stored, present = _free_name(folder, name, digest)
    if present:
        return stored, True
    # Copy under a hidden temporary name (the index ignores dot-files), then move into place in one step.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out)
        os.chmod(tmp, 0o644)
        os.link(tmp, folder / stored)  # fails instead of overwriting if the name was taken meanwhile
    except FileExistsError:
        raise UploadRejected(f"{name} was refused: another upload with this name arrived at the same time; "
                             "try again.") from None
    finally:
        os.unlink(tmp)
    return stored, False


def save_uploads(files: list[tuple[str | Path, str]], settings: Settings) -> UploadResult:
    """Save each (temporary path, original name); a refused file never stops the others."""
    result = UploadResult()
    for path, original in files:
        try:
            stored, present = save_upload(path, original, settings)
        except UploadRejected as exc:
            result.rejected.append(str(exc))
            continue
        (result.duplicates if present else result.saved).append(stored)
    return result


__all__ = ["ALLOWED_SUFFIXES", "UploadRejected", "UploadResult", "safe_name", "save_upload", "save_uploads"]
