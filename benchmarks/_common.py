"""Shared benchmark plumbing: machine facts, versions, JSON results, RESULTS.md tables.

Each benchmark writes ``benchmarks/results/<name>.json`` holding ``meta`` (date,
commit, machine, versions, exact command) and ``sections``: a list of tables
(``title``, ``columns``, ``rows``, optional ``note`` and ``plot``). ``RESULTS.md`` is
regenerated from every JSON in that folder, so each figure is traceable to its JSON.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
PACKAGES = ("torch", "monai", "transformers", "captum", "lightgbm", "scikit-learn", "pandas", "numpy")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> Dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "gpu_count": torch.cuda.device_count() if gpu else 0,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions() -> Dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent,
                                       text=True, stderr=subprocess.DEVNULL).strip()
    except Exception:
        return "unknown"


LIBRARY_PATHS = ("clinfusion", "configs", "pyproject.toml")  # what a benchmark's numbers depend on


def library_changes_since(commit: str, repo: Path = HERE.parent) -> List[str]:
    """Short hashes of the commits after ``commit`` (up to HEAD) that change :data:`LIBRARY_PATHS`:
    a result measured at ``commit`` may differ at HEAD until re-run. ``[]`` when those paths are the
    same at HEAD as at ``commit`` (e.g. a change and its revert), when none changed, or when git or
    the commit is unavailable (nothing is claimed then)."""
    def git(*args: str) -> str:
        return subprocess.check_output(["git", *args], cwd=repo, text=True, stderr=subprocess.DEVNULL)

    try:
        if not git("diff", "--name-only", commit, "HEAD", "--", *LIBRARY_PATHS).strip():
            return []
        return git("rev-list", "--abbrev-commit", f"{commit}..HEAD", "--", *LIBRARY_PATHS).split()
    except Exception:
        return []


# Library commits checked to change no number any benchmark reports (timings aside): commit -> what it
# changes and the check. A commit enters only with that check done at it, on one machine: every benchmark's --tiny run
# (no cache) at it and at its parent, every non-timing cell identical. RESULTS.md then names it beside
# a result measured before it instead of calling the result stale; any other library commit still does.
RESULT_NEUTRAL: Dict[str, str] = {
    "2fcca35": "training engine: checkpoints also hold the train steps not logged yet, so only what a run "
               "resumed mid-epoch logs changes; uninterrupted runs compute and log the same. Check: "
               "`python -m benchmarks._compare` on the --tiny runs (no cache) of quality, label_efficiency, "
               "label_count, federated, explain_quality, probe_ceiling and scaling at 96db9ef and at 2fcca35: "
               "2,217 cells compared, none differs (speed and gpu report timings only)",
    "3d3b512": "a comment in clinfusion/config/schema.py (federated.strategy) only. Check: "
               "`python -m benchmarks._compare` on the --tiny runs (no cache) of quality, label_efficiency, "
               "label_count, federated, explain_quality, probe_ceiling and scaling at 1759316 and at 3d3b512: "
               "2,232 cells compared, none differs",
}


def split_neutral(commits: List[str], neutral: Optional[Dict[str, str]] = None) -> Tuple[List[str], List[str]]:
    """``commits`` (short hashes, as :func:`library_changes_since` gives them) split into those that
    may change a result and those of ``neutral`` (default :data:`RESULT_NEUTRAL`; matched by prefix,
    since git may abbreviate a hash to more digits than the key has)."""
    reasons = [neutral_reason(c, neutral) for c in commits]
    return [c for c, r in zip(commits, reasons) if r is None], [c for c, r in zip(commits, reasons) if r is not None]


def neutral_reason(commit: str, neutral: Optional[Dict[str, str]] = None) -> Optional[str]:
    """The reason :data:`RESULT_NEUTRAL` (or ``neutral``) gives for ``commit``; ``None`` when it lists none."""
    neutral = RESULT_NEUTRAL if neutral is None else neutral
    return next((v for k, v in neutral.items() if commit.startswith(k) or k.startswith(commit)), None)


def meta(command: Optional[str] = None) -> Dict[str, Any]:
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "machine": machine(),
        "versions": versions(),
        "command": command or " ".join(["python -m", Path(sys.argv[0]).stem] + sys.argv[1:]),
    }


def write_result(name: str, sections: List[Dict[str, Any]], command: str, extra: Optional[Dict] = None,
                 regenerate: bool = True, results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``<results_dir>/<name>.json`` and (by default) regenerate RESULTS.md."""
    results_dir.mkdir(parents=True, exist_ok=True)
    payload = {"name": name, "meta": meta(command), "sections": sections, **(extra or {})}
    path = results_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    os.replace(tmp, path)
    if regenerate and results_dir == RESULTS_DIR:
        regenerate_results_md()
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "n/a"
        if 0 < abs(v) < 1e-3:
            return f"{v:.1e}"
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def render_section(sec: Dict[str, Any]) -> str:
    lines = [f"### {sec['title']}", ""]
    if sec.get("note"):
        lines += [sec["note"], ""]
    cols = sec["columns"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for row in sec["rows"]:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in cols) + " |")
    if sec.get("plot"):
        lines += ["", f"![{sec['title']}]({sec['plot']})"]
    return "\n".join(lines) + "\n"


def regenerate_results_md() -> Path:
    parts = [
        "# clinfusion benchmark results",
        "",
        "Generated from the JSON files in `benchmarks/results/` by `benchmarks/_common.py`; do not edit by hand.",
        "Each block names the date, commit, machine, package versions and the exact command that produced it.",
        "",
    ]
    files = sorted(RESULTS_DIR.glob("*.json"))
    gpus = {json.loads(p.read_text())["meta"]["machine"].get("gpu") for p in files}
    if files and gpus == {None}:
        parts += ["**No GPU was available for any result on this page**: every figure was measured on CPU. "
                  "`python -m benchmarks.gpu` is ready to run on a CUDA machine (it measures samples/s, MFU, "
                  "step/bare ratio, data-wait share and peak memory at the largest batch that fits).", ""]
    for path in files:
        data = json.loads(path.read_text())
        m = data["meta"]
        mach = m["machine"]
        gpu = mach.get("gpu") or "no GPU (none was available to this run)"
        vers = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        parts += [
            f"## {data['name']}",
            "",
            f"- date: {m['date']}; commit `{m['commit']}`; JSON: `benchmarks/results/{path.name}`",
            f"- machine: {mach['cpu']}, {mach['cores']} cores, {gpu}",
            f"- versions: {vers}",
            f"- command: `{m['command']}`",
            *([f"- run note: {m['note']}"] if m.get("note") else []),
            "",
        ]
        later, neutral = split_neutral(library_changes_since(m["commit"]))  # [] for "unknown"
        if later:
            parts += [f"**Stale: the library changed after this run** ({len(later)} commit(s) touching "
                      f"{', '.join(LIBRARY_PATHS)} since `{m['commit']}`, latest `{later[0]}`); these numbers "
                      f"are those of `{m['commit']}` until the benchmark is re-run.", ""]
        elif neutral:
            parts += ["The library changed after this run only by commit(s) checked to change no benchmark "
                      "number: " + "; ".join(f"`{c}`: {neutral_reason(c)}" for c in neutral) + ".", ""]
        if data.get("summary"):
            parts += [data["summary"], ""]
        for sec in data["sections"]:
            parts.append(render_section(sec))
    RESULTS_MD.write_text("\n".join(parts))
    return RESULTS_MD
