"""``run_predict``: class probabilities for (unlabelled) rows with a fine-tuned run.

The CSV has ``id, patient, prob_<class>...`` and ``predicted`` (binary: the positive
class at the run's threshold, multiclass: arg-max; multi-label: the labels at or above
their thresholds, ``;``-joined).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from clinfusion.downstream.evaluation import predictions_frame
from clinfusion.downstream.external import RunPredictor, prepare_external
from clinfusion.downstream.io import load_finetuned
from clinfusion.downstream.task import LabelInfo


def predicted_labels(probs: np.ndarray, info: LabelInfo, threshold) -> list:
    """Decision per row ``[N]`` from probabilities ``[N, K_out]``."""
    if info.task == "binary":
        t = 0.5 if threshold is None else float(threshold)
        return [info.classes[1] if p >= t else info.classes[0] for p in probs[:, 0]]
    if info.task == "multiclass":
        return [info.classes[i] for i in probs.argmax(1)]
    t = np.asarray(threshold if threshold is not None else [0.5] * probs.shape[1], float)
    return [";".join(c for c, hit in zip(info.classes, row >= t) if hit) for row in probs]


def run_predict(run_dir: str | Path, table: Optional[str], out_file: str | Path,
                overrides: Sequence[str] = ()) -> Path:
    """Write predictions for every row of ``table`` to ``out_file`` (CSV); returns its path."""
    run = load_finetuned(run_dir, overrides=overrides)
    ext = prepare_external(run, table, labelled=False)
    rows = np.arange(len(ext.data))
    probs = RunPredictor(run).predict(ext.data, rows)
    frame = predictions_frame(ext.data, rows, probs, run.label)
    frame["predicted"] = predicted_labels(probs, run.label, run.threshold)
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    from clinfusion.datasets.builder import write_skipped

    write_skipped(ext.cohort, out.parent, f"{out.stem}_skipped_images.csv")
    return out
