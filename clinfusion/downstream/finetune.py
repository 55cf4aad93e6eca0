"""``run_finetune``: heads + baselines on the same patient-grouped splits, evaluated with
patient-bootstrap CIs, subgroups and missing-modality variants, written into a run dir.

Outputs (see ``docs/ARCHITECTURE.md``): ``config.yaml``, ``splits.csv``, ``preprocessing.json``,
``metrics.json`` (primary head = the head with the highest validation AUROC at label fraction
1.0, or the largest fraction; chosen on the validation patients, never on test), ``predictions.csv``,
``comparison.csv`` (model x label fraction; ``val_auroc`` and ``selected`` columns, chosen model first),
``classifier/`` (:mod:`clinfusion.downstream.inference`), ``report.html``.

With k-fold CV every (model, fraction) is scored on its pooled out-of-fold test
predictions (threshold: mean of the per-fold validation thresholds), and comparison.csv /
metrics.json add the mean and std of each metric across folds.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import torch

from clinfusion.config.schema import RunConfig
from clinfusion.downstream.data import FinetuneData, Fold, fraction_rows, make_folds
from clinfusion.downstream.evaluation import (METRIC_NAMES, evaluate_rows, json_safe, pick_threshold, predictions_frame,
                                              summary_row)
from clinfusion.downstream.models import BASELINES, HEADS, HeadContext, Predictor, absent_inputs, usable_models
from clinfusion.downstream.inference import CLASSIFIER_DIR, HEAD_META, META, PRETRAINED_REQUIRED, check_run_dir
from clinfusion.downstream.labels import LabelInfo, labelled, targets_from_cohort
from clinfusion.errors import ConfigError


@dataclass
class Base:
    """What the run starts from: the effective config, and the pretrained parts (or None)."""

    cfg: RunConfig
    preprocessor: Any = None
    model: Optional[torch.nn.Module] = None


def load_base(cfg: RunConfig, pretrained: Optional[str]) -> Base:
    """Pretrained run -> its preprocessing and model; its ``model`` / ``image`` sections win."""
    if pretrained is None:
        return Base(cfg.model_copy(deep=True))
    check_run_dir(pretrained, PRETRAINED_REQUIRED, "pretrained")
    from clinfusion.models.io import load_pretrained

    p_cfg, pre, model = load_pretrained(pretrained)
    a, b = cfg.image.spatial_dims, p_cfg.image.spatial_dims
    if a != b:  # its weights read only its own image dimensionality: say so before any image is loaded
        raise ConfigError(f"image.spatial_dims: this config has {a}, but the pretrained run {str(pretrained)!r} was "
                          f"trained on {b}D images and its weights read only {b}D: pretrain on this cohort's {a}D "
                          f"images first, or set image.spatial_dims={b} if this cohort's images are {b}D")
    eff = cfg.model_copy(deep=True)
    eff.model = p_cfg.model.model_copy(deep=True)
    eff.image = p_cfg.image.model_copy(update={"cache": cfg.image.cache, "cache_dir": cfg.image.cache_dir})
    return Base(eff, pre, model)


class Stored(Predictor):
    """Out-of-fold probabilities collected per variant, replayed for pooled evaluation."""

    def __init__(self, name: str, n_rows: int, k: int, variants: bool) -> None:
        self.name, self.variants, self.k, self.n = name, variants, k, n_rows
        self.probs: Dict[str, np.ndarray] = {}

    def put(self, variant: str, rows: np.ndarray, p: np.ndarray) -> None:
        self.probs.setdefault(variant, np.full((self.n, self.k), np.nan))[rows] = p

    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        return self.probs[variant][rows]


@dataclass
class Collected:
    """Everything one (model, label fraction) produced over the folds."""

    stored: Stored
    kind: str = "head"  # head | baseline
    thresholds: List[Any] = field(default_factory=list)
    val_auroc: List[float] = field(default_factory=list)  # per fold, on the validation patients
    fold_metrics: List[Dict[str, float]] = field(default_factory=list)
    n_train: List[int] = field(default_factory=list)
    val_counts: List[Tuple[int, int]] = field(default_factory=list)  # per fold: (positive, negative) rows (binary)
    test_rows: List[np.ndarray] = field(default_factory=list)
    fold_of_row: Dict[int, str] = field(default_factory=dict)

    def validation_auroc(self) -> float:
        vals = [v for v in self.val_auroc if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")

    def threshold(self) -> Any:
        ts = [t for t in self.thresholds if t is not None]
        if not ts:
            return None
        return float(np.mean(ts)) if np.isscalar(ts[0]) else list(np.mean(np.asarray(ts, float), axis=0))


def _fold_setup(base: Base, cohort: Any, info: LabelInfo, fold: Fold, device: torch.device,
                run: Dict[str, Any]) -> Tuple[FinetuneData, HeadContext]:
    from clinfusion.datasets.preprocess import TabularPreprocessor
    from clinfusion.encoders.image import create_image_encoder
    from clinfusion.models.io import build_model

    cfg = base.cfg
    pre = base.preprocessor
    if pre is None:
        pre = TabularPreprocessor(cfg.cohort).fit(cohort, fold.train)
    scratch = cfg.model_copy(deep=True)  # from scratch: no image weights file either
    scratch.model.image_encoder = scratch.model.image_encoder.model_copy(update={"weights": None})

    def build(run_cfg: RunConfig) -> torch.nn.Module:
        torch.manual_seed(cfg.seed)
        return build_model(run_cfg, pre.schema).to(device)

    def new_model() -> torch.nn.Module:
        return build(scratch)

    def new_image_encoder() -> torch.nn.Module:
        torch.manual_seed(cfg.seed)
        img = cfg.image
        return create_image_encoder(scratch.model.image_encoder, img.spatial_dims, img.channels, img.size).to(device)

    encoder = (base.model if base.model is not None else build(cfg)).to(device).eval()
    from clinfusion.datasets.builder import LoaderSettings

    data = FinetuneData(cohort, pre, cfg.image, info, cfg.finetune.batch_size,
                        LoaderSettings.from_section(cfg.finetune), device)
    ctx = HeadContext(data, info, cfg.finetune, fold.train, fold.val, encoder, new_model, new_image_encoder, cfg.seed,
                      pretrained=base.model is not None or bool(cfg.model.image_encoder.weights), **run)
    return data, ctx


def _save_head(pred: Predictor, run_dir: Path, threshold: Any) -> None:
    """``classifier/<name>/`` (weights + head.json); rank 0 only."""
    d = run_dir / CLASSIFIER_DIR / pred.name
    d.mkdir(parents=True, exist_ok=True)
    meta = pred.save(d)
    meta["threshold"] = threshold
    (d / HEAD_META).write_text(json.dumps(meta, indent=2))


def _run_fold(base: Base, cohort: Any, info: LabelInfo, fold: Fold, fold_i: int, device: torch.device,
              collected: Dict[Tuple[str, float], Collected], run_dir: Path, main_fraction: float,
              log: Callable[[str], None], run: Dict[str, Any]) -> FinetuneData:
    """Train and test every head and baseline at every label fraction on one fold.

    Threshold and validation AUROC come from ``fold.val`` (cut to ``fraction`` of its patients
    too when ``finetune.validation_labels`` is ``fraction``); test predictions are stored for the
    pooled scoring. Every head at ``main_fraction`` is saved (fold 0) and also predicted with one
    modality removed, since any of them may be the model chosen on validation.
    """
    cfg = base.cfg
    data, ctx0 = _fold_setup(base, cohort, info, fold, device, run)
    names = [(h, HEADS, "head") for h in cfg.finetune.heads] + [(b, BASELINES, "baseline")
                                                                  for b in cfg.finetune.baselines]
    for fraction in cfg.finetune.label_fractions:
        train = fraction_rows(cohort, fold.train, info, data.y, fraction, cfg.seed + fold_i)
        val = fold.val  # threshold, C, early stopping and the model choice all read these labels
        if cfg.finetune.validation_labels == "fraction" and fraction < 1.0 and len(val):
            val = fraction_rows(cohort, fold.val, info, data.y, fraction, cfg.seed + fold_i, split="validation")
        work = run_dir / "training" / f"{fold.name}_frac{fraction:g}"  # engine checkpoints + metrics.csv
        ctx = HeadContext(**{**ctx0.__dict__, "train_rows": train, "val_rows": val, "work_dir": work})
        for name, registry, kind in names:
            torch.manual_seed(cfg.seed)
            t0 = time.perf_counter()
            pred = registry.get(name)(ctx)
            pred.name = name
            thr, val_auroc = pick_threshold(pred, data, val, info, cfg.evaluation.threshold)
            fold_metrics, probs = evaluate_rows(pred, data, fold.test, info, thr,
                                                cfg.evaluation.model_copy(update={"bootstrap": 0}), full=False)
            key = (name, fraction)
            col = collected.setdefault(key, Collected(Stored(name, len(data), probs.shape[1], pred.variants), kind))
            col.stored.put("all", fold.test, probs)
            main = kind == "head" and fraction == main_fraction
            if main and cfg.evaluation.missing_modality and pred.variants:
                for variant in ("no_image", "no_table"):
                    col.stored.put(variant, fold.test, pred.predict(data, fold.test, variant))
            col.thresholds.append(thr)
            col.val_auroc.append(val_auroc)
            col.fold_metrics.append(fold_metrics)
            col.n_train.append(len(train))
            if info.kind == "binary":
                yv = data.y[val][labelled(data.y[val], info.kind)]
                col.val_counts.append((int((yv == 1).sum()), int((yv == 0).sum())))
            col.test_rows.append(fold.test)
            col.fold_of_row.update({int(r): fold.name for r in fold.test})
            if fold_i == 0 and main and run["is_main"]:
                _save_head(pred, run_dir, thr)
            log(f"{fold.name} fraction {fraction:g}: {name:<14} {len(train)} training rows, "
                f"validation AUROC {val_auroc:.3f}, test AUROC {fold_metrics.get('auroc', float('nan')):.3f} "
                f"({time.perf_counter() - t0:.1f} s)")
    return data


def select_on_validation(collected: Dict[Tuple[str, float], Collected], heads: List[str],
                         fraction: float) -> str:
    """The head with the highest validation AUROC (mean over folds) at ``fraction``; ties and
    an undefined AUROC keep the order of ``finetune.heads``. Test rows play no part."""
    best, best_score = heads[0], -np.inf
    for name in heads:
        score = collected[(name, fraction)].validation_auroc()
        if np.isfinite(score) and score > best_score:
            best, best_score = name, score
    return best


def _summaries(collected: Dict[Tuple[str, float], Collected], data: FinetuneData, info: LabelInfo,
               cfg: RunConfig, primary: Tuple[str, float], cv: bool):
    """Pooled scoring -> (metrics.json dict, comparison frame, predictions frame)."""
    rows_out, metrics, preds = [], {}, None
    for (name, fraction), col in collected.items():
        rows = np.concatenate(col.test_rows)
        is_primary = (name, fraction) == primary
        m, probs = evaluate_rows(col.stored, data, rows, info, col.threshold(), cfg.evaluation, cfg.seed,
                                 full=is_primary)
        row = {"model": name, "kind": col.kind, "label_fraction": fraction, "selected": is_primary,
               "val_auroc": col.validation_auroc(), **summary_row(m), "n_train": float(np.mean(col.n_train))}
        if col.val_counts:  # binary: the validation rows behind val_auroc, summed over folds
            row["n_val_pos"], row["n_val_neg"] = (int(sum(c[i] for c in col.val_counts)) for i in (0, 1))
        if cv:
            row["n_folds"] = len(col.fold_metrics)
            for k in METRIC_NAMES:
                vals = [fm.get(k, np.nan) for fm in col.fold_metrics]
                row[f"{k}_fold_mean"], row[f"{k}_fold_std"] = float(np.nanmean(vals)), float(np.nanstd(vals))
        rows_out.append(row)
        if is_primary:
            metrics = dict(m)
            metrics["threshold"] = col.threshold() if np.isscalar(col.threshold()) else float("nan")
            if cv:
                metrics.update({f"cv/{k}_{s}": row[f"{k}_fold_{s}"] for k in METRIC_NAMES
                                for s in ("mean", "std")})
            extra = {"fold": [col.fold_of_row[int(r)] for r in rows]} if cv else None
            preds = predictions_frame(data, rows, probs, info, extra)
    names = [primary[0]] + [n for n in list(cfg.finetune.heads) + list(cfg.finetune.baselines) if n != primary[0]]
    order = {n: i for i, n in enumerate(names)}  # the model chosen on validation leads
    comparison = pd.DataFrame(rows_out)
    comparison["_lead"] = ~comparison["selected"]
    comparison = comparison.sort_values(["_lead", "model", "label_fraction"], kind="stable",
                                        key=lambda c: c.map(order) if c.name == "model" else c)
    comparison = comparison.drop(columns="_lead").reset_index(drop=True)
    return metrics, comparison, preds


def format_comparison(comparison: pd.DataFrame) -> str:
    """A compact text table: model (``*`` = chosen on validation), fraction, validation AUROC,
    test AUROC [95% CI], test AUPRC."""
    lines = [f"{'model':<18}{'fraction':>9}{'val AUROC':>10}  {'test AUROC [CI]':<24}{'AUPRC':>7}"]
    for _, r in comparison.iterrows():
        lo, hi = r.get("auroc_ci_low", np.nan), r.get("auroc_ci_high", np.nan)
        ci = f"{r['auroc']:.3f}" + ("" if pd.isna(lo) or pd.isna(hi) else f" [{lo:.3f}, {hi:.3f}]")  # no CI: bootstrap 0
        name = ("* " if r["selected"] else "  ") + str(r["model"])
        lines.append(f"{name:<18}{r['label_fraction']:>9g}{r['val_auroc']:>10.3f}  {ci:<24}{r['auprc']:>7.3f}")
    chosen = comparison[comparison["selected"]]
    if len(chosen):
        lines.append(f"* chosen on the validation patients (highest validation AUROC among the heads): "
                     f"{chosen.iloc[0]['model']}")
    lines += choice_caution(comparison) + chance_verdict(comparison)
    return "\n".join(lines)


def auroc_se(auroc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUROC on ``n_pos`` positive and ``n_neg`` negative rows (Hanley & McNeil 1982)."""
    a = float(auroc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return float(np.sqrt(max(a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a), 0.0)
                         / (n_pos * n_neg)))


