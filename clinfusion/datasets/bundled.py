"""The bundled NIH ChestX-ray14 demo cohort (760 images, 160 patients, 64x64 PNG).

Data and attribution: ``clinfusion/datasets/data/nih_cxr_1k/README.md`` (Wang et al.,
"ChestX-ray8", CVPR 2017; NIH Clinical Center). ``findings`` and ``abnormal`` are labels,
never encoder inputs. Use ``cohort.table: pkg://nih_cxr_1k/clinical.csv`` in a config.
"""

from __future__ import annotations

from pathlib import Path

from sklearn.utils import Bunch

from clinfusion.datasets.table import read_table, resolve_table_path

NIH_TABLE = "pkg://nih_cxr_1k/clinical.csv"


def nih_cxr_dir() -> Path:
    """Folder holding ``clinical.csv``, ``images/`` and ``README.md``."""
    return resolve_table_path(NIH_TABLE).parent


def load_nih_cxr(as_frame: bool = True) -> Bunch:
    """Load the bundled cohort, scikit-learn style.

    Returns:
        Bunch with ``frame`` (the table; image paths relative to ``image_dir``'s parent),
        ``image_dir`` (Path), ``DESCR`` (README text), ``label`` (``"abnormal"``),
        ``target`` (the label column), ``feature_names`` (non-label clinical columns).
        With ``as_frame=False``, ``data`` / ``target`` are numpy arrays (``frame`` stays, for
        the image paths and patient ids).
    """
    root = nih_cxr_dir()
    frame = read_table(NIH_TABLE)
    features = [c for c in frame.columns if c not in ("image", "patient_id", "findings", "abnormal")]
    data = frame[features] if as_frame else frame[features].to_numpy()
    target = frame["abnormal"] if as_frame else frame["abnormal"].to_numpy()
    return Bunch(frame=frame, data=data, target=target,
                 feature_names=features, image_dir=root / "images", DESCR=(root / "README.md").read_text(),
                 label="abnormal", patient_column="patient_id", image_column="image")
