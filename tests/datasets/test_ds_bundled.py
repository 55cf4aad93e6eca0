from pathlib import Path

import numpy as np

from clinfusion.config.loader import load_config
from clinfusion.datasets.bundled import load_nih_cxr, nih_cxr_dir
from clinfusion.datasets.cohort import load_cohort

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "nih_cxr_demo.yaml"


def test_bundled_files_and_attribution():
    d = nih_cxr_dir()
    assert (d / "clinical.csv").is_file()
    assert len(list((d / "images").glob("*.png"))) == 760
    readme = (d / "README.md").read_text()
    assert "Wang X, Peng Y, Lu L, Lu Z, Bagheri M, Summers RM" in readme
    assert "NIH Clinical Center" in readme and "shared data" in readme


def test_load_nih_cxr_bunch():
    b = load_nih_cxr()
    assert b.frame.shape[0] == 760 and b.frame["patient_id"].nunique() == 160
    assert b.label == "abnormal" and set(b.target.unique()) == {0, 1}
    assert "findings" not in b.feature_names and "abnormal" not in b.feature_names
    assert (b.image_dir / Path(b.frame["image"].iloc[0]).name).is_file()
    assert b.DESCR.startswith("# NIH chest X-ray")
    arr = load_nih_cxr(as_frame=False)
    assert isinstance(arr.data, np.ndarray) and arr.data.shape == (760, len(arr.feature_names))


def test_demo_config_loads_the_bundled_cohort():
    cfg = load_config(CONFIG)
    assert cfg.cohort.table == "pkg://nih_cxr_1k/clinical.csv" and cfg.image.size == [64, 64]
    c = load_cohort(cfg.cohort, require_labels=True)
    features = c.numeric + c.categorical
    assert "findings" not in features and "abnormal" not in features and "image" not in features
    assert c.categorical == ["sex", "view"] and "age" in c.numeric
    assert c.labels.task == "binary" and len(set(c.patients)) == 160
    assert all(Path(p).is_file() for p in c.image_paths[:5])
