"""The omics store: wide omics read per row from a float32 file built once, bounded memory."""

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clinfusion.config.schema import CohortConfig, OmicsConfig
from clinfusion.datasets.cohort import load_cohort
from clinfusion.datasets.omics_store import OmicsMatrix
from clinfusion.datasets.preprocess import TabularPreprocessor

PROBE = Path(__file__).with_name("omics_memory_probe.py")
STEP_GROWTH_MB = 40.0  # stated bound: peak RSS growth of one pretraining step, 1,000 rows x 20,000 genes


def _cohort(tmp_path, values, ext=".csv", cache="cache"):
    n, g = values.shape
    ids = [f"s{i:03d}" for i in range(n)]
    frame = pd.DataFrame(values, columns=[f"g{j}" for j in range(g)])
    frame.insert(0, "sid", ids)
    src = tmp_path / f"omics{ext}"
    frame.to_csv(src, index=False) if ext == ".csv" else frame.to_parquet(src, index=False)
    pd.DataFrame({"sid": ids[::-1] + ["zz"], "age": np.arange(n + 1.0)}).to_csv(tmp_path / "c.csv", index=False)
    return CohortConfig(table=str(tmp_path / "c.csv"), id_column="sid",
                        omics=OmicsConfig(table=str(src), key_column="sid", cache_dir=str(tmp_path / cache))), src


def _digest(path):
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def test_store_built_once_keyed_on_the_file_and_source_untouched(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 7)).astype(np.float32)
    values[2, 3] = np.nan
    cfg, src = _cohort(tmp_path, values)
    before = _digest(src)
    c = load_cohort(cfg)
    assert isinstance(c.omics, OmicsMatrix) and c.omics.shape == (6, 7)
    np.testing.assert_allclose(c.omics[0], values[4], rtol=1e-6)  # cohort row 0 is omics row 4 (reversed ids)
    assert np.isnan(c.omics[2, 3]) and np.isnan(c.omics[5]).all()
    stores = sorted((tmp_path / "cache").iterdir())
    assert len(stores) == 1 and json.loads((stores[0] / "meta.json").read_text())["rows"] == 5
    mtime = (stores[0] / "values.f32").stat().st_mtime_ns
    load_cohort(cfg)  # second use: the same store, not rebuilt
    assert sorted((tmp_path / "cache").iterdir()) == stores and (stores[0] / "values.f32").stat().st_mtime_ns == mtime
    assert _digest(src) == before  # the user's file is never written
    values2 = values + 1.0
    os.utime(src, ns=(mtime - 10**9, mtime - 10**9))  # a changed file (other content, other mtime) -> a new store
    cfg2, _ = _cohort(tmp_path, values2)
    c2 = load_cohort(cfg2)
    assert len(list((tmp_path / "cache").iterdir())) == 2
    np.testing.assert_allclose(c2.omics[0], values2[4], rtol=1e-6)


def test_parquet_and_csv_give_the_same_scaled_rows(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.normal(size=(9, 40)).astype(np.float32)
    values[1, :5] = np.nan
    out = {}
    for ext in (".csv", ".parquet"):
        d = tmp_path / ext[1:]
        d.mkdir()
        cfg, _ = _cohort(d, values, ext)
        c = load_cohort(cfg)
        pre = TabularPreprocessor(cfg).fit(c, np.arange(6))
        arrays = pre.transform(c)
        out[ext] = (np.asarray(arrays["omics"]), np.asarray(arrays["omics_missing"]))
    np.testing.assert_allclose(out[".csv"][0], out[".parquet"][0], rtol=1e-5, atol=1e-6)
    assert (out[".csv"][1] == out[".parquet"][1]).all()
    # hand-computed: training rows 0..5 are omics rows 8..3 (reversed ids); row 6 -> omics row 2
    train = values[[8, 7, 6, 5, 4, 3]].astype(np.float64)
    expect = (values[2] - np.nanmean(train, 0)) / np.nanstd(train, 0)
    np.testing.assert_allclose(out[".csv"][0][6], expect, rtol=1e-4, atol=1e-5)
    assert out[".csv"][1][7, :5].all() and out[".csv"][1][9].all()  # omics row 1 partly missing; 'zz' has none


def test_matrix_pickles_as_a_reference_not_the_values(tmp_path):
    values = np.arange(200 * 100, dtype=np.float32).reshape(200, 100)
    cfg, _ = _cohort(tmp_path, values)
    c = load_cohort(cfg)
    blob = pickle.dumps(c.omics)
    assert len(blob) < 8000  # a loader worker reopens the file instead of receiving 80 kB of values
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back[[0, 1]], values[[199, 198]])
    sub = c.subset([3, 200, 0])  # Cohort.subset keeps the omics lazy (no N x G copy)
    assert isinstance(sub.omics, OmicsMatrix) and sub.omics.shape == (3, 100)
    np.testing.assert_array_equal(sub.omics[[0, 2]], values[[196, 199]])
    assert np.isnan(sub.omics[1]).all()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset VmHWM")
def test_20k_gene_pretraining_step_stays_within_memory_bound(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, str(PROBE), str(tmp_path), "1000", "20000"], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["omics_width"] == 20000 and np.isfinite(r["loss"])
    # one float32 copy of the cohort's omics is 76 MB; the in-memory path held several (float64 frame,
    # float32 copy, scaled copy + mask); the store path reads only the batch's rows
    assert r["peak_growth_mb"] < STEP_GROWTH_MB < 0.6 * r["matrix_mb"], r
