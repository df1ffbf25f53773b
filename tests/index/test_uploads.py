"""Uploads: hostile names and contents are refused with a clear message and leave the seeds folder untouched."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from index.uploads import UploadRejected, safe_name, save_upload, save_uploads


def text_pdf(text: str) -> bytes:
    """A minimal one-page PDF whose text layer holds `text` (pypdf can extract it)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


@pytest.fixture
def upload(tmp_path):
    """Write bytes to a temporary upload file outside the seeds folder and return its path."""
    folder = tmp_path / "incoming"
    folder.mkdir()

    def make(data: bytes, name: str = "upload.bin") -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return make


def seeds_listing(settings) -> list[str]:
    return sorted(p.name for p in Path(settings.seeds_dir).iterdir())


@pytest.mark.parametrize(
    "name, expected",
    [
        ("notes.txt", "notes.txt"),
        ("My Notes 2024.md", "My_Notes_2024.md"),
        ("Report.PDF", "Report.pdf"),
        ("page.HTM", "page.htm"),
        ("café_über.txt", "café_über.txt"),
        ("a, b + c.txt", "a_b_c.txt"),
        ("x" * 300 + ".txt", "x" * 96 + ".txt"),
        ("report (1).pdf", "report_1.pdf"),
        ("John's notes.txt", "John_s_notes.txt"),
        ("Q&A.md", "Q_A.md"),
        ("Issue #5.md", "Issue_5.md"),
        ("draft [v2] = final!.txt", "draft_v2_final.txt"),
        ("50% ~ ^done.html", "50_done.html"),
    ],
)
def test_safe_name_rebuilds_names_from_a_small_alphabet(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize(
    "name, reason",
    [
        ("../evil.txt", "folders"),
        ("../../etc/passwd.txt", "folders"),
        ("sub/dir.txt", "folders"),
        ("..\\win.txt", "folders"),
        ("a..txt", "'..'"),
        ("rm -rf $(HOME).txt", "not allowed"),
        ("a{b}.txt", "not allowed"),
        ("x;reboot.txt", "not allowed"),
        ("a|b.txt", "not allowed"),
        ("`id`.md", "not allowed"),
        ("<img src=x onerror=alert(1)>.html", "not allowed"),
        (".bashrc.txt", "hidden"),
        (".hidden", "hidden"),
        ("-rf.txt", "'-'"),
        ("nul\x00byte.txt", "control"),
        ("script.sh", "only .txt"),
        ("archive.tar.gz", "only .txt"),
        ("noextension", "only .txt"),
        ("", "without a name"),
        ("   ", "without a name"),
        ("___.txt", "no letters"),
    ],
)
def test_safe_name_refuses_paths_shell_characters_hidden_and_unsupported(name, reason):
    with pytest.raises(UploadRejected) as err:
        safe_name(name)
    assert reason in str(err.value)


def test_text_upload_lands_in_seeds_under_its_sanitised_name(settings, upload):
    src = upload(b"Gwadar port was discussed.\n", "whatever-temp-name")
    stored, present = save_upload(src, "Port notes.txt", settings)
    assert (stored, present) == ("Port_notes.txt", False)
    assert (settings.seeds_dir / stored).read_bytes() == b"Gwadar port was discussed.\n"
    assert not [p for p in settings.seeds_dir.iterdir() if p.name.startswith(".")], "temporary file left behind"


def test_traversal_name_never_writes_outside_seeds(settings, upload, tmp_path):
    before = seeds_listing(settings)
    src = upload(b"owned\n")
    with pytest.raises(UploadRejected):
        save_upload(src, "../escaped.txt", settings)
    assert not (tmp_path / "escaped.txt").exists()
    assert seeds_listing(settings) == before


def test_pdf_with_text_is_accepted(settings, upload):
    stored, _ = save_upload(upload(text_pdf("Hello from a PDF")), "paper.pdf", settings)
    assert (settings.seeds_dir / stored).read_bytes().startswith(b"%PDF-")


@pytest.mark.parametrize(
    "data, name, reason",
    [
        (b"", "empty.txt", "empty"),
        (b"   \n\t\n", "blank.md", "no text"),
        (b"\xff\xfe\xfa invalid utf-8", "latin.txt", "not UTF-8"),
        (b"text\x00with nul", "binary.txt", "binary"),
        (b"just text, not a pdf", "fake.pdf", "not a PDF"),
        (b"%PDF-1.4\n garbage garbage", "broken.pdf", "damaged"),
        (b"just text, not a word file", "fake.docx", "not a Word (.docx) file"),
        (b"PK\x03\x04 truncated zip", "broken.docx", "damaged"),
    ],
)
def test_unreadable_contents_are_refused_and_leave_nothing(settings, upload, data, name, reason):
    before = seeds_listing(settings)
    with pytest.raises(UploadRejected) as err:
        save_upload(upload(data), name, settings)
    assert reason in str(err.value)
    assert seeds_listing(settings) == before


def test_word_file_is_accepted_and_indexed(settings, upload, tmp_path):
    from index.load import load_documents
    from tests.documents import write_docx

    stored, present = save_upload(write_docx(tmp_path / "incoming.bin"), "Operations Manual.docx", settings)
    assert (stored, present) == ("Operations_Manual.docx", False)
    docs, warnings = load_documents(settings.seeds_dir)
    assert warnings == [] and "Operations_Manual.docx" in [d.source for d in docs]


def test_pdf_over_the_character_cap_is_refused(settings, upload):
    before = seeds_listing(settings)
    with pytest.raises(UploadRejected, match="more than 10 characters"):
        save_upload(
            upload(text_pdf("Hello from a PDF with more than ten characters")),
            "long.pdf",
            settings.with_overrides(max_doc_chars=10),
        )
    assert seeds_listing(settings) == before


def test_encrypted_pdf_is_refused(settings, upload):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(text_pdf("secret"))))
    writer.encrypt("pw", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(UploadRejected, match="encrypted"):
        save_upload(upload(buf.getvalue()), "locked.pdf", settings)


def test_file_over_the_size_limit_is_refused(settings, upload):
    small = settings.with_overrides(upload_max_mb=1)
    src = upload(b"a" * (1024 * 1024 + 1))
    with pytest.raises(UploadRejected, match="the limit is 1 MB"):
        save_upload(src, "big.txt", small)
    assert "big.txt" not in seeds_listing(small)


def test_existing_files_are_never_overwritten(settings, upload):
    seed = next(settings.seeds_dir.iterdir())
    original = seed.read_bytes()
    stored, present = save_upload(upload(b"a different article\n"), seed.name, settings)
    assert stored == seed.stem + "-2" + seed.suffix and not present
    assert seed.read_bytes() == original
    # The same bytes again are recognised as already present, under either name.
    assert save_upload(upload(original), seed.name, settings) == (seed.name, True)
    assert save_upload(upload(b"a different article\n"), seed.name, settings) == (stored, True)


def test_batch_keeps_good_files_and_explains_each_refusal(settings, upload):
    result = save_uploads(
        [
            (upload(b"one\n", "a"), "one.txt"),
            (upload(b"two\n", "b"), "../two.txt"),
            (upload(b"#!/bin/sh\n", "c"), "run.sh"),
        ],
        settings,
    )
    assert result.saved == ["one.txt"]
    assert len(result.rejected) == 2
    assert "'../two.txt'" in result.rejected[0] and "'run.sh'" in result.rejected[1]


def test_stored_file_is_readable_by_the_indexer(settings, upload):
    from index.load import load_documents

    save_upload(upload(b"<h1>Title</h1><script>alert(1)</script><p>Body text.</p>"), "page.html", settings)
    docs, warnings = load_documents(settings.seeds_dir)
    assert "page.html" in [d.source for d in docs]
    assert not warnings
    assert os.stat(settings.seeds_dir / "page.html").st_mode & 0o777 == 0o600


def test_an_os_error_refuses_that_file_only_and_leaves_nothing(settings, upload, monkeypatch):
    """A full disk while one file is copied: that file gets a clear refusal, the others are saved."""
    import errno
    import shutil

    real_copy = shutil.copyfileobj

    def copy(src, dst, *args):
        if b"fills the disk" in src.read(100):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        src.seek(0)
        return real_copy(src, dst, *args)

    monkeypatch.setattr(shutil, "copyfileobj", copy)
    result = save_uploads(
        [
            (upload(b"one\n", "a"), "one.txt"),
            (upload(b"this fills the disk\n", "b"), "big.txt"),
            (upload(b"three\n", "c"), "three.txt"),
        ],
        settings,
    )
    assert result.saved == ["one.txt", "three.txt"]
    assert result.rejected == ["big.txt could not be saved (No space left on device)."]
    assert not [p for p in settings.seeds_dir.iterdir() if p.name.startswith(".") or p.name == "big.txt"]


def test_a_folder_without_hard_links_still_takes_uploads(settings, upload, monkeypatch):
    """Some mounts (SMB, FUSE, exFAT) refuse os.link: the file is moved into place instead, never overwriting."""
    import errno

    def no_links(*_args, **_kwargs):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", no_links)
    assert save_upload(upload(b"linked or not\n"), "notes.txt", settings) == ("notes.txt", False)
    assert (settings.seeds_dir / "notes.txt").read_bytes() == b"linked or not\n"
    assert save_upload(upload(b"other text\n"), "notes.txt", settings) == ("notes-2.txt", False)
    assert (settings.seeds_dir / "notes.txt").read_bytes() == b"linked or not\n"
    assert not [p for p in settings.seeds_dir.iterdir() if p.name.startswith(".")]


def test_the_same_content_under_another_name_is_refused(settings, upload):
    seed = next(settings.seeds_dir.iterdir())
    before = seeds_listing(settings)
    with pytest.raises(UploadRejected, match=f"already in the library as {seed.name}"):
        save_upload(upload(seed.read_bytes()), "copy of the article.txt", settings)
    assert seeds_listing(settings) == before


def test_uploads_are_synced_to_disk_before_they_appear(settings, upload, monkeypatch):
    """The copy is fsynced before it takes its name, and the folder after (a power cut leaves no empty file)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    save_upload(upload(b"durable\n"), "durable.txt", settings)
    assert any(".upload-" in p for p in synced) and str(settings.seeds_dir) in synced


def test_stale_partial_uploads_are_removed(settings):
    from index.uploads import remove_partial_uploads

    (settings.seeds_dir / ".upload-abc123.part").write_bytes(b"half a file")
    (settings.seeds_dir / ".keep-me").write_bytes(b"not ours")
    assert remove_partial_uploads(settings) == [".upload-abc123.part"]
    assert seeds_listing(settings) == [".keep-me", "pakistan-china-strategic-dialogue.txt"]
