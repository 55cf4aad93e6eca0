"""``report.html``: one self-contained page (PNGs embedded as base64, no external files).

Per explained sample: the prediction, the overlay, the top clinical / genomic features
as signed bars, and the modality share; then the global views and the faithfulness
table. Every value that comes from the cohort (ids, column names, categories, class
names) goes through :func:`clinfusion.reporting.html.esc` (the HTML helper shared with the
fine-tuning report). DICOM headers are never read here: the page only
sees attribution numbers, cohort table values and the PNGs written by the explainer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from clinfusion.reporting.html import esc, page, png_file_html

_CSS = """body{font-family:sans-serif;margin:1.5em;max-width:1100px}
.sample{border:1px solid #ccc;border-radius:6px;padding:0.8em;margin:0.8em 0}
.bar{display:inline-block;height:0.8em;vertical-align:middle}
.pos{background:#c0392b}.neg{background:#2e6fba}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px;font-size:0.9em}
.note{color:#7a4b00}"""


@dataclass
class SampleSection:
    """What the report shows for one sample."""

    sid: str
    prediction: str  # e.g. "P(1) = 0.91 (predicted 1)"
    overlay: Optional[Path] = None  # PNG
    features: List[Tuple[str, float, bool]] = field(default_factory=list)  # (name, value, missing) top-k
    share: Dict[str, float] = field(default_factory=dict)  # modality share columns


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.3g}"
    return esc(v)


def _bars(features: Sequence[Tuple[str, float, bool]], method: str) -> str:
    finite = [abs(v) for _, v, m in features if not m and not math.isnan(v)]
    top = max(finite) if finite else 1.0
    rows = []
    for name, v, miss in features:
        if miss or math.isnan(v):
            bar = "<i>missing in the input</i>"
        else:
            width = int(round(120 * abs(v) / (top or 1.0)))
            bar = f'<span class="bar {"pos" if v > 0 else "neg"}" style="width:{width}px"></span> {v:+.3g}'
        rows.append(f"<tr><td>{esc(name)}</td><td>{bar}</td></tr>")
    return (f"<table><tr><th>feature</th><th>{esc(method)} (red raises, blue lowers the explained score)</th></tr>"
            + "".join(rows) + "</table>")


def _img(path: Optional[Path], alt: str) -> str:
    return "" if path is None else png_file_html(Path(path), alt, "max-width:100%")


def _sample(s: SampleSection, method: str) -> str:
    share = ", ".join(f"{esc(k)} = {_fmt(v)}" for k, v in s.share.items())
    return (f'<div class="sample"><h3>{esc(s.sid)}</h3><p>{esc(s.prediction)}</p>'
            f"{_img(s.overlay, 'attribution overlay of ' + s.sid)}"
            f"{_bars(s.features, method) if s.features else ''}"
            f"<p>modality share: {share or 'n/a'}</p></div>")


def _faithfulness_table(faith: Dict[str, Any]) -> str:
    rows = []
    for group, vals in faith.items():
        if isinstance(vals, dict):
            for k, v in vals.items():
                cell = esc(json.dumps(v)) if isinstance(v, (dict, list)) else _fmt(v)
                rows.append(f"<tr><td>{esc(group)}</td><td>{esc(k)}</td><td>{cell}</td></tr>")
        else:
            rows.append(f"<tr><td>{esc(group)}</td><td></td><td>{_fmt(vals)}</td></tr>")
    return "<table><tr><th>check</th><th>item</th><th>value</th></tr>" + "".join(rows) + "</table>"


def write_report(path: Path, samples: Sequence[SampleSection], tabular_method: str, globals_png: Sequence[Path],
                 faithfulness: Dict[str, Any], notes: Sequence[str] = (), summary: Optional[Dict[str, Any]] = None,
                 title: str = "clinfusion explanations") -> Path:
    """Write the page; ``globals_png`` are embedded in order (feature ranking, class maps)."""
    parts = [f'<p class="note">{esc(n)}</p>' for n in notes]
    parts.append("<h2>Explained samples</h2>")
    parts += [_sample(s, tabular_method) for s in samples]
    parts.append("<h2>Global views</h2>")
    parts += [_img(p, p.stem) for p in globals_png]
    if summary:
        parts.append("<h3>Modality share (cohort)</h3><table><tr><th>measure</th><th>statistic</th><th>value</th></tr>")
        for k, stats in summary.items():
            parts += [f"<tr><td>{esc(k)}</td><td>{esc(s)}</td><td>{_fmt(v)}</td></tr>" for s, v in stats.items()]
        parts.append("</table>")
    parts.append("<h2>Faithfulness</h2>")
    parts.append(_faithfulness_table(faithfulness))
    path.write_text(page(title, "\n".join(parts), _CSS), encoding="utf-8")
    return path
