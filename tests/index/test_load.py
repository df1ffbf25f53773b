"""Ingestion: what reaches the index is the article's text, and no bad file stops a load."""

from __future__ import annotations

import os
from pathlib import Path

from index.load import clean_text, load_documents
from index.split import split_document
from tests.documents import write_pdf

SEED_NAME = "pakistan-china-strategic-dialogue.txt"
FOOTER_BITS = ["COMMENTS (1)", "Comments are moderated", "Comments FAQ", "on-topic and not abusive"]


def _text_pdf(path: Path, line: str) -> None:
    """A one-page PDF with one line of text (hand-written by tests/documents.py: no PDF writer needed)."""
    write_pdf(path, [[line]])


def test_seed_footer_is_cleaned_and_title_kept(seeds_dir: Path):
    docs, warnings = load_documents(seeds_dir)
    assert warnings == []
    [doc] = docs
    assert doc.source == SEED_NAME
    assert doc.title == "Pakistan, China press Taliban for verifiable action on terror"
    assert doc.subtitle.startswith("Joint communique of 7th Strategic Dialogue issued")
    assert doc.text.startswith(doc.title)  # searchable, not only metadata
    assert doc.text.endswith("on mutually convenient dates.")
    assert "\n\n\n" not in doc.text
    for bit in FOOTER_BITS:
        assert bit.lower() not in doc.text.lower()
    for chunk in split_document(doc, 500, 100):
        for bit in FOOTER_BITS:
            assert bit.lower() not in chunk.text.lower()


def test_clean_text_handles_crlf_and_blank_runs():
    title, subtitle, text = clean_text("# Title\r\nSub\r\n\r\n\r\n\r\n\r\nBody one.   \r\nBody two.\r\n\r\n\r\n")
    assert (title, subtitle) == ("Title", "Sub")
    assert text == "# Title\nSub\n\nBody one.\nBody two."


def test_long_first_line_is_not_a_title(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("word " * 100 + "\n\nsecond paragraph")
    [doc], _ = load_documents(tmp_path)
    assert doc.title == "notes" and doc.subtitle == ""


def test_bad_files_are_skipped_with_a_warning_naming_them(seeds_dir: Path):
    (seeds_dir / "empty.txt").write_text("")
    (seeds_dir / "blank.md").write_text("\n\n   \n")
    (seeds_dir / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    (seeds_dir / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (seeds_dir / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (seeds_dir / "photo.png").write_bytes(b"\x89PNG")
    os.symlink(seeds_dir / "does-not-exist.txt", seeds_dir / "dangling.txt")
    (seeds_dir / ".hidden.txt").write_text("editor junk")
    docs, warnings = load_documents(seeds_dir)
    assert [d.source for d in docs] == [SEED_NAME]
    for name in ["empty.txt", "blank.md", "binary.txt", "latin1.txt", "broken.pdf", "photo.png", "dangling.txt"]:
        assert any(name in w for w in warnings), (name, warnings)
    assert len(warnings) == 7
    assert not any(".hidden" in w for w in warnings)


def test_html_gives_visible_text_only_and_recursion_uses_posix_sources(tmp_path: Path):
    sub = tmp_path / "web" / "pages"
    sub.mkdir(parents=True)
    (sub / "page.html").write_text(
        "<html><head><title>Dam report</title><style>body{color:red}</style>"
        "<script>var secret='do not index';</script></head>"
        "<body><h1>Tarbela dam</h1><p>The dam   holds <b>water</b>.</p><noscript>enable js</noscript></body></html>"
    )
    [doc], warnings = load_documents(tmp_path)
    assert warnings == []
    assert doc.source == "web/pages/page.html"
    assert doc.title == "Dam report"
    assert "The dam holds" in doc.text and "water" in doc.text and "Tarbela dam" in doc.text
    for hidden in ["secret", "color:red", "enable js", "<b>"]:
        assert hidden not in doc.text


def test_pdf_text_is_read_and_encrypted_pdf_skipped(tmp_path: Path):
    _text_pdf(tmp_path / "memo.pdf", "The memo names Gwadar Port.")
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(tmp_path / "memo.pdf"))
    writer.encrypt("secret-password")
    with open(tmp_path / "locked.pdf", "wb") as f:
        writer.write(f)
    docs, warnings = load_documents(tmp_path)
    assert [d.source for d in docs] == ["memo.pdf"]
    assert "Gwadar Port" in docs[0].text
    assert len(warnings) == 1 and "locked.pdf" in warnings[0] and "encrypted" in warnings[0]


def test_missing_seeds_folder_is_a_warning_not_a_crash(tmp_path: Path):
    docs, warnings = load_documents(tmp_path / "nope")
    assert docs == [] and "nope" in warnings[0]


def test_titles_are_one_short_line_whatever_the_file_says(tmp_path: Path):
    """A huge or multi-line HTML <title> (copied into every chunk's metadata) is cut to one line of 250
    characters; so are first-line titles, subtitles and file-name titles."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    huge = "Budget\n\tReport " + "A" * 100_000
    (seeds / "page.html").write_text(f"<title>{huge}</title><p>The budget grew.</p>", encoding="utf-8")
    (seeds / "plain.txt").write_text("Short title\n" + "Sub " * 62 + "\n\nBody text.", encoding="utf-8")
    (seeds / ("n" * 240 + ".txt")).write_text("\n" + "x" * 300 + "\n", encoding="utf-8")
    docs, warnings = load_documents(seeds)
    assert warnings == [] and len(docs) == 3
    for doc in docs:
        assert len(doc.title) <= 250 and len(doc.subtitle) <= 250, doc.source
        assert "\n" not in doc.title + doc.subtitle and "\t" not in doc.title + doc.subtitle
    page = next(d for d in docs if d.source == "page.html")
    assert page.title.startswith("Budget Report AAA") and page.title.endswith("…")
    chunks = split_document(page, 500, 100)
    assert all(len(c.title) <= 250 for c in chunks)


def test_terminal_escape_sequences_and_control_characters_are_removed(tmp_path: Path):
    """Document text is printed by the CLI: escape sequences (title change, screen clear, clipboard write) and
    control characters other than newline and tab never reach it; the words around them stay."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    raw = (
        "\x1b]0;PWNED\x07Title\x1b[2J here\nThe \x1b[31mred\x1b[0m fox\x9b31m ran\x07.\tTabbed\x00."
        "\x1b]52;c;ZXZpbA==\x1b\\ Done\x0cNext page.\x7f"
    )
    (seeds / "a.txt").write_bytes(raw.replace("\x00", "").encode("utf-8"))
    docs, _ = load_documents(seeds)
    text = docs[0].text
    assert "PWNED" not in text and "ZXZpbA" not in text
    assert not [ch for ch in text if (ord(ch) < 32 and ch not in "\n\t") or 0x7F <= ord(ch) <= 0x9F]
    assert text.startswith("Title here\nThe red fox ran.\tTabbed. Done\nNext page.")
    assert docs[0].title == "Title here"
    title, _, cleaned = clean_text("\x1b[1mBold\x1b[0m heading\nline")
    assert (title, cleaned) == ("Bold heading", "Bold heading\nline")
