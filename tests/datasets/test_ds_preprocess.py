import numpy as np
import pandas as pd
import pytest

from clinfusion.config.schema import CohortConfig, OmicsConfig
from clinfusion.datasets.cohort import load_cohort
from clinfusion.datasets.preprocess import TabularPreprocessor
from clinfusion.errors import DataError


def test_fit_on_train_rows_only_by_hand(tiny_cfg):
    c = load_cohort(tiny_cfg)
    train = np.array([0, 1, 2, 3, 8, 9])  # ages 50, 52, 60, NaN, 30, 33; sex M M F F M None
    pre = TabularPreprocessor(tiny_cfg).fit(c, train)
    ages = np.array([50, 52, 60, 30, 33.0])
    mean, std = ages.mean(), ages.std()  # population std over the non-missing training values
    np.testing.assert_allclose(pre.num_mean, [mean])
    np.testing.assert_allclose(pre.num_std, [std])
    assert pre.vocab == {"sex": ["F", "M"]}
    out = pre.transform(c)
    np.testing.assert_allclose(out["num"][:, 0][[0, 4, 10]], (np.array([50, 70, 80]) - mean) / std, rtol=1e-5)
    assert out["num"][3, 0] == 0 and out["num_missing"][3, 0] and not out["num_missing"][0, 0]
    assert out["cat"][:, 0].tolist() == [2, 2, 1, 1, 2, 2, 1, 1, 2, 0, 1, 1]
    assert out["cat_missing"][:, 0].tolist() == [False] * 9 + [True] + [False] * 2
    assert out["num"].dtype == np.float32 and out["cat"].dtype == np.int64
    assert out["omics"].shape == (12, 0) and out["omics_missing"].dtype == bool
    s = pre.schema
    assert s.numeric == ["age"] and s.categorical == ["sex"] and s.cat_cardinalities == [3] and s.omics_groups == []


def test_unseen_category_constant_column_and_round_trip(tmp_path, frame12):
    frame12["const"] = 5.0
    frame12.loc[11, "sex"] = "X"  # never in training rows
    p = tmp_path / "c.csv"
    frame12.to_csv(p, index=False)
    cfg = CohortConfig(table=str(p), id_column="sid", patient_column="patient", label_column="label",
                       exclude=["findings", "image"])
    c = load_cohort(cfg)
    pre = TabularPreprocessor(cfg).fit(c, np.arange(10))
    out = pre.transform(c)
    j = pre.numeric.index("const")
    assert pre.num_std[j] == 1.0 and np.all(out["num"][:, j] == 0)  # std 0 -> 1
    assert out["cat"][11, 0] == 0 and not out["cat_missing"][11, 0] and pre.unseen_counts == {"sex": 1}
    path = tmp_path / "pre.json"
    pre.save(path)
    assert path.read_text().lstrip().startswith("{")
    again = TabularPreprocessor.load(path).transform(c)
    for k in out:
        np.testing.assert_array_equal(out[k], again[k])
    assert TabularPreprocessor.load(path).schema == pre.schema


def test_missing_trained_column_error_or_missing(tmp_path, tiny_cfg):
    c = load_cohort(tiny_cfg)
    pre = TabularPreprocessor(tiny_cfg).fit(c, np.arange(12))
    frame = pd.read_csv(tiny_cfg.table).drop(columns=["age", "sex"])
    p = tmp_path / "ext.csv"
    frame.to_csv(p, index=False)
    ext = load_cohort(CohortConfig(table=str(p), id_column="sid", exclude=["findings", "image", "patient"]))
    with pytest.raises(DataError, match=r"ext\.csv: trained feature column\(s\) 'age', 'sex' are missing.*"
                                        r"missing_features=missing"):
        pre.transform(ext)
    out = pre.transform(ext, missing_features="missing")
    assert out["num_missing"].all() and out["cat_missing"].all() and (out["cat"] == 0).all()


def test_damaged_preprocessing_file(tmp_path):
    p = tmp_path / "preprocessing.json"
    p.write_text("{not json")
    with pytest.raises(DataError, match=r"preprocessing\.json.*damaged"):
        TabularPreprocessor.load(p)


def test_wide_omics_20000_columns(tmp_path):
    n, g = 6, 20000
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(size=(n, g)), 4)
    values[0, :10] = np.nan
    header = "id," + ",".join(f"g{i}" for i in range(g))
    rows = [f"{i}," + ",".join("" if np.isnan(v) else f"{v:.4f}" for v in values[i]) for i in range(n)]
    (tmp_path / "omics.csv").write_text("\n".join([header] + rows) + "\n")
    pd.DataFrame({"id": [str(i) for i in range(n + 1)], "age": np.arange(n + 1.0)}).to_csv(tmp_path / "c.csv", index=False)
    cfg = CohortConfig(table=str(tmp_path / "c.csv"), id_column="id",
                       omics=OmicsConfig(table=str(tmp_path / "omics.csv"), key_column="id"))
    c = load_cohort(cfg)
    pre = TabularPreprocessor(cfg).fit(c, np.arange(4))
    out = pre.transform(c)
    assert out["omics"].shape == (n + 1, g) and out["omics"].dtype == np.float32
    assert out["omics_missing"][0, :10].all() and out["omics_missing"][n].all() and not out["omics_missing"][1].any()
    expect = (values[4, 10:] - values[:4, 10:].mean(0)) / values[:4, 10:].std(0)
    np.testing.assert_allclose(out["omics"][4, 10:], expect, rtol=1e-3, atol=1e-4)
    assert pre.schema.n_omics == g and pre.schema.omics_groups == []