def choice_caution(comparison: pd.DataFrame) -> List[str]:
    """One line when the chosen head's validation lead over the next head is smaller than the standard error
    of the difference (an upper bound: both AUROCs' Hanley-McNeil errors added as if independent), i.e. when
    the validation patients cannot tell the two apart, or is none (a tie, broken by the order of
    ``finetune.heads``); binary labels only (``n_val_pos`` / ``n_val_neg``)."""
    if not {"n_val_pos", "n_val_neg", "kind"} <= set(comparison) or not comparison["selected"].any():
        return []
    chosen = comparison[comparison["selected"]].iloc[0]
    rivals = comparison[(comparison["kind"] == "head") & ~comparison["selected"]
                        & (comparison["label_fraction"] == chosen["label_fraction"])].dropna(subset=["val_auroc"])
    n_pos, n_neg = int(chosen["n_val_pos"]), int(chosen["n_val_neg"])
    if not len(rivals) or not np.isfinite(chosen["val_auroc"]) or min(n_pos, n_neg) < 1:
        return []
    second = rivals.loc[rivals["val_auroc"].idxmax()]
    gap = float(chosen["val_auroc"] - second["val_auroc"])
    if gap <= 0:  # a tie (e.g. both 1.000 on a few validation rows): the order of finetune.heads decided
        return [f"the choice is a tie: {chosen['model']} and {second['model']} have the same validation AUROC "
                f"({float(chosen['val_auroc']):.3f}; {n_pos} positive / {n_neg} negative validation rows) and "
                f"{chosen['model']} comes first in finetune.heads; compare their test intervals, or choose on every "
                f"patient with finetune.cv_folds=5"]
    se = float(np.hypot(auroc_se(chosen["val_auroc"], n_pos, n_neg), auroc_se(second["val_auroc"], n_pos, n_neg)))
    if gap >= se:
        return []
    return [f"the choice is not clear: {chosen['model']} leads {second['model']} on validation by {gap:.3f} AUROC, "
            f"within the standard error of that difference (<= {se:.3f}; Hanley & McNeil, {n_pos} positive / "
            f"{n_neg} negative validation rows); compare their test intervals, or choose on every patient with "
            f"finetune.cv_folds=5"]


