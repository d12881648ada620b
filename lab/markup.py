"""Markup for the reports: markdown tables that name their constant columns once, and the
self-contained HTML page converted from that same markdown.

``report.md`` is the one source: ``report.html`` is that text converted (headings, paragraphs,
bullets, tables, ``![alt](plots/x.png)`` images embedded as base64), so the page and the
markdown always say the same thing in the same order, the decision in words first.

Tables are built with :func:`table`: a column whose value is the same in every row is named
once above the table ("server: gunicorn-gthread:1x8 · cores: 2") and a column with no value
in any row is dropped, so a table keeps only the columns that tell its rows apart and fits a
1400 px page without horizontal scrolling.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Collection, Sequence
from pathlib import Path

# A cell with nothing but dashes and separators carries no value ("—", "— / — / —", "— · —").
_EMPTY = re.compile(r"[\s—/·±-]*")
_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)$")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")
_NOTE = re.compile(r"^_(.+)_$")


def is_empty(cell: str) -> bool:
    return _EMPTY.fullmatch(cell) is not None


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: str,
    *,
    keep: Collection[str] = (),
) -> list[str]:
    """Markdown lines for a table; ``align`` has one letter per column, ``l`` or ``r``.

    With two rows or more, a column constant across all rows moves to one line above the
    table (unless its header is in ``keep``) and an all-empty column is dropped.
    """
    if len(align) != len(header) or any(len(r) != len(header) for r in rows):
        raise ValueError(f"table columns do not line up: {len(header)} headers, align {align!r}")
    columns = list(range(len(header)))
    constants: list[str] = []
    if len(rows) >= 2:
        kept = []
        for i in columns:
            values = {r[i] for r in rows}
            if header[i] in keep or len(values) > 1:
                kept.append(i)
            elif not is_empty(next(iter(values))):
                constants.append(f"{header[i]}: {next(iter(values))}")
        columns = kept
    lines = [f"_{' · '.join(constants)}_", ""] if constants else []
    lines.append("| " + " | ".join(header[i] for i in columns) + " |")
    lines.append("|" + "".join("---:|" if align[i] == "r" else "---|" for i in columns))
    lines += ["| " + " | ".join(r[i] for i in columns) + " |" for r in rows]
    return lines


def parse_table(lines: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a markdown table (the inverse of :func:`table`, for tests and HTML)."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    return cells[0], [row for row in cells[2:]]


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    return _CODE.sub(r"<code>\1</code>", out)


def _html_table(lines: list[str]) -> str:
    header, rows = parse_table(lines)
    right = [spec.endswith(":") for spec in (c.strip() for c in lines[1].strip().strip("|").split("|"))]
    head = "".join(f"<th>{_inline(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='num'>{_inline(c)}</td>" if i < len(right) and right[i] else f"<td>{_inline(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(alt: str, src: str, base: Path) -> str:
    path = base / src
    if not path.is_file():
        return f"<p class='note'>(plot {html.escape(src)} not found)</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def to_html(markdown: str, base: Path) -> str:
    """The HTML body for the subset of markdown the reports write."""
    out: list[str] = []
    blocks: list[list[str]] = [[]]
    for line in markdown.splitlines():
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    for block in blocks:
        if not block:
            continue
        first = block[0]
        if first.startswith("#"):
            level = len(first) - len(first.lstrip("#"))
            out.append(f"<h{level}>{_inline(first[level:].strip())}</h{level}>")
            block = block[1:]
            if not block:
                continue
            first = block[0]
        if first.startswith("|"):
            out.append(_html_table(block))
        elif first.startswith("- "):
            items: list[str] = []
            for line in block:
                if line.startswith("- "):
                    items.append(line[2:])
                else:  # a wrapped item continues on the next line
                    items[-1] += " " + line.strip()
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        elif (m := _IMAGE.match(first)) and len(block) == 1:
            out.append(_image(m["alt"], m["src"], base))
        elif (m := _NOTE.match(" ".join(block))) is not None:
            out.append(f"<p class='note'>{_inline(m[1])}</p>")
        else:
            out.append(f"<p>{_inline(' '.join(block))}</p>")
    return "\n".join(out)


# Readable at 1400 px without horizontal scrolling: text wraps, numbers do not; the page is
# a little narrower than the window so a scrollbar never appears.
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1340px;margin:1em auto;padding:0 12px;line-height:1.4;"
    "color:#222}h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}"
    "h3{font-size:1.05em}table{border-collapse:collapse;font-size:12.5px;margin:.4em 0 1em;max-width:100%}"
    "th{background:#f3f3f3;text-align:left;vertical-align:bottom}td,th{border:1px solid #ccc;padding:2px 6px}"
    "td{vertical-align:top}td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}"
    "img{max-width:100%;display:block;margin:.5em 0}p.note{color:#555;font-style:italic;margin:.2em 0}"
    "code{background:#f5f5f5;padding:0 2px}"
)


def html_page(title: str, markdown: str, base: Path) -> str:
    """A self-contained page: ``markdown`` converted, its plots (relative to ``base``) embedded."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n{to_html(markdown, base)}\n</body></html>\n"
    )
