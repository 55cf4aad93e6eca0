"""Inference with a fine-tuned run: load it, read a new table as it was trained, evaluate, predict.

Run directory layout written by :func:`clinfusion.downstream.finetune.run_finetune`::

    <run>/config.yaml             resolved config (model/image sections = the pretrained run's)
    <run>/preprocessing.json      TabularPreprocessor (JSON)
    <run>/splits.csv              id, patient, split
    <run>/classifier/meta.json    {"primary", "heads", "label": LabelInfo, "spatial_dims", "in_channels"}
    <run>/classifier/<head>/head.json   {"format", "head", "features", "threshold", ...}
    <run>/classifier/<head>/model.safetensors          fused_classifier (linear probes / mlp / full)
    <run>/classifier/<head>/encoder.safetensors + lightgbm_<k>.txt   lightgbm head

No pickle anywhere: safetensors for tensors, LightGBM's text format for trees, JSON for meta.

A new table (evaluate / predict / explain) goes through the run's stored preprocessing:
trained feature columns absent from it are listed (unless ``cohort.missing_features=missing``);
label values outside the trained classes are listed (evaluation); categories never seen in
training go to the unknown bucket and are counted per column (``unseen_categories/<col>``).
Each of these is a one-line :class:`~clinfusion.errors.DataError`.

``run_evaluate`` writes ``metrics.json`` (metrics + patient-bootstrap CIs, subgroups present
in the table, missing-modality variants, unseen-category counts), ``predictions.csv`` and
``report.html``; the operating threshold is the one chosen on the run's validation split.
``run_predict`` writes ``id, patient, prob_<class>...`` and ``predicted`` (binary: the
positive class at the run's threshold, multiclass: arg-max; multi-label: the labels at or
above their thresholds, ``;``-joined).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.evaluation import evaluate_rows, json_safe, predictions_frame
from clinfusion.downstream.labels import LabelInfo, labelled
from clinfusion.downstream.models import Predictor
from clinfusion.errors import DataError, RunDirError


CLASSIFIER_DIR = "classifier"
META = "meta.json"
HEAD_META = "head.json"
FINETUNED_REQUIRED = ("config.yaml", "preprocessing.json", f"{CLASSIFIER_DIR}/{META}")
PRETRAINED_REQUIRED = (
    ("config.yaml",), ("preprocessing.json",),
    ("checkpoints/best/model.safetensors", "checkpoints/last/model.safetensors"),
)


def other_kind(path: Path, kind: str) -> str:
    """The sentence for a folder of the other kind than the ``kind`` a command takes ("pretrained" or
    "fine-tuned"), or ''."""
    if kind == "pretrained" and (path / CLASSIFIER_DIR / META).is_file():
        source = read_meta(path).get("pretrained")
        return ("it is a fine-tuned run: pass the pretrained run it started from, " + repr(str(source)) if source
                else "it is a fine-tuned run trained from scratch: pass a folder `clinfusion pretrain` wrote")
    if kind == "fine-tuned" and not (path / CLASSIFIER_DIR).exists() and (path / "checkpoints").is_dir():
        return (f"it is a pretrained run: pass the folder `clinfusion finetune CONFIG --pretrained {path} --out "
                f"DIR` writes")
    return ""


def check_run_dir(run_dir: str | Path, required: Sequence[Sequence[str]], kind: str) -> Path:
    """RunDirError listing every missing item (or saying the folder is a run of the other kind); each
    entry of ``required`` is a list of alternatives (any one present is enough)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"{kind} run directory {str(path)!r} not found: pass a directory written by clinfusion")
    missing = [" or ".join(alts) for alts in required if not any((path / a).exists() for a in alts)]
    swapped = other_kind(path, kind) if missing else ""
    if swapped:
        raise RunDirError(f"{kind} run directory {str(path)!r}: {swapped}")
    if missing:
        raise RunDirError(f"{kind} run directory {str(path)!r} is incomplete: missing {', '.join(missing)}; "
                          f"re-run the {kind} step or point to a finished run")
    return path


