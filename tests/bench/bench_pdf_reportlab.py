#!/usr/bin/python3
"""ReportLab's side of `make bench-pdf`: the same table as spool-pdf, from the same CSV,
written the two ways a Python team would: platypus `LongTable` (the idiomatic table API,
Paragraph cells so text wraps, "Page N of M" through the usual NumberedCanvas), and by
hand on the canvas (a layout pass for the page count, then drawString per line).

Both use the same DejaVu TrueType fonts (embedded, subset), A4 portrait, 36 pt margins,
9 pt text, zebra rows, the header repeated on each page, numbers right-aligned and
formatted, text wrapped to at most 3 lines then cut with an ellipsis, page compression
on.

    bench_pdf_reportlab.py longtable|canvas DATA.csv PARAMS.json OUT.pdf

Prints one JSON line: rows, pages and this process's own peak RSS (vm_hwm_kb, from
/proc/self/status: unlike getrusage's ru_maxrss it leaves out the memory of the process
that forked it, before the exec). Runs under Debian's /usr/bin/python3 (python3-reportlab).
"""
import csv
import json
import sys
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle
from xml.sax.saxutils import escape

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
MARGIN = 36.0
SIZE = 9.0
LEAD = SIZE * 1.2
PAD_X, PAD_Y = 4.0, 3.0
MAX_LINES = 3
ELLIPSIS = "\u2026"

pdfmetrics.registerFont(TTFont("DejaVu", f"{FONT_DIR}/DejaVuSans.ttf"))
pdfmetrics.registerFont(TTFont("DejaVu-Bold", f"{FONT_DIR}/DejaVuSans-Bold.ttf"))


def fmt_number(s, decimals):
    try:
        d = Decimal(s.replace(",", ""))
    except InvalidOperation:
        return s
    if decimals is not None:
        d = d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
        return f"{d:,.{decimals}f}"
    return f"{d:,}"


def fmt_cell(col, s):
    f = col.get("format", "text")
    if f == "number":
        return fmt_number(s, col.get("decimals"))
    if f == "date":
        return s[:10]
    return s


def load(path, params):
    cols = params["columns"]
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        header = next(r)
        idx = [header.index(c["key"]) for c in cols]
        rows = [[fmt_cell(c, row[i]) for c, i in zip(cols, idx)] for row in r]
    return cols, rows


def col_widths(cols, rows, avail):
    """Widths measured on the first 200 rows, filling the page (as spool does)."""
    nat = []
    for i, c in enumerate(cols):
        w = max([pdfmetrics.stringWidth(r[i], "DejaVu", SIZE) for r in rows[:200]] + [0])
        label = max(pdfmetrics.stringWidth(x, "DejaVu-Bold", SIZE) for x in c["label"].split())
        nat.append(min(max(w, label) + 2 * PAD_X + 1, 0.4 * avail))
    total = sum(nat)
    if total <= avail:
        return [n + (avail - total) * n / total for n in nat]
    widths, left, pending = [None] * len(nat), avail, set(range(len(nat)))
    changed = True
    while changed and pending:
        changed = False
        share = left / len(pending)
        for i in sorted(pending):
            if nat[i] <= share:
                widths[i], left = nat[i], left - nat[i]
                pending.discard(i)
                changed = True
    for i in pending:
        widths[i] = left / len(pending)
    return widths


def fit_lines(text, font, width, wrap):
    """Wrap (or cut) text to at most MAX_LINES lines of width, '…' when cut."""
    lines = simpleSplit(text, font, SIZE, width) if wrap else [text]
    cut = len(lines) > (MAX_LINES if wrap else 1)
    lines = lines[: MAX_LINES if wrap else 1] or [""]
    last = lines[-1]
    if cut or pdfmetrics.stringWidth(last, font, SIZE) > width:
        while last and pdfmetrics.stringWidth(last + ELLIPSIS, font, SIZE) > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + ELLIPSIS
    return lines


# ---- by hand on the canvas ---------------------------------------------------------