def chance_verdict(comparison: pd.DataFrame) -> List[str]:
    """One line: the models whose test AUROC interval lies above chance (0.5), or, when none does,
    that this test split cannot show learning (no line without intervals: evaluation.bootstrap=0)."""
    if "auroc_ci_low" not in comparison or comparison["auroc_ci_low"].isna().all():
        return []
    above = comparison[comparison["auroc_ci_low"] > 0.5]
    if len(above):
        names = ", ".join(f"{r['model']} ({r['label_fraction']:g})" for _, r in above.iterrows())
        return [f"test AUROC interval above chance (0.5): {names}"]
    n = comparison["n_test"].max() if "n_test" in comparison else float("nan")
    rows = "" if pd.isna(n) else f" on {int(n)} test rows"
    return [f"no model's test AUROC interval lies above chance (0.5){rows}: these results do not show that "
            f"anything was learned; more labelled patients, or finetune.cv_folds=5 (every patient tested "
            f"once), narrow the intervals"]


MISSING_INPUT = {"image": "an image", "table": "a clinical or omics value"}


def drop_unreadable(cfg: RunConfig, cohort: Any) -> List[str]:
    """Remove from ``cfg.finetune.heads`` / ``baselines`` (in place) the models whose every input
    no row of ``cohort`` has (e.g. ``linear_image`` without images: a constant predictor that
    could still win the choice on validation); returns the line that says so (or none).

    Raises:
        ConfigError: no head is left.
    """
    absent = absent_inputs(cohort)
    if not absent:
        return []
    ft = cfg.finetune
    heads, skip_heads = usable_models(ft.heads, absent)
    baselines, skip_baselines = usable_models(ft.baselines, absent)
    lacks = " or ".join(MISSING_INPUT[a] for a in absent)
    if not heads:
        raise ConfigError(f"finetune.heads: {', '.join(skip_heads)} read(s) only inputs no row of {cohort.table!r} "
                          f"has (no row has {lacks}): list a head that reads the other input, e.g. linear")
    ft.heads, ft.baselines = heads, baselines
    skipped = skip_heads + skip_baselines
    return [f"finetune: skipping {', '.join(skipped)}: no row of {cohort.table!r} has {lacks}"] if skipped else []


