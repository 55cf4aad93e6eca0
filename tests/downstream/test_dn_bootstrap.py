"""The bootstrap resamples patients (all their rows), not rows."""

import numpy as np
import pytest

from clinfusion.downstream.evaluation import bootstrap_ci, patient_row_index, resample_rows
from clinfusion.downstream.evaluation import compute_metrics


def test_resample_keeps_patients_whole():
    patients = np.array(["a", "a", "a", "b", "c", "c"])
    _, groups = patient_row_index(patients)
    rng = np.random.default_rng(0)
    for _ in range(20):
        rows = resample_rows(groups, rng)
        drawn = patients[rows]
        # every drawn patient comes with all of its rows (a multiple of its row count)
        for pat, n_rows in (("a", 3), ("b", 1), ("c", 2)):
            assert (drawn == pat).sum() % n_rows == 0


def test_patient_bootstrap_differs_from_row_bootstrap():
    # one metric: the share of rows from patient 'big' (10 of 12 rows). With patients as the
    # unit (2 patients: big, small) the share is 10/12, 1.0 or 0.0; a row bootstrap gives
    # anything in between.
    patients = np.array(["big"] * 10 + ["s1", "s2"])
    y = (patients == "big").astype(float)
    seen = set()

    def share(yy, pp):
        seen.add(round(float(yy.mean()), 4))
        return {"share": float(yy.mean())}

    bootstrap_ci(y, y, patients, share, n=200, seed=1)
    allowed = {round(k * 10 / (k * 10 + j), 4) for k in range(4) for j in range(4) if k + j == 3}
    assert seen <= allowed
    assert len(seen) > 1


def test_bootstrap_ci_brackets_point_estimate_and_skips_degenerate():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(30).astype(str), 2)
    y = np.repeat(rng.integers(0, 2, 30), 2)
    p = np.clip(y * 0.6 + rng.normal(0.2, 0.2, len(y)), 0, 1)
    fn = lambda a, b: compute_metrics(a, b, "binary")  # noqa: E731
    ci = bootstrap_ci(y, p, patients, fn, n=100, ci=0.9, seed=0)
    point = fn(y, p)["auroc"]
    assert ci["auroc"][0] <= point <= ci["auroc"][1]
    assert ci["auroc"][1] - ci["auroc"][0] > 0
    # a single-class set: every resample is degenerate for AUROC -> NaN interval, no crash
    ci1 = bootstrap_ci(np.zeros(6), np.linspace(0, 1, 6), list("aabbcc"), fn, n=20)
    assert np.isnan(ci1["auroc"][0]) and ci1["accuracy"][0] <= ci1["accuracy"][1]
    assert bootstrap_ci(y, p, patients, fn, n=0) == {}
    with pytest.raises(ValueError, match="one entry per row"):
        bootstrap_ci(y, p[:-1], patients, fn, n=5)
