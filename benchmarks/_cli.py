"""Command-line plumbing every benchmark shares: ``--tiny``, ``--results-dir``, ``--device``,
``--threads``, and writing the JSON (+ RESULTS.md when writing to the default folder).

Plots go to ``<results-dir>/../plots/`` (``benchmarks/plots/`` by default) and sections link
them as ``plots/<file>.png`` relative to ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from benchmarks._common import RESULTS_DIR, write_result  # noqa: E402


def parser(name: str, doc: Optional[str]) -> argparse.ArgumentParser:
    """The shared options; a benchmark adds its own before calling ``parse_args``."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=(doc or "").split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="smoke-test sizes (seconds)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                   help="where <name>.json goes; RESULTS.md is regenerated only for the default folder")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads; default 1 on CPU (see setup), torch's default on CUDA")
    return p


def setup(args: argparse.Namespace) -> None:
    """Apply ``--threads`` before any work; ``--tiny`` also sets ``--budget tiny`` where a benchmark has budgets.

    On CPU the default is one thread: on a small machine shared with other jobs, an
    OpenMP team of several threads stalls whenever one of its threads is preempted, which
    made step times vary 10x run to run; one thread gives stable ratios. The thread count
    is recorded in each JSON (``meta.machine.torch_threads``).
    """
    import torch

    if args.tiny and hasattr(args, "budget"):
        args.budget = "tiny"
    threads = args.threads
    if threads is None and not (args.device != "cpu" and torch.cuda.is_available()):
        threads = 1
    if threads:
        torch.set_num_threads(threads)


def plots_dir(args: argparse.Namespace) -> Path:
    d = Path(args.results_dir).resolve().parent / "plots"
    d.mkdir(parents=True, exist_ok=True)
    return d


def command(name: str, argv: Optional[List[str]] = None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    return " ".join([f"python -m benchmarks.{name}"] + list(argv))


def write(name: str, args: argparse.Namespace, sections: List[Dict[str, Any]], argv: Optional[List[str]] = None,
          extra: Optional[Dict[str, Any]] = None, file_name: Optional[str] = None) -> Path:
    """Write ``<file_name or name>.json``; regenerates RESULTS.md only when ``--results-dir`` is the default."""
    results_dir = Path(args.results_dir).resolve()
    default = results_dir == RESULTS_DIR.resolve()
    path = write_result(file_name or name, sections, command(name, argv), extra=extra, regenerate=default,
                        results_dir=RESULTS_DIR if default else results_dir)
    print(f"wrote {path}")
    return path
