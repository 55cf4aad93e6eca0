"""run_explain's input checks (each bad input names what to fix)."""

import numpy as np
import pytest

from clinfusion.errors import ConfigError, DataError, RunDirError
from clinfusion.explain.run import check_out_dir, load_run, run_explain, select_rows, split_methods


def test_unknown_method_lists_valid():
    with pytest.raises(ConfigError) as err:
        split_methods(["integrated_gradients", "lime"])
    msg = str(err.value)
    assert "'lime'" in msg and "feature_ablation, tabular_ig" in msg and "gradcam" in msg
    assert split_methods(["tabular_ig", "gradcam"]) == (["gradcam"], ["tabular_ig"])


def test_out_dir_exists_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.html").write_text("x")
    with pytest.raises(RunDirError, match="output directory .*out' already exists: pass --overwrite"):
        check_out_dir(tmp_path / "out", overwrite=False)
    assert check_out_dir(tmp_path / "out", overwrite=True) == tmp_path / "out"
    assert check_out_dir(tmp_path / "new", overwrite=False) == tmp_path / "new"


def test_run_without_classifier(tmp_path):
    run = tmp_path / "pretrain_run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(RunDirError, match="has no fine-tuned classifier .*run `clinfusion finetune` first"):
        load_run(run)
    with pytest.raises(RunDirError, match="has no fine-tuned classifier"):
        run_explain(run, None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_ids_not_in_cohort_are_listed(tmp_path):
    ids = ["a", "b", "c"]
    with pytest.raises(DataError, match=r"cohort.csv: sample id\(s\) 'x', 'y' are not in the cohort"):
        select_rows(ids, ["a", "x", "y"], tmp_path, 8, "cohort.csv")
    np.testing.assert_array_equal(select_rows(ids, ["c", "a"], tmp_path, 8, "t"), [2, 0])


def test_default_rows_are_test_split(tmp_path):
    (tmp_path / "splits.csv").write_text("id,patient,split\na,p1,train\nb,p2,test\nc,p3,test\nd,p4,test\n")
    np.testing.assert_array_equal(select_rows(["a", "b", "c", "d"], None, tmp_path, 2, "t"), [1, 2])
    np.testing.assert_array_equal(select_rows(["a", "b"], None, tmp_path / "none", 5, "t"), [0, 1])
