"""Patient-grouped, label-stratified, seeded splits (scikit-learn under the hood).

No patient ever appears in two splits or two folds: all rows of a patient move together.
Stratification uses one label per patient (the patient's most frequent row label, ties
to the smallest); ``strat=None`` (or unlabelled rows only) gives plain grouped splits.
Holdout splits draw patients with ``sklearn.model_selection.train_test_split`` (one entry
per patient, so grouping is exact); k-fold uses ``StratifiedGroupKFold`` / ``GroupKFold``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, train_test_split

from clinfusion.config.schema import SplitConfig
from clinfusion.datasets.table import row_number
from clinfusion.errors import DataError

SPLIT_NAMES = ("train", "val", "test")


def _patient_labels(patients: np.ndarray, strat: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Unique patients ``[P]``, row -> patient index ``[N]``, one stratum per patient or None."""
    uniq, inverse = np.unique(patients.astype(str), return_inverse=True)
    if strat is None:
        return uniq, inverse, None
    s = pd.Series(np.asarray(strat)).astype(str).to_numpy()
    frame = pd.DataFrame({"p": inverse, "s": s})
    frame = frame[~pd.Series(np.asarray(strat)).isna().to_numpy() & (frame["s"] != "-1")]
    if frame.empty:
        return uniq, inverse, None
    mode = frame.groupby("p")["s"].agg(lambda v: v.value_counts().sort_index().idxmax())
    per_patient = np.full(len(uniq), "__none__", dtype=object)
    per_patient[mode.index.to_numpy()] = mode.to_numpy()
    return uniq, inverse, per_patient.astype(str)


def _can_stratify(strata: Optional[np.ndarray], n_splits: int) -> bool:
    if strata is None:
        return False
    counts = pd.Series(strata).value_counts()
    return len(counts) > 1 and int(counts.min()) >= n_splits


def _take(pids: np.ndarray, strata: Optional[np.ndarray], fraction: float, seed: int) -> np.ndarray:
    """Boolean mask over the patients ``pids [P]`` choosing ``round(fraction * P)`` of them.

    Works on one entry per patient, so grouping is already done; stratified by the
    patient's class when every class has two or more patients, else a plain shuffle.
    """
    n = len(pids)
    chosen = np.zeros(n, bool)
    if fraction <= 0 or n < 2:
        return chosen
    n_take = max(1, min(n - 1, int(round(fraction * n))))
    counts = None if strata is None else pd.Series(strata).value_counts()
    stratify = counts is not None and len(counts) > 1 and int(counts.min()) >= 2 \
        and min(n_take, n - n_take) >= len(counts)
    _, taken = train_test_split(np.arange(n), test_size=n_take, random_state=seed,
                                stratify=strata if stratify else None)
    chosen[taken] = True
    return chosen


def make_splits(patients: Sequence, strat: Optional[Sequence], cfg: SplitConfig, seed: int) -> np.ndarray:
    """'train' / 'val' / 'test' per row, grouped by patient.

    Args:
        patients: ``[N]`` patient key per row.
        strat: ``[N]`` class per row for stratification (``-1``/NaN = unlabelled) or None.
        cfg: the ``split`` section (``val_fraction``, ``test_fraction``, ``stratify``).
        seed: the run seed (same seed, same split).

    Returns:
        ``[N]`` array of split names (dtype object).
    """
    if cfg.val_fraction + cfg.test_fraction >= 1.0:
        raise DataError(f"split.val_fraction + split.test_fraction = {cfg.val_fraction + cfg.test_fraction:g} "
                        f"leaves no training patients: lower them")
    uniq, inverse, strata = _patient_labels(np.asarray(patients), np.asarray(strat) if strat is not None
                                            and cfg.stratify else None)
    pids = np.arange(len(uniq))
    names = np.full(len(uniq), "train", dtype=object)
    test = _take(pids, strata, cfg.test_fraction, seed)
    names[test] = "test"
    rest = np.flatnonzero(~test)
    if cfg.val_fraction > 0 and len(rest) > 1:
        frac = cfg.val_fraction / (1.0 - cfg.test_fraction)
        val = _take(rest, None if strata is None else strata[rest], frac, seed + 1)
        names[rest[val]] = "val"
    return names[inverse]


