"""Real PDF and Word files for tests, written without a PDF writer (hand-made PDF objects) or with python-docx."""

from __future__ import annotations

from pathlib import Path


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A PDF with one page per list of lines, each line drawn 14 points below the previous one (Helvetica 11)."""
    objects: list[bytes] = [b"", b""]  # catalog and page tree, filled in below
    kids = []
    font = 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for lines in pages:
        ops = ["BT /F1 11 Tf"]
        for i, line in enumerate(lines):
            ops.append(f"1 0 0 1 72 {740 - 14 * i} Tm ({_escape(line)}) Tj")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (content, font)
        )
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def write_pdf(path: Path, pages: list[list[str]]) -> Path:
    path.write_bytes(pdf_bytes(pages))
    return path


def write_docx(path: Path) -> Path:
    """A Word file with a title, headings, paragraphs, a list and a table (made by python-docx)."""
    import docx

    d = docx.Document()
    d.add_heading("Reservoir Operations Manual", level=0)
    d.add_heading("Inflow forecasting", level=1)
    d.add_paragraph("The operators forecast inflow every morning from the upstream gauges.")
    d.add_paragraph("Snowmelt dominates the inflow between April and June.")
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate(
        [["Month", "Inflow", "Release"], ["April", "820 cusecs", "600 cusecs"], ["May", "1,450 cusecs", "1,100 cusecs"]]
    ):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_heading("Spillway gates", level=1)
    d.add_paragraph("Gate 3 must stay closed while the fish ladder is being inspected.")
    d.save(str(path))
    return path
