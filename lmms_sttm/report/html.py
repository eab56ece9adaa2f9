"""A static HTML page (no scripts): the tables and the PNG plots referenced by relative paths."""

from __future__ import annotations

import re
from html import escape

from lmms_sttm.report.table import Section, Table

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 0.5em 0; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eee; }
section.paper table th { background: #f3e7c9; }
ul.notes { font-size: 12px; color: #555; }
figure { margin: 1em 0; }
"""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def table_html(table: Table) -> str:
    out = [f'<h3 id="{slug(table.title)}">{escape(table.title)}</h3>']
    if table.intro:
        out.append(f"<p>{escape(table.intro)}</p>")
    out.append(f'<table id="table-{slug(table.title)}">')
    out.append("<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in table.headers) + "</tr></thead>")
    out.append("<tbody>")
    for row in table.rows:
        out.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    if table.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in table.notes) + "</ul>")
    return "\n".join(out)


def page(
    title: str,
    header: list[str],
    sections: list[Section],
    images: list[tuple[str, str]],
    warnings: list[str],
) -> str:
    """The page; ``images`` are (file name, caption), shown after the first section."""
    body = [f"<h1>{escape(title)}</h1>"]
    body += [f"<p>{escape(line)}</p>" for line in header]
    for i, section in enumerate(sections):
        body.append(f'<section class="{escape(section.css)}"><h2>{escape(section.heading)}</h2>')
        if section.text:
            body.append(f"<p>{escape(section.text)}</p>")
        body += [table_html(t) for t in section.tables]
        body.append("</section>")
        if i == 0 and images:
            body.append('<section class="plots"><h2>Plots</h2>')
            for name, caption in images:
                body.append(
                    f'<figure><img src="{escape(name)}" alt="{escape(caption)}">'
                    f"<figcaption>{escape(caption)}</figcaption></figure>"
                )
            body.append("</section>")
    if warnings:
        body.append('<section class="warnings"><h2>Warnings</h2><ul>')
        body += [f"<li>{escape(w)}</li>" for w in warnings]
        body.append("</ul></section>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
