import numpy as np
import pytest

from clinfusion.config.schema import SplitConfig
from clinfusion.datasets.splits import (check_given_split, kfold_assign, label_fraction, load_splits,
                                        make_splits, save_splits)
from clinfusion.errors import DataError


def _cohort(n_patients=60, seed=0):
    """1-4 rows per patient; label constant per patient, 30% positive patients."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 5, n_patients)
    patients = np.repeat([f"p{i}" for i in range(n_patients)], per)
    pos = rng.random(n_patients) < 0.3
    labels = np.repeat(pos.astype(int), per)
    return patients, labels


def _patients_by_split(patients, names):
    return {s: set(patients[names == s]) for s in ("train", "val", "test")}


def test_make_splits_grouped_stratified_deterministic():
    patients, labels = _cohort()
    cfg = SplitConfig(val_fraction=0.2, test_fraction=0.2)
    names = make_splits(patients, labels, cfg, seed=3)
    groups = _patients_by_split(patients, names)
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"]) \
        and not (groups["val"] & groups["test"])
    assert sum(len(g) for g in groups.values()) == 60
    assert len(groups["test"]) == 12 and len(groups["val"]) == 12  # 20% of 60 patients; 0.2/0.8 of the other 48
    overall = labels.mean()
    for s in ("train", "val", "test"):  # positive share roughly kept in every split
        assert abs(labels[names == s].mean() - overall) < 0.2
    np.testing.assert_array_equal(names, make_splits(patients, labels, cfg, seed=3))
    assert not np.array_equal(names, make_splits(patients, labels, cfg, seed=4))
    big_test = make_splits(patients, None, SplitConfig(val_fraction=0.0, test_fraction=0.7), 0)
    assert set(big_test) == {"train", "test"} and len(set(patients[big_test == "test"])) == 42


def test_kfold_every_patient_in_exactly_one_fold():
    patients, labels = _cohort()
    folds = kfold_assign(patients, labels, 5, seed=0)
    assert set(folds.tolist()) == set(range(5))
    for p in set(patients):
        assert len(set(folds[patients == p])) == 1
    np.testing.assert_array_equal(folds, kfold_assign(patients, labels, 5, seed=0))
    unstrat = kfold_assign(patients, None, 4, seed=1)
    assert set(unstrat.tolist()) == set(range(4))
    for p in set(patients):
        assert len(set(unstrat[patients == p])) == 1
    with pytest.raises(DataError, match="5-fold cross-validation needs at least 5 patients, the cohort has 3"):
        kfold_assign(np.array(["a", "b", "c"]), None, 5, 0)


def test_check_given_split_leakage_and_unknown_values():
    patients = np.array(["a", "a", "b", "c"])
    out = check_given_split(["Train", "train", "VALID", "test"], patients, "fold_col")
    assert out.tolist() == ["train", "train", "val", "test"]
    with pytest.raises(DataError, match=r"split column 'fold_col': patient 'a' is in splits test, train"):
        check_given_split(["train", "test", "val", "test"], patients, "fold_col")
    with pytest.raises(DataError, match=r"unknown split value 'dev' in row 3: use train, val or test"):
        check_given_split(["train", "train", "dev", "test"], patients, "fold_col")


def test_label_fraction_by_patient():
    patients, labels = _cohort(seed=1)
    rows = np.arange(len(patients))
    kept = label_fraction(rows, patients, labels, 0.25, seed=0)
    kept_patients = set(patients[kept])
    for p in kept_patients:  # whole patients only
        assert set(np.flatnonzero(patients == p)) <= set(kept.tolist())
    n_pos = len(set(patients[labels == 1]))
    n_neg = len(set(patients[labels == 0]))
    assert len(kept_patients) == round(0.25 * n_pos) + round(0.25 * n_neg)
    np.testing.assert_array_equal(kept, label_fraction(rows, patients, labels, 0.25, seed=0))
    tiny = label_fraction(rows, patients, labels, 0.01, seed=0)  # at least one patient per class
    assert set(labels[tiny].tolist()) == {0, 1} and len(set(patients[tiny])) == 2
    assert label_fraction(rows, patients, labels, 1.0, 0).tolist() == rows.tolist()


def test_label_fraction_class_left_empty():
    # class 1 appears only as a minority row of patients whose majority class is 0
    patients = np.array(["a", "a", "a", "b", "b", "c", "d"])
    labels = np.array([0, 0, 1, 0, 0, 0, 2])
    with pytest.raises(DataError, match=r"label fraction 0\.01 leaves class 1 empty"):
        label_fraction(np.arange(7), patients, labels, 0.01, seed=0)


def test_save_load_splits(tmp_path):
    p = tmp_path / "splits.csv"
    save_splits(p, ["001", "002"], ["p1", "p2"], ["train", "test"], folds=[0, 1])
    frame = load_splits(p)
    assert frame["id"].tolist() == ["001", "002"] and frame["split"].tolist() == ["train", "test"]
    assert frame["fold"].tolist() == [0, 1]
    with pytest.raises(DataError, match=r"splits file .*nothere\.csv.* not found"):
        load_splits(tmp_path / "nothere.csv")


def test_held_out_ids_holdout_test_split_and_cv_fold0(tmp_path):
    from clinfusion.datasets.splits import held_out_ids

    save_splits(tmp_path / "splits.csv", ["a", "b", "c", "d"], ["p1", "p2", "p3", "p4"], ["train", "test", "val", "test"])
    assert held_out_ids(tmp_path) == (["b", "d"], "the run's test split")
    save_splits(tmp_path / "splits.csv", ["a", "b", "c"], ["p1", "p2", "p3"], ["fold1", "fold0", "fold2"])
    ids, what = held_out_ids(tmp_path)
    assert ids == ["b"] and "fold0" in what
    save_splits(tmp_path / "splits.csv", ["a"], ["p1"], ["train"])
    with pytest.raises(DataError, match="no test rows"):
        held_out_ids(tmp_path)
