"""``run_evaluate``: external validation of a fine-tuned run with its stored preprocessing.

Writes ``metrics.json`` (metrics + patient-bootstrap CIs, subgroups present in the new
table, missing-modality variants, ``unseen_categories/<col>``), ``predictions.csv`` and
``report.html`` into ``out_dir``. The operating threshold is the one chosen on the
run's validation split.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from clinfusion.downstream.evaluation import evaluate_rows, json_safe, predictions_frame
from clinfusion.downstream.external import RunPredictor, prepare_external
from clinfusion.downstream.io import load_finetuned
from clinfusion.downstream.task import labelled
from clinfusion.errors import DataError


def run_evaluate(run_dir: str | Path, table: Optional[str], out_dir: str | Path, overwrite: bool = False,
                 overrides: Sequence[str] = ()) -> Path:
    """Evaluate ``run_dir``'s primary head on the labelled ``table``; returns ``out_dir``.

    Without ``table`` only the run's held-out rows are scored (its test split; fold 0's test
    patients for a k-fold run), never its training rows, and a line says so.

    Raises:
        RunDirError: incomplete run, or ``out_dir`` exists without ``overwrite``.
        DataError: trained feature columns missing (listed), labels outside the trained classes
            (listed), no labelled rows.
    """
    from clinfusion.training.rundir import prepare_run_dir

    run = load_finetuned(run_dir, overrides=overrides)
    ext = prepare_external(run, table, labelled=True)
    data, info = ext.data, run.label
    rows = np.flatnonzero(labelled(data.y, info.task))
    if table is None:  # the run's own table: never score rows the model was trained on
        from clinfusion.datasets.splits import held_out_ids

        ids, what = held_out_ids(run_dir)
        keep = set(ids)
        rows = np.asarray([r for r in rows if str(data.ids[r]) in keep], dtype=np.int64)
        print(f"evaluate: no --cohort given: scoring {what} ({len(rows)} labelled rows)", flush=True)
    if len(rows) == 0:
        raise DataError(f"{ext.table}: no labelled rows in {', '.join(map(repr, info.columns))}: "
                        f"use predict for unlabelled data")
    out = Path(prepare_run_dir(out_dir, overwrite))
    from clinfusion.datasets.builder import write_skipped

    write_skipped(ext.cohort, out)
    cfg = run.cfg.evaluation
    cfg = cfg.model_copy(update={"subgroups": [c for c in cfg.subgroups if c in ext.cohort.frame.columns]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        metrics, probs = evaluate_rows(RunPredictor(run), data, rows, info, run.threshold, cfg, run.cfg.seed)
    for col, n in ext.unseen.items():
        metrics[f"unseen_categories/{col}"] = float(n)
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2))
    preds = predictions_frame(data, rows, probs, info)
    preds.to_csv(out / "predictions.csv", index=False)
    from clinfusion.downstream.report import evaluation_report

    evaluation_report(out, ext.cohort, info, metrics, preds, ext.unseen, cfg.ece_bins)
    return out
