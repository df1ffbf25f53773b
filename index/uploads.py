"""Save files a person uploads into the seeds folder, safely.

An uploaded file's name comes from the other side of the network: it is checked and rebuilt from a small
alphabet, never used as a path as given. Unsupported types, unreadable content and files over the size limit
are refused with a message that says why, and a refused file leaves nothing behind; an operating-system error
(a full disk, a mount without hard links or with odd rules) refuses that file only. Nothing already in the
seeds folder is ever overwritten: a different file with a taken name gets a numbered name, and the same content
under another name is refused. A saved file is written under a hidden temporary name, synced to disk and then
given its name in one step, readable by its owner only (0600).
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
from index.types import IndexError_

ALLOWED_SUFFIXES = SUPPORTED_SUFFIXES  # the loader's list: whatever can be uploaded can be indexed
MAX_NAME_CHARS = 100
PART_PREFIX, PART_SUFFIX = ".upload-", ".part"  # an upload being copied; hidden from the index

# Characters a shell would run or expand, or markup would interpret. A name holding any of them is refused
# outright: such a name is far more likely a probe than a document title. Harmless punctuation that real names
# carry (`report (1).pdf`, `John's notes.txt`, `Q&A.md`, `Issue #5.md`) is accepted and becomes `_`.
_SHELL_CHARS = set(';|$`\\"<>*?{}\n\r\t')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE_RUN = re.compile(r"[^\w.-]+")


class UploadRejected(IndexError_):
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
        raise UploadRejected(
            f"{shown!r} was refused: the name contains characters that are not allowed "
            f"({' '.join(bad)}). Rename the file using letters, digits, spaces, '-' or '_'."
        )
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
        raise UploadRejected(
            f"{name} was refused: it has more than {settings.max_doc_chars:,} characters of text "
            "(the limit is QA_MAX_DOC_CHARS)."
        )


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


def _same_content_elsewhere(folder: Path, name: str, size: int, digest: str) -> str | None:
    """The name of a document in the seeds folder with exactly this content under another name, if any."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or rel.as_posix() == name:
            continue
        try:
            if path.is_file() and path.stat().st_size == size and _sha256(path) == digest:
                return rel.as_posix()
        except OSError:
            continue
    return None


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
        raise UploadRejected(
            f"{name} was refused: it is {size / 1048576:.1f} MB; the limit is {settings.upload_max_mb} MB."
        )
    if size == 0:
        raise UploadRejected(f"{name} was refused: the file is empty.")
    try:
        _check_content(source, name, settings)
        return _store(source, name, size, Path(settings.seeds_dir))
    except OSError as e:  # a full disk, a read-only or odd mount, a name too long: this file only
        raise UploadRejected(f"{name} could not be saved ({e.strerror or e}).") from None


def _store(source: Path, name: str, size: int, folder: Path) -> tuple[str, bool]:
    folder.mkdir(parents=True, exist_ok=True)
    digest = _sha256(source)
    stored, present = _free_name(folder, name, digest)
    if present:
        return stored, True
    twin = _same_content_elsewhere(folder, stored, size, digest)
    if twin is not None:
        raise UploadRejected(f"{name} was refused: the same content is already in the library as {twin}.")
    # Copy under a hidden temporary name (the index ignores dot-files), sync it to disk, then give it its name
    # in one step, never overwriting; then sync the folder, so a power cut leaves the whole file or none.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=PART_PREFIX, suffix=PART_SUFFIX)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        _place(tmp, folder / stored)
    except FileExistsError:
        raise UploadRejected(
            f"{name} was refused: another upload with this name arrived at the same time; try again."
        ) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    _fsync_folder(folder)
    return stored, False


def _place(tmp: str, target: Path) -> None:
    """Give the finished temporary file its name, failing (FileExistsError) if the name is taken."""
    try:
        os.link(tmp, target)
        return
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system (SMB, FUSE, exFAT...)
        pass
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # claims the name, or FileExistsError
    os.replace(tmp, target)  # replaces only the empty placeholder just made


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the file itself is synced
        pass
    finally:
        os.close(fd)


def remove_partial_uploads(settings: Settings) -> list[str]:
    """Delete temporary files left in the seeds folder by uploads that were interrupted (a killed server);
    called at start-up, while this process owns the store. Returns their names."""
    folder = Path(settings.seeds_dir)
    removed = []
    for path in sorted(folder.glob(f"{PART_PREFIX}*{PART_SUFFIX}")) if folder.is_dir() else []:
        try:
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path.name)
        except OSError:
            continue
    return removed


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


__all__ = [
    "ALLOWED_SUFFIXES",
    "UploadRejected",
    "UploadResult",
    "remove_partial_uploads",
    "safe_name",
    "save_upload",
    "save_uploads",
]