def unreadable_heads_note(cfg: RunConfig, cohort: Any) -> List[str]:
    """What :func:`drop_unreadable` would say about ``cohort`` (or the line it would stop on), as
    ``clinfusion validate``'s warning; ``cfg`` is not changed. ``[]`` without a label column."""
    if cfg.cohort.label_column is None:
        return []
    try:
        return drop_unreadable(cfg.model_copy(deep=True), cohort)
    except ConfigError as exc:
        return [f"finetune would stop: {exc}"]


def unused_columns_note(base: Base, cohort: Any) -> List[str]:
    """With ``--pretrained``, the line naming this table's feature columns the pretrained run's table
    encoder does not read (its preprocessing is kept, so every model here ignores them); none otherwise."""
    if base.preprocessor is None:
        return []
    known = set(base.preprocessor.schema.clinical_columns)
    unused = [c for c in list(cohort.numeric) + list(cohort.categorical) if c not in known]
    if not unused:
        return []
    return [f"finetune: column(s) {', '.join(map(repr, unused[:5]))}{' ...' if len(unused) > 5 else ''} of "
            f"{cohort.table!r} are not features of the pretrained run (its preprocessing is kept): no model here "
            f"reads them; pretrain on this table to use them, or list them in cohort.exclude"]


def check_finetune_resume(cfg: RunConfig, run_dir: Path) -> None:
    """ConfigError (run untouched) when ``finetune --resume`` in ``run_dir`` would train other models
    or settings than the interrupted run (its ``config.yaml``): a resumed run finishes what was started."""
    from clinfusion.config.diff import FINETUNE_RESUME_FREE, FINETUNE_RESUME_SECTIONS, check_resume_config

    check_resume_config(cfg, run_dir, FINETUNE_RESUME_SECTIONS, FINETUNE_RESUME_FREE,
                        "pass the overrides the run was started with; only loading settings may change")


