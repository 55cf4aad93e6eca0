"""Predictive quality: pretrained fusion vs single-modality and from-scratch baselines.

1. **NIH chest X-ray cohort** (bundled, 760 films of 160 patients; ``abnormal``):
   ``run_pretrain`` on ``configs/nih_cxr_demo.yaml``, then ``run_finetune`` on
   ``configs/nih_cxr_demo.yaml`` with ``finetune.cv_folds=5``,
   ``finetune.label_fractions=[0.01,0.1,1.0]``, ``finetune.heads=[linear,lightgbm,full]``
   and the baselines tabular-only LightGBM, image-only from scratch and fused from
   scratch: AUROC / AUPRC on the pooled out-of-fold predictions with 95% patient-bootstrap
   CIs, per label fraction.
2. **Planted synthetic cohorts** (2D and 3D, :func:`make_synthetic_cohort`), where the
   label needs both modalities: fusion must win clearly (fused AUROC >= 0.90, each
   single-modality baseline at least 0.05 lower).

``--budget tiny|small|full`` (default ``small``) sets epochs, bootstrap resamples and sizes;
the JSON records the exact overrides used.

    python -m benchmarks.quality [--budget tiny|small|full] [--parts nih synthetic] [--device ...] [--results-dir DIR]
"""

from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List

from benchmarks import _cli
from benchmarks._device import pick_device

NAME = "quality"
BUDGETS: Dict[str, Dict[str, Any]] = {
    "tiny": dict(nih_patients=24, nih_pre_epochs=1, nih_ft_epochs=1, nih_folds=3, fractions=[1.0],
                 bootstrap=10, nih_batch=16, syn_patients=36, syn_size={2: 16, 3: 8}, syn_pre_epochs=1,
                 syn_ft_epochs=1, dims=[2, 3]),
    "small": dict(nih_patients=None, nih_pre_epochs=12, nih_ft_epochs=15, nih_folds=5, fractions=[0.01, 0.1, 1.0],
                  bootstrap=200, nih_batch=64, syn_patients=200, syn_size={2: 32, 3: 16}, syn_pre_epochs=3,
                  syn_ft_epochs=15, dims=[2, 3]),
    "full": dict(nih_patients=None, nih_pre_epochs=30, nih_ft_epochs=25, nih_folds=5, fractions=[0.01, 0.1, 1.0],
                 bootstrap=1000, nih_batch=64, syn_patients=400, syn_size={2: 32, 3: 16}, syn_pre_epochs=10,
                 syn_ft_epochs=25, dims=[2, 3]),
}
NIH_FT_LR = 0.001  # finetune.lr of configs/nih_cxr_demo.yaml (also the linear probe's)
SYN_MODEL = [  # small enough for CPU; the planted rule needs no more
    "model.image_encoder.name=cnn_tiny", "model.fusion.dim=64", "model.projection_dim=64",
    "model.tabular_encoder.hidden_size=32", "model.tabular_encoder.num_layers=1", "model.tabular_encoder.num_heads=2",
    "model.tabular_encoder.intermediate_size=64", "model.modality_dropout=0.0",
]


