"""``run_explain``: the ``clinfusion explain`` command (orchestration; takes the whole run).

Writes into ``out_dir``::

    maps/<id>.npy, maps/<id>_original.npy, maps/<id>__<method>.npy, maps/<id>.nii.gz (3D)
    overlays/<id>.png
    tabular.csv              primary tabular method: one row per id, one column per feature,
                             plus <feature>__missing flags (value NaN where missing)
    tabular_<method>.csv     every tabular method; omics_genes.csv (per-gene IG) with omics
    modality_share.csv, modality_summary.json
    global_features.csv/.png, class_maps/<class>.npy/.png
    faithfulness.json, timings.json, explained.json, report.html

A head that reads one input's embedding only (``linear_image`` / ``linear_table``) gets no
attributions for the other input: its prediction does not depend on it (a note in
explained.json says so); image maps of a LightGBM head come from a saved neural head that
reads the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from clinfusion.errors import ConfigError, DataError, RunDirError
from clinfusion.explain.adapter import explainable_from_classifier
from clinfusion.explain.image import IMAGE_METHODS, resolve_cam_layer
from clinfusion.explain.pipeline import Explainer, LightGBMView
from clinfusion.explain.results import ResultCollector
from clinfusion.explain.tabular import TABULAR_METHODS
from clinfusion.models.classifier import FEATURE_INPUTS


def split_methods(methods: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``(image methods, tabular methods)``; an unknown name -> ConfigError listing valid ones."""
    valid = IMAGE_METHODS.names() + TABULAR_METHODS.names()
    bad = [m for m in methods if m not in valid]
    if bad:
        raise ConfigError(f"unknown explain method(s) {', '.join(map(repr, bad))} (explain.methods / --methods): "
                          f"valid methods are {', '.join(valid)}")
    return [m for m in methods if m in IMAGE_METHODS], [m for m in methods if m in TABULAR_METHODS]


def check_out_dir(out_dir: str | Path, overwrite: bool) -> Path:
    out = Path(out_dir)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise RunDirError(f"output directory {str(out)!r} already exists: pass --overwrite or choose another --out")
    return out


def _make_out_dir(out: Path) -> Path:
    """Fresh output folder; only a folder clinfusion wrote (run marker) is ever replaced."""
    from clinfusion.training.rundir import prepare_run_dir

    return prepare_run_dir(out, overwrite=True)


def load_run(run_dir: str | Path, device: Optional[str] = None, head: Optional[str] = None):
    """``(FinetunedRun, neural classifier or None)`` of the primary head (or the saved ``head``);
    RunDirError for a run with no classifier or no such head."""
    from clinfusion.downstream.inference import (CLASSIFIER_DIR, META, load_finetuned, other_kind, read_head_meta,
                                                 read_meta)

    path = Path(run_dir)
    if path.is_dir() and not (path / CLASSIFIER_DIR / META).exists():
        raise RunDirError(f"run directory {str(path)!r} has no fine-tuned classifier ({CLASSIFIER_DIR}/{META}): "
                          + (other_kind(path, "fine-tuned")
                             or "run `clinfusion finetune` first and explain its output directory"))
    run = load_finetuned(path, device=device, head=head)
    neural = run.classifier
    if neural is None:  # lightgbm head: image maps through a saved neural head that reads the image,
        reads = {}      # one on the fused embedding (what LightGBM reads) first, then concat, then image
        for other in (h for h in read_meta(path)["heads"] if h != run.head):
            hmeta = read_head_meta(path, other)
            if hmeta["format"] == "fused_classifier":
                reads.setdefault(hmeta.get("features", "fused"), other)
        surrogate = next((reads[k] for k in SURROGATE_ORDER if k in reads), None)
        if surrogate is not None:
            neural = load_finetuned(path, head=surrogate, device=device).classifier
    return run, neural


SURROGATE_ORDER = ("fused", "concat", "image")  # embeddings a LightGBM head's image maps may come through


# the input a head does not read -> (its methods' kind, the note that says why)
UNREAD = {"image": ("image", "reads only the record's embedding: its prediction does not depend on the image, "
                             "so no image maps are made"),
          "table": ("tabular", "reads only the image embedding: its prediction does not depend on the record, "
                               "so no clinical attributions are made")}


def one_input_methods(run: Any, image_methods: List[str], tabular_methods: List[str],
                      notes: List[str]) -> Tuple[List[str], List[str]]:
    """The methods a neural primary head can be explained by: a head on one input's embedding
    (:data:`~clinfusion.models.classifier.FEATURE_INPUTS`) drops the other input's methods (gradients
    through an unused input do not exist) and adds a note."""
    features = getattr(run.classifier, "features", "fused") if run.classifier is not None else "fused"
    methods = {"image": image_methods, "tabular": tabular_methods}
    for unread in sorted(set(UNREAD) - set(FEATURE_INPUTS[features])):
        kind, why = UNREAD[unread]
        if methods[kind]:
            notes.append(f"the explained head ({run.head}) {why} ({', '.join(methods[kind])} skipped)")
        methods[kind] = []
    return methods["image"], methods["tabular"]


def test_ids(run_dir: Path) -> List[str]:
    """Ids of the run's test split (``splits.csv``), in file order; [] when unknown."""
    path = Path(run_dir) / "splits.csv"
    if not path.exists():
        return []
    frame = pd.read_csv(path, dtype=str)
    if "split" not in frame.columns or "id" not in frame.columns:
        return []
    return frame.loc[frame["split"] == "test", "id"].tolist()