def raw_features(batch: Dict[str, Any]) -> np.ndarray:
    """``[B, F_num + F_cat]`` clinical features, NaN where missing (lightgbm raw inputs)."""
    def arr(k):
        v = batch[k]
        return v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)

    num = np.where(arr("num_missing"), np.nan, arr("num")).astype(np.float64)
    cat = np.where(arr("cat_missing"), np.nan, arr("cat")).astype(np.float64)
    return np.concatenate([num, cat], axis=1)


@dataclass
class FinetunedRun:
    """A loaded fine-tuned run, ready for prediction and explanation.

    ``classifier`` (linear / mlp / full heads) is a ``FusedClassifier`` in eval mode whose
    ``forward(image, num, num_missing, cat, cat_missing, omics, omics_missing, modality_mask)``
    returns logits ``[B, K_out]``; for the lightgbm head it is None and ``boosters`` +
    :meth:`features` give the model (input matrix ``[B, D (+F_num+F_cat)]`` named by
    ``feature_names``). ``model`` is the MultimodalModel in both cases.
    """

    run_dir: Path
    cfg: Any  # RunConfig
    preprocessor: Any  # TabularPreprocessor
    label: LabelInfo  # task, classes, label columns
    head: str  # linear | mlp | full | lightgbm
    threshold: Any  # float (binary), list per label (multilabel) or None (multiclass)
    model: torch.nn.Module  # MultimodalModel, eval mode
    classifier: Optional[torch.nn.Module] = None  # FusedClassifier, eval mode (None for lightgbm)
    boosters: Optional[List[Any]] = None  # lightgbm.Booster per model (multilabel: one per label)
    feature_names: List[str] = field(default_factory=list)  # lightgbm input columns; else clinical columns
    with_raw_features: bool = False  # lightgbm: raw clinical features appended to the embedding
    head_meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The label kind: binary | multiclass | multilabel."""
        return self.label.kind

    @property
    def class_names(self) -> List[str]:
        return list(self.label.classes)

    @torch.no_grad()
    def features(self, batch: Dict[str, Any]) -> np.ndarray:
        """LightGBM input matrix ``[B, F]`` for a batch (layout of ``datasets/batch.py``)."""
        emb = self.model(batch)["fused"].float().cpu().numpy().astype(np.float64)
        return np.concatenate([emb, raw_features(batch)], axis=1) if self.with_raw_features else emb

    @torch.no_grad()
    def predict_proba(self, batch: Dict[str, Any]) -> np.ndarray:
        """Probabilities ``[B, K_out]`` (binary: P(positive), one column)."""
        from clinfusion.downstream.lgbm import predict_boosters
        from clinfusion.downstream.labels import to_probs

        if self.classifier is not None:
            return to_probs(self.classifier.forward_batch(batch), self.kind)
        return predict_boosters(self.boosters, self.features(batch), self.kind, self.label.num_outputs)


def read_meta(run_dir: Path) -> Dict[str, Any]:
    return json.loads((Path(run_dir) / CLASSIFIER_DIR / META).read_text())


def read_head_meta(run_dir: Path, head: str) -> Dict[str, Any]:
    """``classifier/<head>/head.json`` of a fine-tuned run (format, features, threshold, ...);
    RunDirError when it is missing."""
    hdir = check_run_dir(Path(run_dir) / CLASSIFIER_DIR / head, [[HEAD_META]], f"head {head!r} of the fine-tuned")
    return json.loads((hdir / HEAD_META).read_text())


def load_finetuned(run_dir: str | Path, head: Optional[str] = None, device: Optional[str] = None,
                   overrides: Sequence[str] = ()) -> FinetunedRun:
    """Load a fine-tuned run (primary head unless ``head`` names another saved one).

    ``device``: where the model runs (default: the stored ``device`` setting, ``auto`` = CUDA
    when available). ``overrides``: dotted config overrides applied to the stored config (e.g.
    ``cohort.missing_features=missing``, ``evaluation.bootstrap=200``).

    Raises RunDirError when the directory is incomplete or ``head`` was not saved.
    """
    from safetensors.torch import load_model

    from clinfusion.config import load_config
    from clinfusion.datasets.preprocess import TabularPreprocessor
    from clinfusion.training.distributed import resolve_device
    from clinfusion.downstream.models import make_classifier
    from clinfusion.downstream.lgbm import load_boosters
    from clinfusion.models.io import build_model

    path = check_run_dir(run_dir, [[r] for r in FINETUNED_REQUIRED], "fine-tuned")
    cfg = load_config(path / "config.yaml", list(overrides))
    pre = TabularPreprocessor.load(path / "preprocessing.json")
    meta = read_meta(path)
    head = head or meta["primary"]
    if head not in meta["heads"]:
        raise RunDirError(f"fine-tuned run {str(path)!r} has no saved head {head!r}; saved: {', '.join(meta['heads'])}")
    hdir = path / CLASSIFIER_DIR / head
    hmeta = read_head_meta(path, head)
    label = LabelInfo.from_dict(meta["label"])
    dev = torch.device(device) if device else resolve_device(cfg.device)
    model = build_model(cfg, pre.schema)
    run = FinetunedRun(run_dir=path, cfg=cfg, preprocessor=pre, label=label, head=head,
                       threshold=hmeta.get("threshold"), model=model, head_meta=hmeta,
                       feature_names=list(pre.schema.clinical_columns))
    if hmeta["format"] == "fused_classifier":
        clf = make_classifier(model, label.num_outputs, hmeta["head"], hmeta["hidden"], hmeta["freeze_encoders"],
                              hmeta.get("features", "fused"))
        load_model(clf, str(hdir / hmeta["weights"]), device=str(dev))
        run.classifier = clf.to(dev).eval()
    else:
        load_model(model, str(hdir / hmeta["encoder_weights"]), device=str(dev))
        run.boosters = load_boosters(hdir, hmeta["boosters"])
        run.feature_names = list(hmeta["feature_names"])
        run.with_raw_features = bool(hmeta["with_raw_features"])
    run.model = model.to(dev).eval()
    return run


class RunPredictor(Predictor):
    """A loaded fine-tuned run as a :class:`Predictor` (modality variants supported)."""

    def __init__(self, run: FinetunedRun) -> None:
        self.run, self.name, self.variants = run, run.head, True

    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        out = [self.run.predict_proba(b) for b, _ in data.batches(rows, variant)]
        return np.concatenate(out) if out else np.zeros((0, self.run.label.num_outputs))


@dataclass
class External:
    cohort: Any
    data: FinetuneData
    unseen: Dict[str, int]  # column -> rows whose category was not seen in training
    table: str


def map_labels(values: pd.Series, classes: List[str], column: str, table: str) -> np.ndarray:
    """Class index per row in the TRAINED class order (-1 = missing); unknown values -> DataError.

    Values are compared as the cohort loader writes class names (``1.0`` == ``"1"``).
    """
    from clinfusion.datasets.labels import value_strings

    text = value_strings(values)
    lookup = {c: k for k, c in enumerate(classes)}
    present = text.notna().to_numpy()
    out = np.asarray([lookup.get(v, -2) if ok else -1 for v, ok in zip(text.tolist(), present)], dtype=np.int64)
    unknown = list(dict.fromkeys(str(v) for v, i in zip(values.tolist(), out) if i == -2))
    if unknown:
        raise DataError(f"{table}: label column {column!r} has value(s) {', '.join(map(repr, unknown[:10]))} outside "
                        f"the trained classes ({', '.join(map(repr, classes))}): fix or drop those rows")
    return out


def _cohort_config(run: FinetunedRun, table: str, labelled: bool, present: List[str]):
    schema = run.preprocessor.schema
    cfg = run.cfg.cohort.model_copy(deep=True)
    cfg.table = table
    cfg.features = [c for c in schema.clinical_columns if c in present]
    cfg.categorical = [c for c in schema.categorical if c in present]
    cfg.split_column = None
    if not labelled:
        cfg.label_column = None
    return cfg


def prepare_external(run: FinetunedRun, table: Optional[str], labelled: bool) -> External:
    """Load ``table`` (default: the run's own cohort table) as the run was trained."""
    from clinfusion.datasets.builder import load_run_cohort
    from clinfusion.datasets.cohort import key_columns
    from clinfusion.datasets.table import read_table

    table = table or run.cfg.cohort.table
    frame = read_table(table, key_columns(run.cfg.cohort))
    needed = list(run.preprocessor.schema.clinical_columns)
    missing = [c for c in needed if c not in frame.columns]
    if missing and run.cfg.cohort.missing_features == "error":
        raise DataError(f"{table}: trained feature column(s) {', '.join(map(repr, missing))} are missing: add them, "
                        f"or set cohort.missing_features=missing to treat them as missing values")
    if labelled and run.label.kind != "multilabel":
        col = run.label.columns[0]
        if col not in frame.columns:
            raise DataError(f"{table}: label column {col!r} is missing: add it (or use predict for unlabelled rows)")
        map_labels(frame[col], run.label.classes, col, str(table))
    cfg = _cohort_config(run, table, labelled, list(frame.columns))
    cohort = load_run_cohort(cfg, run.cfg.image, require_labels=labelled)  # cohort.on_bad_image applied here
    trained = list(run.preprocessor.schema.omics_columns)
    have = set(cohort.omics_columns or []) if cohort.omics is not None else set()
    absent = [g for g in trained if g not in have]
    if trained and absent and run.cfg.cohort.missing_features == "error":
        where = f"the omics table {cfg.omics.table!r}" if cfg.omics is not None else "this cohort (no cohort.omics)"
        raise DataError(f"{table}: {len(absent)} of the {len(trained)} trained omics column(s) are missing from "
                        f"{where}, first {absent[0]!r}: add them, or set cohort.missing_features=missing to treat "
                        f"them as missing values")
    info: Optional[LabelInfo] = run.label if labelled else None
    data = FinetuneData(cohort, run.preprocessor, run.cfg.image, None, run.cfg.finetune.batch_size,
                        run.cfg.finetune.num_workers, next(run.model.parameters()).device,
                        missing_features=run.cfg.cohort.missing_features)
    data.info = info
    if labelled:
        data.y = _targets(cohort, run.label, str(table))
    unseen = {str(k): int(v) for k, v in (getattr(run.preprocessor, "unseen_counts", None) or {}).items()}
    for col, n in unseen.items():
        print(f"warning: {table}: column {col!r}: {n} row(s) hold a category the run never saw in training; they "
              f"are read as unknown (the missing-value category)", flush=True)
    return External(cohort, data, unseen, str(table))


def training_overlap(run_dir: str | Path, cohort: Any, ids: Sequence[str]) -> int:
    """How many of ``ids`` (rows of ``cohort``) share an id or a patient with the run's training or
    validation rows; a line warns when any do (their scores would flatter the model)."""
    from clinfusion.datasets.splits import seen_in_training

    seen_ids, seen_patients = seen_in_training(run_dir)
    patient = dict(zip(map(str, cohort.ids), map(str, cohort.patients)))
    hits = [i for i in map(str, ids) if i in seen_ids or patient.get(i) in seen_patients]
    if hits:
        print(f"warning: {cohort.table}: {len(hits)} of {len(ids)} scored row(s) share an id or patient with the "
              f"run's training/validation rows (first {hits[0]!r}): their metrics are optimistic; evaluate on "
              f"patients the run never saw (metrics.json: rows_seen_in_training)", flush=True)
    return len(hits)


def _targets(cohort: Any, info: LabelInfo, table: str) -> np.ndarray:
    if info.kind == "multilabel":
        return np.asarray(cohort.frame[info.columns].apply(pd.to_numeric, errors="coerce"), dtype=float)
    col = info.columns[0]
    idx = map_labels(cohort.frame[col], info.classes, col, table)
    if info.kind == "binary":
        return np.where(idx < 0, np.nan, idx.astype(float))
    return idx


def run_evaluate(run_dir: str | Path, table: Optional[str], out_dir: str | Path, overwrite: bool = False,
                 overrides: Sequence[str] = (), head: Optional[str] = None) -> Path:
    """Evaluate ``run_dir``'s primary head (or the saved ``head``) on the labelled ``table``; returns ``out_dir``.

    Without ``table`` only the run's held-out rows are scored (its test split; fold 0's test
    patients for a k-fold run), never its training rows, and a line says so.

    Raises:
        RunDirError: incomplete run, or ``out_dir`` exists without ``overwrite``.
        DataError: trained feature columns missing (listed), labels outside the trained classes
            (listed), no labelled rows.
    """
    from clinfusion.training.rundir import prepare_run_dir

    run = load_finetuned(run_dir, head=head, overrides=overrides)
    ext = prepare_external(run, table, labelled=True)
    data, info = ext.data, run.label
    rows = np.flatnonzero(labelled(data.y, info.kind))
    if table is None:  # the run's own table: never score rows the model was trained on
        from clinfusion.datasets.splits import held_out_ids

        ids, what = held_out_ids(run_dir)
        keep = set(ids)
        rows = np.asarray([r for r in rows if str(data.ids[r]) in keep], dtype=np.int64)
        print(f"evaluate: no --cohort given: scoring {what} ({len(rows)} labelled rows)", flush=True)
    if len(rows) == 0:
        raise DataError(f"{ext.table}: no labelled rows in {', '.join(map(repr, info.columns))}: "
                        f"use predict for unlabelled data")
    out = Path(prepare_run_dir(out_dir, overwrite, resumable=False))  # evaluate has no --resume
    from clinfusion.datasets.builder import write_skipped

    write_skipped(ext.cohort, out)
    cfg = run.cfg.evaluation
    cfg = cfg.model_copy(update={"subgroups": [c for c in cfg.subgroups if c in ext.cohort.frame.columns]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        metrics, probs = evaluate_rows(RunPredictor(run), data, rows, info, run.threshold, cfg, run.cfg.seed)
    for col, n in ext.unseen.items():
        metrics[f"unseen_categories/{col}"] = float(n)
    if table is not None:
        metrics["rows_seen_in_training"] = float(training_overlap(run_dir, ext.cohort, [str(data.ids[r]) for r in rows]))
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2))
    preds = predictions_frame(data, rows, probs, info)
    preds.to_csv(out / "predictions.csv", index=False)
    from clinfusion.downstream.report import evaluation_report

    evaluation_report(out, ext.cohort, info, metrics, preds, ext.unseen, cfg.ece_bins)
    return out


def predicted_labels(probs: np.ndarray, info: LabelInfo, threshold) -> list:
    """Decision per row ``[N]`` from probabilities ``[N, K_out]``."""
    if info.kind == "binary":
        t = 0.5 if threshold is None else float(threshold)
        return [info.classes[1] if p >= t else info.classes[0] for p in probs[:, 0]]
    if info.kind == "multiclass":
        return [info.classes[i] for i in probs.argmax(1)]
    t = np.asarray(threshold if threshold is not None else [0.5] * probs.shape[1], float)
    return [";".join(c for c, hit in zip(info.classes, row >= t) if hit) for row in probs]


def run_predict(run_dir: str | Path, table: Optional[str], out_file: str | Path,
                overrides: Sequence[str] = (), head: Optional[str] = None) -> Path:
    """Write predictions of the primary head (or the saved ``head``) for every row of ``table`` to
    ``out_file`` (CSV); returns its path."""
    run = load_finetuned(run_dir, head=head, overrides=overrides)
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
