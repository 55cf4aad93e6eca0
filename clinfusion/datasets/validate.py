"""``clinfusion validate``: read the whole cohort and say what is wrong with it, before training.

:func:`validate_cohort` (an orchestration function: it takes the whole ``RunConfig``) loads
the cohort, opens every image, summarises features, labels, splits and the omics block,
and checks for patient leakage. Problems that would stop training are listed in
:attr:`ValidationReport.fatal` (first entry = the one-line reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from clinfusion.config.schema import RunConfig
from clinfusion.datasets.omics_store import omics_present
from clinfusion.errors import ClinfusionError


@dataclass
class ValidationReport:
    table: str = ""
    rows: int = 0
    patients: int = 0
    images_found: int = 0  # readable image files
    rows_without_image: int = 0  # empty image cell
    images_missing: List[str] = field(default_factory=list)  # paths that do not exist
    images_unreadable: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason)
    channel_conversions: Dict[int, int] = field(default_factory=dict)  # stored channels -> images converted
    channels: int = 1  # image.channels
    image_sizes: Dict[Tuple[int, ...], int] = field(default_factory=dict)  # stored spatial size -> readable images
    target_size: Tuple[int, ...] = ()  # image.size: every image is resized to it
    volumes_4d: int = 0  # NIfTI files with several volumes (what image.volumes_4d acts on)
    volumes_4d_policy: str = "mean"
    bad_image_rows: int = 0  # rows whose image is missing or unreadable (what on_bad_image acts on)
    on_bad_image: str = "error"
    features: List[Tuple[str, str, float]] = field(default_factory=list)  # (column, numeric|categorical, missing rate)
    label_task: Optional[str] = None
    label_counts: Dict[str, int] = field(default_factory=dict)  # class (or multi-label column) -> rows
    unlabelled: int = 0  # rows with no label (multi-label: every label column empty)
    partly_labelled: int = 0  # multi-label rows with some label columns empty (each label uses its own rows)
    split_source: str = ""  # "given column X" or "make_splits(seed=..)"
    split_sizes: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # split -> (rows, patients)
    leakage: List[str] = field(default_factory=list)  # patients found in more than one split
    omics_shape: Optional[Tuple[int, int]] = None  # (rows, G)
    omics_rows_matched: int = 0
    warnings: List[str] = field(default_factory=list)  # not fatal, but most likely a mistake in the data
    fatal: List[str] = field(default_factory=list)
    loaded: bool = False  # False when the cohort could not be read at all

    def render(self) -> str:
        """Human-readable multi-line report."""
        if not self.loaded:
            return "\n".join([f"cohort {self.table}: could not be loaded", "status: FAILED"]
                             + [f"  fatal: {f}" for f in self.fatal])
        lines = [f"cohort {self.table}: {self.rows} rows, {self.patients} patients"]
        bad = len(self.images_missing) + len(self.images_unreadable)
        lines.append(f"images: {self.images_found} readable, {len(self.images_missing)} missing, "
                     f"{len(self.images_unreadable)} unreadable, {self.rows_without_image} rows without image")
        lines += [f"  missing: {p}" for p in self.images_missing[:SHOWN]]
        lines += [f"  unreadable: {p} ({why})" for p, why in self.images_unreadable[:SHOWN]]
        if max(len(self.images_missing), len(self.images_unreadable)) > SHOWN:
            lines.append(f"  (first {SHOWN} of each listed; every one is in skipped_images.csv of a run with "
                         f"cohort.on_bad_image=skip)")
        for c, n in self.channel_conversions.items():
            lines.append(f"  channels: {n} image(s) with {c} channel(s) become image.channels={self.channels} "
                         f"({_channels_says(c, self.channels)})")
        if self.image_sizes and set(self.image_sizes) != {self.target_size}:
            shown = ", ".join(f"{n} at {_size(s)}" for s, n in list(self.image_sizes.items())[:3])
            more = f" and {len(self.image_sizes) - 3} other size(s)" if len(self.image_sizes) > 3 else ""
            lines.append(f"  sizes: {shown}{more}; each is resized to image.size {_size(self.target_size)}")
        if self.volumes_4d:
            lines.append(f"  4D NIfTI: {self.volumes_4d} file(s) hold several volumes; image.volumes_4d="
                         f"{self.volumes_4d_policy}: {VOLUMES_4D_SAYS[self.volumes_4d_policy]} "
                         f"(choices: mean, first, reject)")
        if self.bad_image_rows and self.on_bad_image == "skip":
            lines.append(f"  cohort.on_bad_image=skip: {self.bad_image_rows} row(s) will be skipped by every command "
                         f"(listed in skipped_images.csv of each run)")
        if self.features:
            lines.append("features:")
            lines += [f"  {c:<24} {kind:<12} missing {rate:6.1%}" for c, kind, rate in self.features]
        else:
            lines.append("features: none")
        if self.label_task:
            total = sum(self.label_counts.values())
            counts = ", ".join(f"{k}: {v}" for k, v in self.label_counts.items())
            lines.append(f"label ({self.label_task}): {counts}; unlabelled rows: {self.unlabelled}"
                         + (f" ({total} rows labelled)" if self.label_task != "multilabel" else
                            f"; partly labelled rows: {self.partly_labelled} (each label is trained and scored "
                            f"on the rows where it is given)" if self.partly_labelled else ""))
            if self.label_task == "binary":
                lines.append(f"  positive class: {list(self.label_counts)[-1]!r} (AUROC, sensitivity and prob_ "
                             f"columns refer to it; cohort.positive_label chooses it)")
        else:
            lines.append("label: none configured")
        if self.split_sizes:
            lines.append(f"splits ({self.split_source}):")
            lines += [f"  {s:<6} {r} rows, {p} patients" for s, (r, p) in self.split_sizes.items()]
        lines.append("leakage: none (no patient in two splits)" if not self.leakage
                     else f"leakage: {len(self.leakage)} patient(s) in several splits: {', '.join(self.leakage)}")
        if self.omics_shape is not None:
            lines.append(f"omics: {self.omics_shape[0]} x {self.omics_shape[1]}, "
                         f"{self.omics_rows_matched} rows matched an omics row")
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append("status: OK" if not self.fatal and not bad else
                     ("status: FAILED" if self.fatal else "status: OK (rows with bad images will be skipped)"))
        lines += [f"  fatal: {f}" for f in self.fatal]
        return "\n".join(lines)


SHOWN = 10  # missing / unreadable images listed one per line in the report


def _size(size) -> str:
    """``(64, 48)`` -> ``64x48``."""
    return "x".join(str(int(n)) for n in size)


def _channels_says(c: int, channels: int) -> str:
    """What the loader does to ``c`` stored channels (``datasets.images.ToChannels``)."""
    if c == 4:
        return "alpha dropped" + (", RGB averaged" if channels == 1 else "")
    return "averaged" if channels == 1 else "repeated"


def _stretch(size, target) -> float:
    """How much resizing ``size`` to ``target`` (same length) stretches one axis against another:
    the largest ratio of per-axis scale factors, >= 1 (1.0: proportions kept). ``(64, 48)`` to
    ``(64, 64)`` -> 1.33."""
    scale = np.asarray(target, float) / np.asarray(size, float)
    return float(scale.max() / scale.min())


VOLUMES_4D_SAYS = {
    "mean": "their volumes are averaged into one image",
    "first": "only their first volume is used",
    "reject": "they count as unreadable (cohort.on_bad_image decides)",
}


def _check_images(report: ValidationReport, cohort, cfg: RunConfig) -> None:
    """What the one data path (:mod:`clinfusion.datasets.builder`) will do with the images."""
    from pathlib import Path

    from clinfusion.datasets.builder import bad_image_error, inspect_images, screen_images
    from clinfusion.datasets.images import nifti_volumes

    report.volumes_4d = sum(nifti_volumes(p) > 1 for p in dict.fromkeys(p for p in cohort.image_paths if p))
    report.volumes_4d_policy = cfg.image.volumes_4d

    paths = cohort.image_paths
    report.rows_without_image = sum(p is None for p in paths)
    infos = inspect_images(cohort, cfg.image)
    bad = screen_images(cohort, cfg.image, infos=infos)
    converted: Dict[int, int] = {}
    sizes: Dict[Tuple[int, ...], int] = {}
    for reason, c, size in infos.values():
        if reason is not None:
            continue
        if c != cfg.image.channels:
            converted[c] = converted.get(c, 0) + 1
        sizes[size] = sizes.get(size, 0) + 1
    report.channel_conversions = dict(sorted(converted.items()))
    report.image_sizes = dict(sorted(sizes.items(), key=lambda kv: -kv[1]))
    report.target_size = tuple(cfg.image.size)
    if cfg.image.spacing is None:
        target = report.target_size
        stretched = {s: n for s, n in report.image_sizes.items() if len(s) == len(target) and _stretch(s, target) > 1.1}
        if stretched:
            first = next(iter(stretched))
            report.warnings.append(
                f"{sum(stretched.values())} image(s) have another shape than image.size {_size(target)} (e.g. "
                f"{_size(first)}): resizing stretches them by more than 10% along an axis; crop or pad them to "
                f"the target's proportions, or set image.size to match them")
    report.channels = cfg.image.channels
    reasons = {b["path"]: b["reason"] for b in bad}
    for p in reasons:
        if not Path(p).exists():
            report.images_missing.append(p)
        else:
            report.images_unreadable.append((p, reasons[p]))
    report.images_found = len({p for p in paths if p is not None} - set(reasons))
    report.bad_image_rows = len(bad)
    report.on_bad_image = cfg.cohort.on_bad_image
    if bad and cfg.cohort.on_bad_image == "error":
        report.fatal.append(str(bad_image_error(bad, sum(p is not None for p in paths))))


def _labels(report: ValidationReport, cohort) -> None:
    if cohort.labels is None:
        return
    report.label_task = cohort.labels.task
    m = np.asarray(cohort.label_matrix, float)
    if cohort.labels.task == "multilabel":
        report.label_counts = {c: int(np.nansum(m[:, j])) for j, c in enumerate(cohort.labels.columns)}
        empty = np.isnan(m)
        report.unlabelled = int(empty.all(axis=1).sum())
        report.partly_labelled = int((empty.any(axis=1) & ~empty.all(axis=1)).sum())
    else:
        idx = np.asarray(cohort.label_index)
        report.label_counts = {c: int((idx == k).sum()) for k, c in enumerate(cohort.labels.classes)}
        report.unlabelled = int((idx < 0).sum())


def _column_notes(report: ValidationReport, cohort, cfg: RunConfig) -> None:
    """Warn about an ``exclude`` entry that is no column (a typo leaves the meant column a feature) and a
    text feature with a different value in (almost) every row (an id, a date or free text: a category per row)."""
    from difflib import get_close_matches

    columns = [str(c) for c in cohort.frame.columns]
    for name in cfg.cohort.exclude:
        if name not in columns:
            close = get_close_matches(name, columns, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            report.warnings.append(f"cohort.exclude names {name!r}, not a column of the table{hint}: if it is a "
                                   f"typo, the column you meant is still a feature")
    for c in cohort.categorical:
        values = cohort.frame[c].dropna()
        distinct = values.nunique()
        if distinct >= ROW_UNIQUE_MIN and distinct >= 0.9 * len(values):
            report.warnings.append(f"feature {c!r} has {distinct} different values in {len(values)} rows (an id, a "
                                   f"date or free text?): as a category it tells the model nothing; add it to "
                                   f"cohort.exclude (or give a date as a number, e.g. days since a reference)")


ROW_UNIQUE_MIN = 10  # a text feature with this many values, nearly one per row, is named by validate


def label_leaks(cohort) -> List[str]:
    """One warning line per feature that gives the label away on its own (a diagnosis code, a copy of
    the label): numeric (binary labels) with AUROC >= LEAK_AUROC either way; categorical with every
    category of >= 2 rows holding one class only, over >= 90% of the labelled rows. ``clinfusion validate``
    and ``clinfusion finetune`` both say them; ``[]`` without a single-label column or under 20 labelled rows."""
    if cohort.labels is None or cohort.labels.task == "multilabel":
        return []
    from sklearn.metrics import roc_auc_score

    idx = np.asarray(cohort.label_index)
    rows = idx >= 0
    if rows.sum() < 20:
        return []
    lines: List[str] = []
    frame, y = cohort.frame.loc[rows], idx[rows]
    if cohort.labels.task == "binary":
        for c in cohort.numeric:
            v = frame[c].to_numpy(dtype=float)
            ok = ~np.isnan(v)
            if ok.sum() >= 20 and len(set(y[ok])) == 2:
                auc = roc_auc_score(y[ok], v[ok])
                if max(auc, 1 - auc) >= LEAK_AUROC:
                    lines.append(f"feature {c!r} alone separates the label (AUROC {max(auc, 1 - auc):.3f}): "
                                 f"if it is derived from the outcome, add it to cohort.exclude")
    for c in cohort.categorical:
        groups = frame.assign(_y=y).dropna(subset=[c]).groupby(c, observed=True)["_y"]
        sizes, pure = groups.size(), groups.nunique() == 1
        covered = sizes[(sizes >= 2) & pure].sum()
        if len(sizes) > 1 and covered >= 0.9 * len(frame) and (sizes >= 2).sum() > 1:
            lines.append(f"feature {c!r} alone gives the label (each of its values holds one class): if "
                         f"it is derived from the outcome, add it to cohort.exclude")
    return lines


LEAK_AUROC = 0.99  # a single clinical variable this good is more often a leak than a finding


def _splits(report: ValidationReport, cohort, cfg: RunConfig) -> np.ndarray:
    from clinfusion.datasets.splits import leaked_patients, make_splits, normalise_split

    patients = np.asarray(cohort.patients, dtype=object).astype(str)
    if cfg.cohort.split_column:
        report.split_source = f"given column {cfg.cohort.split_column!r}"
        names = normalise_split(cohort.frame[cfg.cohort.split_column].tolist(), cfg.cohort.split_column)
    else:
        report.split_source = f"patient-grouped, seed {cfg.seed}"
        strat = cohort.label_index if cohort.labels is not None and cohort.labels.task != "multilabel" else None
        names = make_splits(patients, strat, cfg.split, cfg.seed)
    for s in ("train", "val", "test"):
        sel = names == s
        report.split_sizes[s] = (int(sel.sum()), len(set(patients[sel])))
    if cohort.labels is not None and cohort.labels.task != "multilabel":  # a class some split lacks
        idx = np.asarray(cohort.label_index)
        for k, c in enumerate(cohort.labels.classes):
            absent = [s for s in ("train", "val", "test") if not ((idx == k) & (names == s)).any()]
            if absent:
                report.warnings.append(
                    f"class {c!r} ({int((idx == k).sum())} row(s)) has no row in the {'/'.join(absent)} split: "
                    f"fine-tuning needs every class in training, AUROC in validation and test; correct a "
                    f"mistyped label or merge the class")
    report.leakage = [f"{p} ({'/'.join(w)})" for p, w in leaked_patients(names, patients).items()]
    return names


def validate_cohort(cfg: RunConfig,
                    settings: Optional[Callable[[RunConfig, Any, np.ndarray], Optional[List[str]]]] = None
                    ) -> ValidationReport:
    """Check the cohort of ``cfg`` end to end; never raises for bad user data.

    Fatal: a DataError/ConfigError while loading, patient leakage in a given split,
    missing or unreadable images when ``cohort.on_bad_image=error``, and whatever ``settings``
    (``(cfg, cohort, train_rows) -> warning lines or None``, raising :class:`ClinfusionError`; the
    application layer passes pretraining's own checks of the model and losses, and fine-tuning's note
    on heads the cohort cannot feed) raises once the data are sound; the lines it returns are warnings.
    """
    from clinfusion.datasets.cohort import load_cohort

    report = ValidationReport(table=str(cfg.cohort.table))
    try:
        cohort = load_cohort(cfg.cohort, require_labels=cfg.cohort.label_column is not None)
    except ClinfusionError as exc:
        report.fatal.append(str(exc))
        return report
    report.loaded = True
    report.rows, report.patients = len(cohort.ids), len(set(cohort.patients))
    _check_images(report, cohort, cfg)
    frame = cohort.frame
    report.features = [(c, kind, float(frame[c].isna().mean()))
                       for kind, cols in (("numeric", cohort.numeric), ("categorical", cohort.categorical))
                       for c in cols]
    report.warnings += [f"feature {c!r} is empty in every row: it tells the model nothing (add it to "
                        f"cohort.exclude)" for c, _, rate in report.features if rate == 1.0]
    _labels(report, cohort)
    _column_notes(report, cohort, cfg)
    report.warnings += label_leaks(cohort)
    try:
        names = _splits(report, cohort, cfg)
        if settings is not None and not report.fatal:
            report.warnings += settings(cfg, cohort, np.flatnonzero(names == "train")) or []
    except ClinfusionError as exc:
        report.fatal.append(str(exc))
    if report.leakage:
        report.fatal.append(f"patient leakage in split column {cfg.cohort.split_column!r}: "
                            f"{len(report.leakage)} patient(s) in several splits, first {report.leakage[0]}: "
                            f"put all rows of a patient in one split")
    if cohort.omics is not None:
        report.omics_shape = tuple(cohort.omics.shape)
        report.omics_rows_matched = int(omics_present(cohort.omics).sum())
    return report