def kfold_assign(patients: Sequence, strat: Optional[Sequence], k: int, seed: int) -> np.ndarray:
    """Fold index ``0..k-1`` per row ``[N]``; every patient in exactly one fold."""
    uniq, inverse, strata = _patient_labels(np.asarray(patients), None if strat is None else np.asarray(strat))
    if len(uniq) < k:
        raise DataError(f"{k}-fold cross-validation needs at least {k} patients, the cohort has {len(uniq)}: "
                        f"lower finetune.cv_folds")
    pids = np.arange(len(uniq))
    fold = np.zeros(len(uniq), np.int64)
    if _can_stratify(strata, k):
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(pids, strata, pids)
    else:
        order = np.random.default_rng(seed).permutation(len(uniq))  # GroupKFold has no shuffle: permute first
        splitter = ((order[a], order[b]) for a, b in GroupKFold(n_splits=k).split(pids, groups=pids[order]))
    for i, (_, held) in enumerate(splitter):
        fold[held] = i
    return fold[inverse]


@dataclass
class Fold:
    """One train / val / test partition of cohort rows (``name``: ``holdout`` or ``fold<k>``)."""

    name: str
    train: np.ndarray  # cohort rows
    val: np.ndarray
    test: np.ndarray


def make_folds(rows: Sequence[int], patients: Sequence, strat: Optional[Sequence], cfg: SplitConfig, seed: int,
               k: Optional[int] = None, given: Optional[Sequence] = None,
               given_column: str = "split") -> Tuple[List[Fold], np.ndarray]:
    """THE split function of every command: holdout or patient-grouped k-fold over cohort ``rows``.

    Args:
        rows: ``[R]`` cohort row numbers to split (e.g. the labelled rows).
        patients, strat: ``[R]`` patient key and class per row (``strat`` None = unstratified;
            ``cfg.stratify=False`` also turns stratification off, for holdout and k-fold).
        cfg: the ``split`` section (fractions, ``stratify``).
        k: folds for cross-validation (``finetune.cv_folds``); None = one holdout split.
            Fold ``f`` tests on patient group ``f``, validates on group ``f+1 mod k``, trains on the rest.
        given: ``[R]`` user-given split names (``cohort.split_column``), leakage-checked; holdout only.

    Returns:
        ``(folds, names)``: the folds and ``[R]`` split (or fold) name per row, for ``splits.csv``.

    Raises:
        DataError: fewer patients than folds, an empty train / test split, leakage in ``given``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    patients = np.asarray([str(p) for p in patients])
    strat = None if strat is None or not cfg.stratify else np.asarray(strat)
    if k:
        fold_of = np.asarray(kfold_assign(patients, strat, k, seed))
        folds = [Fold(f"fold{f}", rows[(fold_of != f) & (fold_of != (f + 1) % k)], rows[fold_of == (f + 1) % k],
                      rows[fold_of == f]) for f in range(k)]
        return folds, np.asarray([f"fold{f}" for f in fold_of], dtype=object)
    if given is not None:
        names = np.asarray(check_given_split(given, patients, given_column), dtype=object)
    else:
        names = np.asarray(make_splits(patients, strat, cfg, seed), dtype=object)
    fold = Fold("holdout", rows[names == "train"], rows[names == "val"], rows[names == "test"])
    for part in ("train", "test"):
        if len(getattr(fold, part)) == 0:
            raise DataError(f"the {part} split is empty ({len(rows)} rows): "
                            f"adjust split.val_fraction / split.test_fraction or cohort.split_column")
    return [fold], names


def normalise_split(split_values: Sequence, column: str = "split") -> np.ndarray:
    """Split names ``[N]`` as 'train'|'val'|'test' (case/alias tolerant); unknown value -> DataError."""
    raw = list(split_values)
    text = pd.Series(raw, dtype=object).astype(str).str.strip().str.lower()
    text = text.replace({"valid": "val", "validation": "val", "training": "train", "testing": "test"})
    bad = ~text.isin(SPLIT_NAMES).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"split column {column!r}: unknown split value {raw[row]!r} in row {row_number(row)}: "
                        f"use train, val or test")
    return text.to_numpy(dtype=object)


def leaked_patients(names: Sequence, patients: Sequence) -> dict:
    """``{patient: sorted splits}`` for every patient found in more than one split."""
    frame = pd.DataFrame({"p": pd.Series(list(patients)).astype(str), "s": list(names)})
    spread = frame.groupby("p", sort=False)["s"].unique()
    return {str(p): sorted(v) for p, v in spread.items() if len(v) > 1}


def check_given_split(split_values: Sequence, patients: Sequence, column: str = "split") -> np.ndarray:
    """Validate a user-given split column; returns normalised names ``[N]`` ('train'|'val'|'test').

    Raises:
        DataError: an unknown split value (names the row), or a patient in two splits
            (names the patient and the splits).
    """
    names = normalise_split(split_values, column)
    leaked = leaked_patients(names, patients)
    if leaked:
        pid, where = next(iter(leaked.items()))
        raise DataError(f"split column {column!r}: patient {pid!r} is in splits {', '.join(where)} "
                        f"(patient leakage): put all rows of a patient in one split")
    return names


def label_fraction(rows: Sequence[int], patients: Sequence, strat: Optional[Sequence], fraction: float,
                   seed: int) -> np.ndarray:
    """A seeded subset of training ``rows`` holding about ``fraction`` of their patients.

    Drawn per class by patient (each patient's majority class), keeping at least one
    patient per class. ``patients`` / ``strat`` are indexed by row number (length N of
    the cohort). Returns the kept rows (sorted).

    Raises:
        DataError: a class present in ``rows`` ends up with no patient.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if fraction >= 1.0:
        return rows
    pats = np.asarray(patients)[rows]
    sub = None if strat is None else np.asarray(strat)[rows]
    uniq, inverse, strata = _patient_labels(pats, sub)
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(uniq), bool)
    groups = {"all": np.arange(len(uniq))} if strata is None else \
        {c: np.flatnonzero(strata == c) for c in sorted(set(strata.tolist()))}
    for cls, members in groups.items():
        n = int(round(fraction * len(members)))
        if n == 0 and cls != "__none__" and len(members):
            n = 1
        keep[rng.choice(members, size=min(n, len(members)), replace=False)] = True
    kept_rows = rows[keep[inverse]]
    if sub is not None:
        labelled = pd.Series(sub).notna().to_numpy() & (sub.astype(str) != "-1")
        kept_classes = set(sub[keep[inverse] & labelled].astype(str).tolist())
        for cls in sorted(set(sub[labelled].astype(str).tolist())):
            if cls not in kept_classes:
                raise DataError(f"label fraction {fraction:g} leaves class {cls} empty (its rows belong to "
                                f"patients of other classes): raise finetune.label_fractions or add patients")
        if len(kept_rows) == 0:
            raise DataError(f"label fraction {fraction:g} leaves no training rows: raise finetune.label_fractions")
    return np.sort(kept_rows)