def run_finetune(cfg: RunConfig, pretrained: Optional[str], out_dir: str | Path, overwrite: bool = False,
                 show: bool = True, resume: bool = False) -> Path:
    """Fine-tune heads and baselines and write the run directory; returns its path.

    ``show``: print one progress line per trained model and the comparison table at the end.
    ``resume``: continue an interrupted run in ``out_dir`` (each engine-trained model from its
    ``training/<fold>_frac<f>/<model>/checkpoints/last``; frozen-embedding heads are refitted,
    deterministically). Under ``torchrun`` every process runs this function; the engine
    trains with DDP and rank 0 writes the files.

    Raises:
        RunDirError: ``out_dir`` exists without ``overwrite``, or ``pretrained`` is incomplete.
        ConfigError: no head, an unknown head / baseline name, an unknown ``finetune.freeze`` module.
        DataError / ConfigError: unusable cohort, empty split, a label fraction leaving a class empty.
    """
    from clinfusion.config import save_config
    from clinfusion.datasets.builder import load_run_cohort, write_skipped
    from clinfusion.datasets.validate import label_leaks
    from clinfusion.training.distributed import barrier, setup_distributed
    from clinfusion.training.rundir import discard_if_unresumable, prepare_run_dir

    if not cfg.finetune.heads:
        raise ConfigError("finetune.heads is empty: name at least one of " + ", ".join(HEADS.names()))
    base = load_base(cfg, pretrained)
    for name in cfg.finetune.heads:
        HEADS.get(name)
    for name in cfg.finetune.baselines:
        BASELINES.get(name)
    dist = setup_distributed(cfg.device)  # no-op outside torchrun
    main = dist.is_main
    cohort = load_run_cohort(base.cfg.cohort, base.cfg.image, require_labels=True, show=main)  # on_bad_image here
    notes = drop_unreadable(base.cfg, cohort)  # drops heads: runs on every process, shown or not
    if show and main:  # the notes below are only said, so only worked out where they are printed
        notes += unused_columns_note(base, cohort)
        notes += [f"warning: {w} (models are trained with it)" for w in label_leaks(cohort)]
        for line in notes:
            print(line, flush=True)
    info = LabelInfo.from_spec(cohort.labels)
    y = targets_from_cohort(cohort, info)
    rows = np.flatnonzero(labelled(y, info.kind))
    folds, split_names = make_folds(cohort, rows, info, base.cfg.split, base.cfg.cohort, base.cfg.finetune,
                                    base.cfg.seed)
    run_dir = Path(out_dir)
    if resume:
        check_finetune_resume(base.cfg, run_dir)  # before anything in the run folder is written
    if main:
        run_dir = Path(prepare_run_dir(out_dir, overwrite, resume))
        save_config(base.cfg, run_dir / "config.yaml")  # first: marks the folder as a clinfusion run
        write_skipped(cohort, run_dir)
    with discard_if_unresumable(run_dir, keep=resume or not main):
        barrier(dist)
        device = dist.device
        run = {"resume": resume, "device_pref": cfg.device, "is_main": main}
        fractions = base.cfg.finetune.label_fractions
        main_fraction = 1.0 if 1.0 in fractions else max(fractions)
        collected: Dict[Tuple[str, float], Collected] = {}
        first_data = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for i, fold in enumerate(folds):
                data = _run_fold(base, cohort, info, fold, i, device, collected, run_dir, main_fraction,
                                 (lambda m: print(m, flush=True)) if show and main else (lambda m: None), run)
                if i == 0:
                    first_data = data
                    if main:
                        first_data.preprocessor.save(run_dir / "preprocessing.json")
        primary = (select_on_validation(collected, list(base.cfg.finetune.heads), main_fraction), main_fraction)
        metrics, comparison, preds = _summaries(collected, first_data, info, base.cfg, primary, len(folds) > 1)
        if main:
            _write_outputs(run_dir, first_data, rows, split_names, metrics, comparison, preds, primary[0], base, info,
                           pretrained, cohort, folds, show)
    barrier(dist)
    return run_dir