def nih(b: Dict[str, Any], work: Path, device: str, plots: Path) -> Dict[str, Any]:
    """The NIH section (pretrain + 5-fold CV fine-tuning at three label fractions)."""
    from benchmarks._quality_runs import (BASELINES, HEADS, NIH_FINETUNE, NIH_PRETRAIN, auroc_plot, comparison_rows,
                                          nih_subset, pretrain_finetune)

    table = [f"cohort.table={nih_subset(work, b['nih_patients'])}"] if b["nih_patients"] else []
    pre = table + [f"device={device}", f"pretrain.epochs={b['nih_pre_epochs']}", "pretrain.progress=false",
                   f"pretrain.batch_size={b['nih_batch']}"]
    fractions = "[" + ",".join(f"{f:g}" for f in b["fractions"]) + "]"
    ft = table + [f"device={device}", f"finetune.cv_folds={b['nih_folds']}", f"finetune.label_fractions={fractions}",
                  f"finetune.heads=[{','.join(HEADS)}]", f"finetune.baselines=[{','.join(BASELINES)}]",
                  f"finetune.epochs={b['nih_ft_epochs']}", f"evaluation.bootstrap={b['bootstrap']}"]
    r = pretrain_finetune(NIH_PRETRAIN, pre, NIH_FINETUNE, ft, work / "nih")
    comp = r["comparison"]
    plot = auroc_plot(plots / "quality_nih.png", comp, "NIH CXR (abnormal): AUROC vs label fraction, 5-fold CV")
    rows = comparison_rows(comp)
    n_train = float(comp.loc[comp["label_fraction"] == comp["label_fraction"].max(), "n_train"].max())
    probe_steps = b["nih_ft_epochs"] * -(-int(n_train) // 64)  # finetune.batch_size of the demo config: 64
    note = (f"Every head and baseline trains for finetune.epochs={b['nih_ft_epochs']} (one setting for all): the "
            f"frozen-embedding linear probe gets ~{probe_steps} optimizer steps at label fraction 1.0 (lr "
            f"{NIH_FT_LR}); a probe below its baselines here may be under-trained rather than a weak embedding. "
            f"Pretraining is label-free on the pretrain config's own train split "
            f"(70% of patients), which overlaps the CV test folds: it is transductive for images and records, "
            f"never for labels. "
            f"Pooled out-of-fold test predictions of patient-grouped {b['nih_folds']}-fold CV; 95% CIs from "
            f"{b['bootstrap']} patient-bootstrap resamples. Pretraining {r['pretrain_s']:.0f} s, fine-tuning "
            f"{r['finetune_s']:.0f} s. Overrides: pretrain {' '.join(pre)}; finetune {' '.join(ft)}.")
    return {"title": "NIH chest X-ray: abnormal film, fusion vs baselines", "columns": list(rows[0]), "rows": rows,
            "note": note, "plot": f"plots/{plot.name}"}


def synthetic(b: Dict[str, Any], dims: int, work: Path, device: str) -> Dict[str, Any]:
    """One planted-cohort section (holdout split, label fraction 1.0)."""
    from benchmarks._quality_runs import BASELINES, HEADS, comparison_rows, fusion_verdict, pretrain_finetune
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    size = b["syn_size"][dims]
    synth = make_synthetic_cohort(work / f"synthetic{dims}d" / "cohort", n_patients=b["syn_patients"],
                                  images_per_patient=2, spatial_dims=dims, size=size, seed=0)
    common = list(synth.overrides) + SYN_MODEL + [f"device={device}", "split.val_fraction=0.15",
                                                  "split.test_fraction=0.25", "evaluation.subgroups=[]"]
    pre = common + [f"pretrain.epochs={b['syn_pre_epochs']}", "pretrain.batch_size=32", "pretrain.progress=false"]
    ft = common + [f"finetune.heads=[{','.join(HEADS)}]", f"finetune.baselines=[{','.join(BASELINES)}]",
                   f"finetune.epochs={b['syn_ft_epochs']}", "finetune.batch_size=32", "finetune.lr=0.003",
                   "finetune.encoder_lr=0.003", f"evaluation.bootstrap={b['bootstrap']}"]
    r = pretrain_finetune(None, pre, None, ft, work / f"synthetic{dims}d")
    verdict = fusion_verdict(r["comparison"])
    rows = comparison_rows(r["comparison"])
    note = (f"{b['syn_patients']} patients x 2 images, {size}^{dims}, label = faint disc AND noisy marker threshold (planted "
            f"truth: see clinfusion.datasets.synthetic). Holdout test split (25% of patients); 95% CIs from {b['bootstrap']} patient "
            f"bootstrap resamples. {verdict['text']}. Pretraining {r['pretrain_s']:.0f} s, fine-tuning "
            f"{r['finetune_s']:.0f} s. Overrides (besides the cohort's): {' '.join(common[len(synth.overrides):])}; "
            f"pretrain {' '.join(pre[len(common):])}; finetune {' '.join(ft[len(common):])}.")
    return {"title": f"Planted synthetic cohort, {dims}D: fusion must win", "columns": list(rows[0]), "rows": rows,
            "note": note, "verdict": verdict}


def _failed(title: str, exc: BaseException) -> Dict[str, Any]:
    line = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
    return {"title": title, "columns": ["status"], "rows": [{"status": "not measured"}], "note": f"Not measured: {line}"}


def main(argv: List[str] | None = None) -> int:
    p = _cli.parser(NAME, __doc__)
    p.add_argument("--budget", choices=sorted(BUDGETS), default="small")
    p.add_argument("--parts", nargs="*", choices=["nih", "synthetic", "recipes"], default=["nih", "synthetic", "recipes"])
    args = p.parse_args(argv)
    if args.tiny:
        args.budget = "tiny"
    _cli.setup(args)
    device = pick_device(args.device).type
    b = BUDGETS[args.budget]
    sections: List[Dict[str, Any]] = []
    verdicts: Dict[str, Any] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cf_quality_") as tmp:
        work = Path(tmp)
        if "nih" in args.parts:
            try:
                sections.append(nih(b, work, device, _cli.plots_dir(args)))
            except Exception as exc:  # noqa: BLE001 - record it and still run the synthetic part
                sections.append(_failed("NIH chest X-ray: abnormal film, fusion vs baselines", exc))
        if "synthetic" in args.parts:
            for dims in b["dims"]:
                try:
                    sec = synthetic(b, dims, work, device)
                    verdicts[f"{dims}d"] = sec.pop("verdict")
                    sections.append(sec)
                except Exception as exc:  # noqa: BLE001
                    sections.append(_failed(f"Planted synthetic cohort, {dims}D: fusion must win", exc))
        if "recipes" in args.parts:  # pretraining recipes by label efficiency: benchmarks/_recipes.py
            from benchmarks import _recipes

            for sec in _recipes.sections(args.budget, work, device):
                if "verdict" in sec:
                    verdicts[sec["key"]] = sec.pop("verdict")
                sections.append(sec)
    summary = f"Budget '{args.budget}' ({b}); total {time.perf_counter() - t0:.0f} s. " + " ".join(
        f"{k}: {v['text']}." for k, v in verdicts.items())
    _cli.write(NAME, args, sections, argv, extra={"summary": summary, "budget": args.budget, "budget_settings": b,
                                                  "verdicts": verdicts, "device": device, "tiny": args.tiny})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