def save_splits(path: str | os.PathLike, ids: Sequence, patients: Sequence, splits: Sequence,
                folds: Optional[Sequence[int]] = None) -> None:
    """Write ``id, patient, split[, fold]`` CSV."""
    frame = pd.DataFrame({"id": [str(i) for i in ids], "patient": [str(p) for p in patients],
                          "split": [str(s) for s in splits]})
    if folds is not None:
        frame["fold"] = np.asarray(folds, dtype=np.int64)
    frame.to_csv(path, index=False)


def load_splits(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``splits.csv`` (id/patient as text); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"splits file {str(p)!r} not found: is this a clinfusion run directory?")
    frame = pd.read_csv(p, dtype={"id": str, "patient": str, "split": str})
    missing = [c for c in ("id", "patient", "split") if c not in frame.columns]
    if missing:
        raise DataError(f"splits file {str(p)!r} lacks column(s) {', '.join(missing)}: expected id, patient, split")
    return frame


def held_out_ids(run_dir: str | os.PathLike) -> Tuple[List[str], str]:
    """Ids a fine-tuned run's saved model never trained on, from its ``splits.csv``, and what they are.

    Holdout runs: the ``test`` split. k-fold runs: ``fold0`` (the saved heads are fold 0's,
    which tested on that fold). Raises DataError when the file names neither.
    """
    frame = load_splits(Path(run_dir) / "splits.csv")
    for name, what in (("test", "the run's test split"), ("fold0", "the run's fold0 test patients (its saved model is fold 0's)")):
        ids = frame.loc[frame["split"] == name, "id"].tolist()
        if ids:
            return ids, what
    raise DataError(f"{Path(run_dir) / 'splits.csv'}: no test rows: evaluate on an external table with --cohort")


def seen_in_training(run_dir: str | os.PathLike) -> Tuple[set, set]:
    """Ids and patients a fine-tuned run trained or validated on: its ``splits.csv`` rows outside the
    held-out split of :func:`held_out_ids` (what an external evaluation must not contain)."""
    frame = load_splits(Path(run_dir) / "splits.csv")
    held = set(held_out_ids(run_dir)[0])
    seen = frame[~frame["id"].isin(held)]
    return set(seen["id"]), set(seen["patient"])
