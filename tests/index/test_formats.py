"""Word files, PDF reflow with pages, and the extraction budgets, on real files made in the test."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from index.formats import Extractor, FormatError, page_at
from index.load import load_documents
from index.split import split_document
from tests.documents import write_docx, write_pdf

HEADER = "Shared MIME-info Database Specification, version 0.21"
INSTALL = (
    "Each application that wants to register a MIME type will install a single XML file, named after the "
    "application, into the packages directory. After installing its XML file, the application MUST run the "
    "update-mime-database command to rebuild the database."
)
OVERRIDE = (
    "A file named Override.xml takes precedence over all other files in the same packages directory, so an "
    "administrator can change a type without editing the files that the applications installed."
)
CACHE = (
    "Applications must not write to the cache directly; they should instead use the tools that the system "
    "provides for this purpose, in every case."
)


def spec_pages() -> list[list[str]]:
    """Three pages with a running header, page numbers at the foot, hard line breaks and a hyphenated word."""
    return [
        [
            HEADER,
            "1 Introduction",
            *textwrap.wrap(INSTALL, 78),
            "This keeps the cached copy consistent with every package that is present on the infor-",
            "mation side of the system, whatever installed it.",
            "1",
        ],
        [
            HEADER,
            "2 Overrides",
            *textwrap.wrap(OVERRIDE, 78),
            "Installers that add a type to the database must always remember to run update-mime-",
            "database afterwards, or the change is not seen.",
            "Page 2 of 3",
        ],
        [HEADER, *textwrap.wrap(CACHE, 78), "3"],
    ]


def test_docx_text_in_reading_order_with_headings_and_table_rows(tmp_path: Path):
    write_docx(tmp_path / "manual.docx")
    (tmp_path / "notes.txt").write_text("Other notes.\n")
    docs, warnings = load_documents(tmp_path)
    assert warnings == []
    doc = {d.source: d for d in docs}["manual.docx"]
    assert doc.title == "Reservoir Operations Manual"
    assert doc.pages == ()
    blocks = doc.text.split("\n\n")
    assert blocks[:4] == [
        "Reservoir Operations Manual",
        "Inflow forecasting",
        "The operators forecast inflow every morning from the upstream gauges.",
        "Snowmelt dominates the inflow between April and June.",
    ]
    assert blocks[4].split("\n") == [
        "Month | Inflow | Release",
        "April | 820 cusecs | 600 cusecs",
        "May | 1,450 cusecs | 1,100 cusecs",
    ]
    assert blocks[5:] == ["Spillway gates", "Gate 3 must stay closed while the fish ladder is being inspected."]
    assert all(c.page is None for c in split_document(doc, 200, 40))


def test_damaged_docx_is_skipped_with_a_message(tmp_path: Path):
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "ok.txt").write_text("Fine.\n")
    docs, warnings = load_documents(tmp_path)
    assert [d.source for d in docs] == ["ok.txt"]
    assert len(warnings) == 1 and "broken.docx" in warnings[0] and "Word" in warnings[0]


def test_pdf_is_reflowed_into_paragraphs_and_offsets_keep_their_page(tmp_path: Path):
    write_pdf(tmp_path / "spec.pdf", spec_pages())
    [doc], warnings = load_documents(tmp_path)
    assert warnings == []
    text = doc.text
    assert INSTALL in text and OVERRIDE in text and CACHE in text  # hard line breaks joined
    assert "present on the information side" in text  # end-of-line hyphenation undone ...
    assert "to run update-mime-database afterwards" in text  # ... but a hyphen the document writes stays
    assert HEADER not in text and "Page 2" not in text  # running header and page numbers dropped
    assert not any(line.strip().isdigit() for line in text.split("\n"))
    assert text.split("\n\n")[:2] == ["1 Introduction", INSTALL]  # a heading stays its own paragraph
    assert len(doc.pages) == 3
    assert page_at(doc.pages, text.index("update-mime-database")) == 1
    assert page_at(doc.pages, text.index("Override.xml")) == 2
    assert page_at(doc.pages, text.index("the cache directly")) == 3
    chunks = split_document(doc, 200, 40)
    assert {c.page for c in chunks} == {1, 2, 3}
    for c in chunks:
        assert c.page == page_at(doc.pages, c.start)


def test_pdf_over_the_character_cap_is_skipped_and_the_others_are_indexed(tmp_path: Path):
    write_pdf(tmp_path / "big.pdf", [[f"Line {i} of a long report with plenty of words in it." for i in range(40)]] * 5)
    (tmp_path / "small.txt").write_text("A small note about the dam.\n")
    docs, warnings = load_documents(tmp_path, max_chars=5_000)
    assert [d.source for d in docs] == ["small.txt"]
    assert len(warnings) == 1 and "big.pdf" in warnings[0] and "5,000 characters" in warnings[0]


def test_text_file_over_the_character_cap_is_skipped(tmp_path: Path):
    (tmp_path / "huge.txt").write_text("word " * 3_000)
    (tmp_path / "small.md").write_text("# Small\n\nA note.\n")
    docs, warnings = load_documents(tmp_path, max_chars=10_000)
    assert [d.source for d in docs] == ["small.md"]
    assert len(warnings) == 1 and "huge.txt" in warnings[0] and "QA_MAX_DOC_CHARS" in warnings[0]


def test_pdf_over_the_time_budget_is_skipped_and_the_others_are_indexed(tmp_path: Path):
    write_pdf(tmp_path / "long.pdf", [[f"Line {i} of page text with a few words." for i in range(45)]] * 60)
    (tmp_path / "short.txt").write_text("A short note.\n")
    write_pdf(tmp_path / "tiny.pdf", [["One line."]])
    docs, warnings = load_documents(tmp_path, max_seconds=0.001)
    assert "short.txt" in [d.source for d in docs]
    assert any("long.pdf" in w and "took longer than 0.001 s" in w for w in warnings), warnings


def slow_extract(path, max_chars, suffix):  # runs in the worker process
    time.sleep(600)


def test_an_overrunning_worker_is_killed_and_the_next_file_gets_a_fresh_one(tmp_path: Path):
    pdf = write_pdf(tmp_path / "a.pdf", [["Readable text."]])
    with Extractor(10_000, 0.5, extract=slow_extract) as extractor:
        with pytest.raises(FormatError, match="took longer than 0.5 s"):
            extractor.extract(pdf)
        assert extractor._proc is None  # killed, not left sleeping
    with Extractor(10_000, 30) as extractor:
        worker = None
        assert "Readable text." in extractor.extract(pdf).text
        worker = extractor._proc
    assert worker is not None and not worker.is_alive()  # closed on exit


@pytest.mark.parametrize(
    "meta, expected",
    [
        ("Shared MIME-info Database", "Shared MIME-info Database"),
        ("Microsoft Word - draft3.docx", "1 Introduction"),  # a file name, not a title: the first line is
        ("Long\ntitle " * 200, ("Long title " * 200)[:249].rstrip() + "…"),  # one line, capped
    ],
)
def test_pdf_title_comes_from_its_metadata_when_it_is_a_real_one(tmp_path: Path, meta: str, expected: str):
    from pypdf import PdfReader, PdfWriter

    write_pdf(tmp_path / "plain.pdf", spec_pages())
    writer = PdfWriter(clone_from=PdfReader(tmp_path / "plain.pdf"))
    writer.add_metadata({"/Title": meta})
    with open(tmp_path / "spec.pdf", "wb") as f:
        writer.write(f)
    (tmp_path / "plain.pdf").unlink()
    [doc], _ = load_documents(tmp_path)
    assert doc.title == expected and len(doc.title) <= 250


def test_an_article_printed_to_pdf_reads_back_as_its_paragraphs(tmp_path: Path):
    """The seed article wrapped at 90 columns, 40 lines a page, a blank line between paragraphs, a running
    header and page numbers: every paragraph comes back whole (only a compound word broken at its own hyphen,
    like wide-/ranging, may lose that hyphen)."""
    from tests.conftest import SEED

    source = SEED.read_text(encoding="utf-8")
    source = source[: source.index("COMMENTS (")]
    plain = source.translate({0x201C: '"', 0x201D: '"', 0x2018: "'", 0x2019: "'", 0x2013: "-", 0x2014: "-"})
    paragraphs = [" ".join(p.split()) for p in plain.split("\n") if p.strip()]
    lines: list[str] = []
    for p in paragraphs:
        lines += [*textwrap.wrap(p, 90), ""]
    pages = [
        ["Dawn - Pakistan, China strategic dialogue", *lines[i : i + 40], str(n)]
        for n, i in enumerate(range(0, len(lines), 40), 1)
    ]
    assert len(pages) >= 3
    write_pdf(tmp_path / "article.pdf", pages)
    [doc], warnings = load_documents(tmp_path)
    assert warnings == []
    got = doc.text.replace("\u2019", "'").split("\n\n")  # Helvetica's quote character reads back as ’

    def loose(text: str) -> str:
        return text.replace("-", "")

    assert [loose(g) for g in got] == [loose(p) for p in paragraphs]
    for n, page in enumerate(pages, 1):
        first = page[1] if page[1] else page[2]
        assert page_at(doc.pages, doc.text.replace("\u2019", "'").index(first.split(" - ")[0][:40])) == n