def select_rows(cohort_ids: Sequence[str], ids: Optional[Sequence[str]], run_dir: Path, max_samples: int,
                table: str) -> np.ndarray:
    """Cohort rows to explain: ``ids`` (all must exist) or up to ``max_samples`` test-split rows."""
    index = {str(i): k for k, i in enumerate(cohort_ids)}
    if ids:
        unknown = [i for i in ids if str(i) not in index]
        if unknown:
            shown = ", ".join(map(repr, unknown[:20])) + (f" (+{len(unknown) - 20} more)" if len(unknown) > 20 else "")
            raise DataError(f"{table}: sample id(s) {shown} are not in the cohort: check --ids against the id column")
        return np.asarray([index[str(i)] for i in ids], dtype=np.int64)
    wanted = [index[i] for i in test_ids(run_dir) if i in index]
    rows = wanted if wanted else list(range(len(cohort_ids)))
    return np.asarray(rows[:max_samples], dtype=np.int64)


def _lightgbm_view(run: Any) -> LightGBMView:
    table = explainable_from_classifier(run.model, run.kind)
    return LightGBMView(boosters=run.boosters, features=run.features, feature_names=run.feature_names,
                        clinical=list(run.preprocessor.schema.clinical_columns), predict_proba=run.predict_proba,
                        num_outputs=run.label.num_outputs, kind=run.kind,
                        table=table if table.token_layer is not None else None)


def explain_section(run_dir: Path, overrides: Optional[Sequence[str]]) -> Any:
    """The run's ``explain`` section with dotted ``explain.*`` overrides applied (others refused)."""
    from clinfusion.config import load_config

    bad = [o for o in overrides or () if not o.strip().startswith("explain.")]
    if bad:
        raise ConfigError(f"override(s) {', '.join(map(repr, bad))} cannot change a fine-tuned run at explain time: "
                          "only explain.* settings (e.g. explain.gradcam_layer=...) can be overridden")
    return load_config(Path(run_dir) / "config.yaml", list(overrides or ())).explain


def run_explain(run_dir: str | Path, table: Optional[str], out_dir: str | Path, ids: Optional[List[str]] = None,
                methods: Optional[List[str]] = None, overwrite: bool = False,
                overrides: Optional[Sequence[str]] = None, head: Optional[str] = None) -> Path:
    """Explain samples of a fine-tuned run; returns ``out_dir`` (see the module docstring).

    ``overrides``: dotted ``explain.*`` settings applied on top of the run's config. ``head``: a
    saved head other than the one chosen on validation (the run's primary).

    Raises:
        RunDirError: no fine-tuned classifier in ``run_dir``; ``out_dir`` exists without ``overwrite``.
        ConfigError: unknown method; Grad-CAM layer not in the model (candidates listed).
        DataError: ``ids`` not in the cohort (listed); unusable table.
    """
    from clinfusion.training.distributed import resolve_device
    from clinfusion.downstream.inference import prepare_external

    out = check_out_dir(out_dir, overwrite)
    run, neural = load_run(run_dir, head=head)
    cfg = explain_section(Path(run_dir), overrides) if overrides else run.cfg.explain
    image_methods, tabular_methods = split_methods(methods or cfg.methods)
    device = resolve_device(run.cfg.device)
    notes: List[str] = []
    image_methods, tabular_methods = one_input_methods(run, image_methods, tabular_methods, notes)
    ex = None
    if neural is not None:
        ex = explainable_from_classifier(neural.to(device), run.kind)
        if "gradcam" in image_methods:
            resolve_cam_layer(ex, cfg.gradcam_layer)
    run.model.to(device)
    lgbm = _lightgbm_view(run) if run.classifier is None else None
    if lgbm is not None:
        notes.append("the explained head is LightGBM: clinical attributions are its TreeSHAP values"
                     + ("; image maps come from the run's neural head" if ex is not None
                        else "; image maps are unavailable: no saved neural head reads the image"))
        if lgbm.table is not None and lgbm.table.omics_groups:
            notes.append("omics attributions of the LightGBM head are feature_ablation through encoder and trees "
                         "(tabular.csv; TreeSHAP sees the genes only inside fused_embedding, "
                         "tabular_treeshap.csv)" if "feature_ablation" in tabular_methods else
                         "TreeSHAP sees the omics only inside fused_embedding: add feature_ablation to "
                         "explain.methods for per-group omics attributions of the LightGBM head")
    ext = prepare_external(run, table, labelled=False)
    data = ext.data
    data.batch_size, data.device = max(cfg.batch_size, 1), device
    rows = select_rows(data.ids, ids, Path(run_dir), cfg.max_samples, ext.table)
    out = _make_out_dir(out)
    from clinfusion.datasets.builder import write_skipped

    write_skipped(ext.cohort, out)
    explainer = Explainer(ex, cfg, image_methods, tabular_methods, lgbm)
    collector = ResultCollector(out, run, data, explainer)
    batches = data.batches(rows)
    for batch, idx in tqdm(batches, total=-(-len(rows) // data.batch_size), desc="explain", unit="batch"):
        collector.add(explainer.explain_batch(batch), batch, idx)
    if run.cfg.image.orientation or run.cfg.image.spacing:
        notes.append("maps/<id>_original.npy are resized to the original size; orientation/spacing were not inverted")
    collector.finish(notes)
    return out