def run_canvas(cols, rows, params, out):
    pw, ph = A4
    avail = pw - 2 * MARGIN
    widths = col_widths(cols, rows, avail)
    xs = [MARGIN + sum(widths[:i]) for i in range(len(widths))]
    wraps = [c.get("format", "text") == "text" for c in cols]
    rights = [c.get("format") == "number" for c in cols]
    top, bottom = ph - MARGIN, MARGIN + 8 + 10
    title_h = 16 * 1.2 + 10

    def layout(row, font):
        cells = [fit_lines(row[i], font, widths[i] - 2 * PAD_X, wraps[i]) for i in range(len(cols))]
        return cells, 2 * PAD_Y + max(len(c) for c in cells) * LEAD

    header_cells, head_h = layout([c["label"] for c in cols], "DejaVu-Bold")

    # Pass 1: pagination, so the footer can say "of M".
    pages, y, on_page = 1, top - title_h - head_h, 0
    for row in rows:
        _, h = layout(row, "DejaVu")
        if on_page and y - h < bottom:
            pages, y, on_page = pages + 1, top - head_h, 0
        y -= h
        on_page += 1

    c = canvas.Canvas(out, pagesize=A4, pageCompression=1)
    c.setTitle(params["title"])
    c.setAuthor(params.get("author", "spool"))

    def draw_row(cells, top_y, h, font, shade):
        if shade is not None:
            c.setFillGray(shade)
            c.rect(MARGIN, top_y - h, avail, h, stroke=0, fill=1)
            c.setFillGray(0)
        c.setFont(font, SIZE)
        base = top_y - PAD_Y - LEAD + 2.3
        for i, lines in enumerate(cells):
            for k, line in enumerate(lines):
                if rights[i]:
                    c.drawRightString(xs[i] + widths[i] - PAD_X, base - k * LEAD, line)
                else:
                    c.drawString(xs[i] + PAD_X, base - k * LEAD, line)

    def start_page(n):
        y = top
        if n == 1:
            c.setFont("DejaVu-Bold", 16)
            c.drawString(MARGIN, top - 16, params["title"])
            y -= title_h
        draw_row(header_cells, y, head_h, "DejaVu-Bold", 0.84)
        return y - head_h

    def footer(n):
        c.setFont("DejaVu", 8)
        c.setFillGray(0.35)
        c.drawCentredString(pw / 2, MARGIN, f"Page {n} of {pages}")
        c.setFillGray(0)

    page, on_page = 1, 0
    y = start_page(1)
    for row in rows:
        cells, h = layout(row, "DejaVu")
        if on_page and y - h < bottom:
            footer(page)
            c.showPage()
            page, on_page = page + 1, 0
            y = start_page(page)
        draw_row(cells, y, h, "DejaVu", 0.94 if on_page % 2 else None)
        y -= h
        on_page += 1
    footer(page)
    c.showPage()
    c.save()
    return pages


# ---- platypus LongTable ------------------------------------------------------------


class NumberedCanvas(canvas.Canvas):
    """The ReportLab recipe for "Page N of M": keep each page's state, draw the footers
    once the count is known."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._saved = []

    def showPage(self):
        self._saved.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        n = len(self._saved)
        for state in self._saved:
            self.__dict__.update(state)
            self.setFont("DejaVu", 8)
            self.setFillGray(0.35)
            self.drawCentredString(A4[0] / 2, MARGIN, f"Page {self._pageNumber} of {n}")
            super().showPage()
        super().save()


def run_longtable(cols, rows, params, out):
    avail = A4[0] - 2 * MARGIN
    widths = col_widths(cols, rows, avail)
    body = ParagraphStyle("body", fontName="DejaVu", fontSize=SIZE, leading=LEAD)
    head = ParagraphStyle("head", parent=body, fontName="DejaVu-Bold")
    wraps = [c.get("format", "text") == "text" for c in cols]
    data = [[Paragraph(escape(c["label"]), head) for c in cols]]
    for row in rows:
        data.append([Paragraph(escape(v), body) if wraps[i] else v for i, v in enumerate(row)])
    style = [
        ("FONT", (0, 0), (-1, -1), "DejaVu", SIZE, LEAD),
        ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.84, 0.84, 0.84)),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.Color(0.94, 0.94, 0.94)]),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), PAD_X),
        ("RIGHTPADDING", (0, 0), (-1, -1), PAD_X),
        ("TOPPADDING", (0, 0), (-1, -1), PAD_Y),
        ("BOTTOMPADDING", (0, 0), (-1, -1), PAD_Y),
    ]
    for i, c in enumerate(cols):
        if c.get("format") == "number":
            style.append(("ALIGN", (i, 0), (i, -1), "RIGHT"))
    table = LongTable(data, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle(style))
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN,
                            topMargin=MARGIN, bottomMargin=MARGIN + 18,
                            title=params["title"], author=params.get("author", "spool"),
                            pageCompression=1)
    title = ParagraphStyle("title", fontName="DejaVu-Bold", fontSize=16, leading=19.2)
    doc.build([Paragraph(escape(params["title"]), title), Spacer(1, 10), table],
              canvasmaker=NumberedCanvas)
    return doc.page


def main():
    mode, data, params_path, out = sys.argv[1:5]
    params = json.load(open(params_path, encoding="utf-8"))
    cols, rows = load(data, params)
    pages = run_canvas(cols, rows, params, out) if mode == "canvas" else \
        run_longtable(cols, rows, params, out)
    hwm = -1
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    print(json.dumps({"rows": len(rows), "pages": pages, "vm_hwm_kb": hwm}))


if __name__ == "__main__":
    main()
