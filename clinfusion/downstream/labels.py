"""Label kinds (binary / multiclass / multilabel): targets, loss and probabilities.

"task" in clinfusion means a model + loss module (``PretrainTask``,
:class:`~clinfusion.downstream.neural.ClassifierTask`); the label's type is its **kind**.
Conventions used everywhere in :mod:`clinfusion.downstream`:

* targets per row: binary ``[N]`` float 0/1; multiclass ``[N]`` int class index;
  multilabel ``[N, K]`` float 0/1 with NaN = unlabelled;
* logits ``[N, K_out]`` with ``K_out = 1`` (binary) or ``K`` classes / labels;
* probabilities ``[N, K_out]``: sigmoid (binary, multilabel) or softmax (multiclass);
  for binary the single column is P(positive class = ``classes[-1]``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List

import numpy as np
import torch
import torch.nn.functional as F

from clinfusion.errors import DataError


@dataclass
class LabelInfo:
    kind: str  # binary | multiclass | multilabel
    classes: List[str]  # class names (binary: [negative, positive]); multilabel: label columns
    columns: List[str] = field(default_factory=list)  # label column(s) of the cohort

    @property
    def num_outputs(self) -> int:
        return 1 if self.kind == "binary" else len(self.classes)

    @property
    def prob_names(self) -> List[str]:
        """One name per probability column written to predictions.csv."""
        return [f"prob_{c}" for c in self.classes]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "LabelInfo":
        return cls(kind=d["kind"], classes=[str(c) for c in d["classes"]], columns=list(d.get("columns", [])))

    @classmethod
    def from_spec(cls, spec: Any) -> "LabelInfo":
        """From the cohort's ``LabelSpec`` (``task`` = the label kind, ``columns``, ``classes``)."""
        cols = spec.columns if isinstance(spec.columns, (list, tuple)) else [spec.columns]
        classes = list(spec.classes) if spec.classes is not None else list(cols)
        return cls(kind=spec.task, classes=[str(c) for c in classes], columns=[str(c) for c in cols])


def targets_from_cohort(cohort: Any, info: LabelInfo) -> np.ndarray:
    """Targets for every cohort row (see module docstring); unlabelled = NaN / -1."""
    if info.kind == "multilabel":
        return np.asarray(cohort.label_matrix, dtype=float)
    idx = np.asarray(cohort.label_index, dtype=np.int64)
    if info.kind == "binary":
        return np.where(idx < 0, np.nan, idx.astype(float))
    return idx


def labelled(y: np.ndarray, kind: str) -> np.ndarray:
    """bool ``[N]``: rows with a usable label."""
    if kind == "multilabel":
        return ~np.all(np.isnan(y), axis=1)
    if kind == "binary":
        return ~np.isnan(y)
    return y >= 0


def loss_fn(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean loss; ``logits [B, K_out]``; ``y`` as the targets above (NaN labels ignored)."""
    if kind == "multiclass":
        return F.cross_entropy(logits, y.long())
    target = y.reshape(logits.shape).float()
    ok = ~torch.isnan(target)
    if not bool(ok.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[ok], target[ok])


def to_probs(logits: torch.Tensor, kind: str) -> np.ndarray:
    """``[B, K_out]`` probabilities as float64 numpy."""
    p = torch.softmax(logits.float(), dim=1) if kind == "multiclass" else torch.sigmoid(logits.float())
    return p.detach().cpu().double().numpy()


def metric_inputs(y: np.ndarray, probs: np.ndarray, kind: str):
    """``(y, p)`` in the shapes :func:`~clinfusion.downstream.evaluation.compute_metrics` takes."""
    if kind == "binary":
        return y, probs[:, 0]
    return y, probs


def check_classes_present(y: np.ndarray, info: LabelInfo, what: str) -> None:
    """Every class (every label's two values) must occur in ``y``, else a DataError naming ``what``."""
    if info.kind == "multilabel":
        empty = [c for j, c in enumerate(info.classes) if len(np.unique(y[~np.isnan(y[:, j]), j])) < 2]
    else:
        present = set(np.unique(y[labelled(y, info.kind)]).astype(int).tolist())
        empty = [c for k, c in enumerate(info.classes) if k not in present]
    if empty:
        raise DataError(f"{what} leaves class(es) {', '.join(map(repr, empty))} without rows: "
                        f"use a larger label fraction or more labelled patients")
