"""One HTML helper for every clinfusion report: escaping, tables, embedded PNGs, the page.

Pages are self-contained (no external file, script or font): images are embedded as
base64 PNGs. Every value that can come from a cohort (column names, categories, ids,
class names) must pass through :func:`esc`; :func:`table_html` escapes every cell.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Iterable, Tuple

import numpy as np

CSS = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
       "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
       "td:first-child,th:first-child{text-align:left}img{max-width:480px;margin:4px}")


def esc(value: Any) -> str:
    """``html.escape(str(value), quote=True)``."""
    return html.escape(str(value), quote=True)


def fmt(v: Any) -> str:
    """Floats with 3 decimals (NaN -> empty), everything else as ``str``."""
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.3f}"
    return str(v)


def table_html(frame: Any) -> str:
    """A pandas DataFrame as an HTML table, every header and cell escaped."""
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def png_file_html(path: Path, alt: str, style: str = "") -> str:
    """An ``<img>`` embedding the PNG file ``path`` ("" when the file is absent)."""
    if not Path(path).exists():
        return ""
    extra = f' style="{esc(style)}"' if style else ""
    return f'<img src="{png_data_uri(Path(path).read_bytes())}" alt="{esc(alt)}"{extra}>'


def figure_html(fig: Any, alt: str) -> str:
    """A matplotlib figure as an embedded PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="{esc(alt)}" src="{png_data_uri(buf.getvalue())}"/>'


def page(title: str, body: str, css: str = CSS) -> str:
    """A complete page: ``<h1>`` title then ``body`` (already-escaped HTML)."""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{css}</style></head><body><h1>{esc(title)}</h1>{body}</body></html>")


def write_page(path: str | Path, title: str, sections: Iterable[Tuple[str, str]], css: str = CSS) -> Path:
    """Write ``sections`` (``(heading, already-escaped html)``; an empty heading adds none) to ``path``."""
    body = "".join((f"<h2>{esc(h)}</h2>" if h else "") + content for h, content in sections)
    Path(path).write_text(page(title, body, css), encoding="utf-8")
    return Path(path)
