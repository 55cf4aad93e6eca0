"""Quality of ``clinfusion explain`` on the real pipeline (synthetic planted cohort).

The cohort plants ``label = (bright pattern in a known region) AND (marker > 0)``. A fused
classifier (``full`` head, no pretraining) is fine-tuned with :func:`run_finetune`, then
every image method and ``tabular_ig`` run on the positive test samples through the same
code as ``clinfusion explain``. Bars:

* **pointing game**: the map's maximum inside the planted region for >= 80% of positives;
* **marker first**: ``marker`` ranks first by mean |tabular attribution|;
* **deletion beats random**: deletion AUC below the random-order AUC (same steps, seed 0);
* **randomisation**: Spearman rho of |map| between the trained and a re-initialised model
  below 0.5 (Adebayo et al. 2018).

Also samples/s per method. ``--tiny`` runs a seconds-long smoke version (bars not expected).

    python -m benchmarks.explain_quality [--tiny] [--device auto|cpu|cuda] [--results-dir DIR]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

from benchmarks import _cli
from benchmarks._device import pick_device

NAME = "explain_quality"
POINTING_BAR = 0.8


def _sizes(tiny: bool) -> Dict[str, Any]:
    if tiny:
        return dict(patients=24, size=16, epochs=2, encoder="cnn_tiny", dims=[2])
    return dict(patients=150, size=32, epochs=25, encoder="cnn_tiny", dims=[2, 3])


def _finetune(root: Path, dims: int, sz: Dict[str, Any], device: str):
    from clinfusion.config import load_config
    from clinfusion.datasets.synthetic import make_synthetic_cohort
    from clinfusion.downstream.finetune import run_finetune

    size = sz["size"] if dims == 2 else 16
    synth = make_synthetic_cohort(root / f"cohort{dims}", n_patients=sz["patients"], images_per_patient=2,
                                  spatial_dims=dims, size=size, seed=0)
    cfg = load_config(None, list(synth.overrides) + [
        f"model.image_encoder.name={sz['encoder']}", "model.tabular_encoder.hidden_size=16",
        "model.tabular_encoder.num_layers=1", "model.tabular_encoder.num_heads=2",
        "model.tabular_encoder.intermediate_size=32", "model.fusion.dim=32", "model.projection_dim=16",
        "finetune.heads=[full]", "finetune.baselines=[]", f"finetune.epochs={sz['epochs']}",
        "finetune.batch_size=16", "finetune.lr=3e-3", "finetune.encoder_lr=3e-3", "evaluation.bootstrap=0",
        f"device={device}", f"image.intensity.mode={sz.get('intensity', 'none')}"] + ([f"explain.gradcam_layer={sz['gradcam_layer']}"] if sz.get("gradcam_layer") else []))
    return run_finetune(cfg, None, root / f"ft{dims}", show=False), synth


def _evaluate(run_dir: Path, synth: Any, device: torch.device) -> Dict[str, Any]:
    from clinfusion.downstream.external import prepare_external
    from clinfusion.explain.adapter import explainable_from_classifier
    from clinfusion.explain.faithfulness import deletion_insertion, randomization_check
    from clinfusion.explain.global_views import rank_features
    from clinfusion.explain.image import IMAGE_METHODS
    from clinfusion.explain.run import load_run, test_ids
    from clinfusion.explain.tabular import TABULAR_METHODS

    run, clf = load_run(run_dir, device=str(device))
    ex = explainable_from_classifier(clf, run.task)
    cfg = run.cfg.explain
    data = prepare_external(run, None, labelled=False).data
    data.device = device
    pos = set(synth.planted["pattern_ids"])
    frame = data.cohort.frame
    label = dict(zip(frame["id"].astype(str), frame["label"]))
    test = [i for i in test_ids(run_dir) if i in pos and label[i] == 1]
    rows = np.asarray([list(data.ids).index(i) for i in test])
    region = synth.planted["region"]
    hits: Dict[str, List[float]] = {m: [] for m in IMAGE_METHODS.names()}
    hits_tol: Dict[str, List[float]] = {m: [] for m in IMAGE_METHODS.names()}
    tol = max(1, (region[0][1] - region[0][0]) // 2)  # tolerance, px: half the region (cf. Zhang et al. 2016)
    faith: Dict[str, List[float]] = {m: [] for m in IMAGE_METHODS.names()}
    rnd: Dict[str, List[float]] = {m: [] for m in IMAGE_METHODS.names()}
    secs = {m: 0.0 for m in IMAGE_METHODS.names() + ["tabular_ig"]}
    tab_vals, names = [], None
    for batch, _ in data.batches(rows):
        t = torch.zeros(len(batch["id"]), dtype=torch.long, device=device)
        maps = {}
        for m in IMAGE_METHODS.names():
            t0 = time.perf_counter()
            maps[m] = IMAGE_METHODS.get(m)(ex, batch, t, cfg).float().cpu()
            secs[m] += time.perf_counter() - t0
            arg = np.unravel_index(maps[m].flatten(1).argmax(1).numpy(), maps[m].shape[1:])
            inside = np.all([(a >= lo) & (a < hi) for a, (lo, hi) in zip(arg, region)], axis=0)
            near = np.all([(a >= lo - tol) & (a < hi + tol) for a, (lo, hi) in zip(arg, region)], axis=0)
            hits[m] += inside.tolist()
            hits_tol[m] += near.tolist()
            auc = deletion_insertion(ex, batch, t, maps[m].to(device), cfg.faithfulness_steps)
            faith[m] += (auc["deletion"] - auc["deletion_random"]).tolist()
        t0 = time.perf_counter()
        a = TABULAR_METHODS.get("tabular_ig")(ex, batch, t, cfg)
        secs["tabular_ig"] += time.perf_counter() - t0
        tab_vals.append(a.values)
        names = a.names
        r = randomization_check(ex, batch, t, maps, lambda e, m: IMAGE_METHODS.get(m)(e, batch, t, cfg).float().cpu())
        for m, v in r.items():
            rnd[m].append(v["spearman_mean"])
    ranking = rank_features(np.concatenate(tab_vals), names)
    n = len(rows)
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    return {"n_positive_test": n, "auroc": {k: metrics.get(k) for k in ("auroc", "no_image/auroc", "no_table/auroc")}, "pointing": {m: float(np.mean(v)) for m, v in hits.items()},
            "pointing_tol": {m: float(np.mean(v)) for m, v in hits_tol.items()}, "tol": tol,
            "deletion_minus_random": {m: float(np.mean(v)) for m, v in faith.items()},
            "randomization_rho": {m: float(np.nanmean(v)) for m, v in rnd.items()},
            "marker_rank": int(ranking.index[ranking["feature"] == "marker"][0]) + 1,
            "top_feature": str(ranking["feature"][0]),
            "samples_per_s": {m: (n / s if s > 0 else float("nan")) for m, s in secs.items()}}


def main(argv: List[str] | None = None) -> int:
    p = _cli.parser(NAME, __doc__)
    p.add_argument("--dims", type=int, nargs="+", default=None, help="spatial dims to run (default: 2 3)")
    p.add_argument("--gradcam-layer", default=None, help="explain.gradcam_layer (default: the encoder's last stage)")
    p.add_argument("--intensity", default="none", choices=["none", "scale", "zscore"],
                   help="image.intensity.mode; per-image 'scale' lets a model read the pattern from the "
                        "global intensity range instead of the region (a shortcut no map can localise)")
    args = p.parse_args(argv)
    _cli.setup(args)
    device = pick_device(args.device)
    sz = _sizes(args.tiny)
    sz["dims"] = args.dims or sz["dims"]
    sz["gradcam_layer"] = args.gradcam_layer
    sz["intensity"] = args.intensity
    rows, speed, aurocs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for dims in sz["dims"]:
            run_dir, synth = _finetune(Path(tmp), dims, sz, device.type)
            r = _evaluate(run_dir, synth, device)
            for m in r["pointing"]:
                rows.append([f"{dims}D", m, r["n_positive_test"], r["pointing"][m], r["pointing"][m] >= POINTING_BAR,
                             f"{r['pointing_tol'][m]:.2f} (±{r['tol']} px)",
                             r["deletion_minus_random"][m], r["deletion_minus_random"][m] < 0,
                             r["randomization_rho"][m], r["randomization_rho"][m] < 0.5])
            speed += [[f"{dims}D", m, v] for m, v in r["samples_per_s"].items()]
            aurocs.append([f"{dims}D"] + list(r["auroc"].values()))
            rows.append([f"{dims}D", "tabular_ig: marker rank", r["n_positive_test"], r["marker_rank"],
                         r["marker_rank"] == 1, "", "", "", "", ""])
    sections = [
        {"title": "Explanation quality on the planted synthetic cohort",
         "columns": ["dims", "method", "n", "pointing / rank", "pointing pass", "pointing with tolerance",
                     "deletion - random AUC", "deletion pass", "randomisation rho", "randomisation pass"],
         "rows": rows,
         "note": "full head fine-tuned from scratch on the planted cohort (image.intensity.mode as in 'intensity'); "
                 "positives of the test split. Grad-CAM on cnn_tiny's last stage (stride 8: a 4x4 grid at 32 px, "
                 "2x2x2 at 16^3) is too coarse to put its maximum inside the 8 px box; it still beats random "
                 "deletion in 2D"},
        {"title": "Explanation speed", "columns": ["dims", "method", "samples/s"], "rows": speed},
        {"title": "Explained classifier (test split)", "columns": ["dims", "AUROC", "AUROC no image", "AUROC no table"],
         "rows": aurocs, "note": "1.0 with both modalities vs ~0.83 with one: the model uses the planted AND rule"},
    ]
    for sec in sections:  # RESULTS.md rows are dicts keyed by column
        sec["rows"] = [dict(zip(sec["columns"], r)) for r in sec["rows"]]
    _cli.write(NAME, args, sections, argv, extra={"device": str(device), "tiny": args.tiny,
                                                  "intensity": args.intensity})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