def _write_outputs(run_dir: Path, first_data: FinetuneData, rows: np.ndarray, split_names: np.ndarray,
                   metrics: Dict[str, float], comparison: pd.DataFrame, preds: pd.DataFrame, primary: str, base: Base,
                   info: LabelInfo, pretrained: Optional[str], cohort: Any, folds: List[Fold], show: bool) -> None:
    """splits.csv, metrics.json, predictions.csv, comparison.csv, classifier/meta.json, report.html."""

    from clinfusion.datasets.splits import save_splits

    save_splits(run_dir / "splits.csv", first_data.ids[rows], first_data.patients[rows], split_names)
    (run_dir / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2))
    preds.to_csv(run_dir / "predictions.csv", index=False)
    comparison.to_csv(run_dir / "comparison.csv", index=False)
    meta = {"primary": primary, "heads": list(base.cfg.finetune.heads), "label": info.to_dict(),
            "spatial_dims": base.cfg.image.spatial_dims, "in_channels": base.cfg.image.channels,
            "pretrained": str(pretrained) if pretrained else None}
    (run_dir / CLASSIFIER_DIR / META).write_text(json.dumps(meta, indent=2))
    from clinfusion.downstream.report import finetune_report

    finetune_report(run_dir, cohort, info, folds, metrics, comparison, preds, base.cfg, primary)
    if show:
        print(format_comparison(comparison))
