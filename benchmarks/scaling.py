"""Scaling of the toolkit's pretraining with cohort size, omics width and image size.

Three curves, each point a fresh process (:mod:`benchmarks._scaling_probe`) running the
real data path (cohort -> omics store -> split -> preprocessing -> datasets -> Trainer)
and a few real Trainer steps (tiny encoders: the data path is what scales here):

1. **rows**: 1k -> 10k -> 100k cohort rows (200 omics columns, 64 px PNGs from disk);
2. **omics width**: 2k -> 5k -> 20k omics columns (2k rows);
3. **image size**: 64 -> 128 -> 224 px PNGs (2k rows, no omics).

Reported per point: time to prepare (data path up to the first step), median time per
step, time per epoch (= step time x steps per epoch: extrapolated from the timed steps, not
run), and the peak resident memory (VmHWM growth) of each phase. Log-log slopes are fitted
per curve and turned into words by :func:`benchmarks._readings.slope_words` (explicit
thresholds). ``--tiny``: small sizes in this process (a smoke test: its memory figures
are not per point), seconds.

    python -m benchmarks.scaling [--tiny] [--results-dir DIR]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

from benchmarks import _cli
from benchmarks._plots import loglog_plot, loglog_slope
from benchmarks._readings import SLOPE_RULE, slope_words

NAME = "scaling"
ROOT = Path(__file__).resolve().parent.parent


def curves(tiny: bool) -> Dict[str, Dict[str, Any]]:
    if tiny:
        return {"rows": dict(x="rows", points=[dict(rows=r, genes=20, size=16) for r in (100, 300)]),
                "omics": dict(x="genes", points=[dict(rows=100, genes=g, size=16) for g in (50, 200)]),
                "image": dict(x="size", points=[dict(rows=100, genes=0, size=s) for s in (16, 32)])}
    return {"rows": dict(x="rows", points=[dict(rows=r, genes=200, size=64) for r in (1_000, 10_000, 100_000)]),
            "omics": dict(x="genes", points=[dict(rows=2_000, genes=g, size=32) for g in (2_000, 5_000, 20_000)]),
            "image": dict(x="size", points=[dict(rows=2_000, genes=0, size=s) for s in (64, 128, 224)])}


def probe(spec: Dict[str, Any], in_process: bool = False) -> Dict[str, Any]:
    """One point; in its own process (its peak memory its own) unless ``in_process`` (``--tiny``)."""
    if in_process:
        from benchmarks._scaling_probe import measure

        return measure(spec)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "benchmarks._scaling_probe", json.dumps(spec)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"probe {spec} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


TITLES = {"rows": "Pretraining vs cohort rows", "omics": "Pretraining vs omics width",
          "image": "Pretraining vs image size"}
XLABEL = {"rows": "cohort rows", "genes": "omics columns", "size": "image side (px)"}


def section(name: str, curve: Dict[str, Any], results: List[Dict[str, Any]], plots: Path, batch: int,
            steps: int) -> Dict[str, Any]:
    x = curve["x"]
    xs = [r[x] for r in results]
    xs_fit = [s * s for s in xs] if x == "size" else xs  # image: slope against pixels
    rows = [{XLABEL[x]: r[x], "train rows": r["train_rows"], "prepare s": r["prepare_s"], "ms/step": 1000 * r["step_s"],
             "s/epoch (extrapolated)": r["epoch_s"], "prepare peak MB": r["prepare_peak_mb"],
             "train peak MB": r["train_peak_mb"]} for r in results]
    slopes = {
        "step time": loglog_slope(xs_fit, [r["step_s"] for r in results]),
        "epoch time": loglog_slope(xs_fit, [r["epoch_s"] for r in results]),
        "prepare time": loglog_slope(xs_fit, [r["prepare_s"] for r in results]),
        "prepare peak memory": loglog_slope(xs_fit, [max(r["prepare_peak_mb"], 1e-3) for r in results]),
        "train peak memory": loglog_slope(xs_fit, [max(r["train_peak_mb"], 1e-3) for r in results]),
    }
    against = "pixels (side^2)" if x == "size" else XLABEL[x]
    words = "; ".join(f"{k} {slope_words(v)}" for k, v in slopes.items())
    plot = loglog_plot(plots / f"scaling_{name}.png", xs_fit,
                       {"s/epoch": [r["epoch_s"] for r in results],
                        "train peak MB": [max(r["train_peak_mb"], 1e-3) for r in results]},
                       against, TITLES[name])
    note = (f"One process per point, 1 thread, tiny encoders (cnn_tiny width 8, tabular hidden 32), batch {batch}, "
            f"default augmentations, images decoded from disk each step (image.cache=none), num_workers=0. "
            f"{steps} Trainer steps per point, the first two untimed; 's/epoch' = median step x steps per epoch "
            f"(extrapolated, not run). Peak MB = growth of the resident-set high-water mark (VmHWM) over the phase. "
            f"Fitted log-log slopes against {against}: {words}. Words: {SLOPE_RULE}.")
    return {"title": TITLES[name], "columns": list(rows[0]), "rows": rows, "note": note,
            "plot": f"plots/{plot.name}", "slopes": slopes}


def main(argv: List[str] | None = None) -> int:
    p = _cli.parser(NAME, __doc__)
    args = p.parse_args(argv)
    _cli.setup(args)
    plots = _cli.plots_dir(args)
    batch, steps = (8, 4) if args.tiny else (32, 6)
    sections, slopes = [], {}
    with tempfile.TemporaryDirectory(prefix="cf_scaling_") as tmp:
        for name, curve in curves(args.tiny).items():
            results = [probe(dict(pt, work=str(Path(tmp) / name), batch=batch, steps=steps), in_process=args.tiny)
                       for pt in curve["points"]]
            sec = section(name, curve, results, plots, batch, steps)
            slopes[name] = sec.pop("slopes")
            sections.append(sec)
    r, o, i = slopes["rows"], slopes["omics"], slopes["image"]
    summary = (f"With cohort rows, time per epoch is {slope_words(r['epoch time'])} and peak training memory "
               f"{slope_words(r['train peak memory'])}; preparing the data path takes time {slope_words(r['prepare time'])} "
               f"and memory {slope_words(r['prepare peak memory'])}. With omics width, step time is "
               f"{slope_words(o['step time'])} and training memory {slope_words(o['train peak memory'])}. "
               f"With image pixels, step time is {slope_words(i['step time'])}. ({SLOPE_RULE})")
    _cli.write(NAME, args, sections, argv, extra={"summary": summary, "slopes": slopes, "device": "cpu",
                                                   "tiny": args.tiny})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
