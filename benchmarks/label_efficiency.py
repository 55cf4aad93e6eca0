"""Label efficiency with an unlabelled pool: what joint pretraining adds when unlabelled patients
outnumber labelled ones (issue 12's goal, in the setting it describes).

``benchmarks.quality``'s recipe tables pretrain on the labelled cohort's own training rows, so
"10% labels" there means 10% of a cohort that pretraining saw in full: the pretraining set is as
small as the labelled one. Clinical cohorts usually hold far more unlabelled patients (records and
images without the outcome) than labelled ones, and MMCL / TIP pretrain on those. Here, per seed,
the planted cohort generator draws ``patients + pool`` patients (1 image each); the first
``patients`` are the labelled cohort, split by patient into train / val / test (label-stratified,
:func:`clinfusion.datasets.splits.make_splits`: 15% val, 30% test), the other ``pool`` patients
are unlabelled. Two pretraining settings, both with the demo config (``configs/nih_cxr_demo.yaml``:
CLIP + SimCLR + SCARF + masked features, declared before any pooled run was judged):

* ``cohort only``: the labelled cohort's train and val rows (as in ``benchmarks.quality``);
* ``cohort + pool``: those rows and the pool's.

No pretraining run sees a test patient or any label (the label column is dropped from the
pretraining tables). ``run_finetune`` then trains the frozen fused linear probe at 1% / 10% / 100%
of the labelled training patients, beside the fused model trained from scratch on the same rows
(baseline ``fused_scratch``; the validation patients keep all their labels in both, as in every
benchmark here). Goals (issue 12, means over seeds): the probe at 10% >= 0.10 AUROC above from
scratch at 10%, and within 0.05 of its own 100%. The first pooled run (2D, seed 0, pool 900) was
explored as a script before this file existed: probe 0.869 at 10% vs from scratch 0.790.

    python -m benchmarks.label_efficiency [--budget tiny|small] [--dims 2 3]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pandas as pd

from benchmarks import _cli

NAME = "label_efficiency"
RECIPE = "clip+unimodal"  # benchmarks._recipes.RECIPES: the demo config's own loss weights
SETTINGS = ("cohort only", "cohort + pool")
RUN = ["cohort.split_column=split", "evaluation.bootstrap=0", "evaluation.missing_modality=false",
       "image.cache=memory"]
BUDGETS: Dict[str, Dict[str, Any]] = {
    "tiny": dict(patients=40, pool=40, size={2: 16, 3: 8}, seeds={2: [0], 3: [100]}, dims=[2], pre_epochs=1,
                 ft_epochs=1, extra=["pretrain.batch_size=8", "finetune.batch_size=8"]),
    "small": dict(patients=300, pool=900, size={2: 32, 3: 24}, seeds={2: [0, 1, 2], 3: [100, 101, 102]},
                  dims=[2, 3], pre_epochs=None, ft_epochs=None, extra=[]),
}


def cohorts(work: Path, b: Dict[str, Any], dims: int, seed: int) -> tuple[Dict[str, Path], List[str]]:
    """The labelled table (with its ``split``) and the two unlabelled pretraining tables; returns
    ``({"labelled", "cohort only", "cohort + pool"}: table, cohort overrides)``."""
    from clinfusion.config.schema import SplitConfig
    from clinfusion.datasets.splits import make_splits
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    syn = make_synthetic_cohort(work / "cohort", n_patients=b["patients"] + b["pool"], images_per_patient=1,
                                spatial_dims=dims, size=b["size"][dims], seed=seed)
    frame = pd.read_csv(syn.table)
    labelled_patients = set(sorted(frame["patient"].unique())[: b["patients"]])
    is_lab = frame["patient"].isin(labelled_patients).to_numpy()
    lab = frame[is_lab].copy()
    lab["split"] = make_splits(lab["patient"].to_numpy(), lab["label"].to_numpy(),
                               SplitConfig(val_fraction=0.15, test_fraction=0.3), seed)
    pool = frame[~is_lab].assign(split="train")
    folder = Path(syn.table).parent
    tables = {"labelled": folder / "labelled.csv", SETTINGS[0]: folder / "pretrain_cohort.csv",
              SETTINGS[1]: folder / "pretrain_pool.csv"}
    lab.to_csv(tables["labelled"], index=False)
    unlabelled = lab[lab["split"] != "test"]
    unlabelled.drop(columns=["label"]).to_csv(tables[SETTINGS[0]], index=False)
    pd.concat([unlabelled, pool]).drop(columns=["label"]).to_csv(tables[SETTINGS[1]], index=False)
    return tables, [o for o in syn.overrides if not o.startswith("cohort.table=")]


def runs(b: Dict[str, Any], dims: int, work: Path, device: str) -> pd.DataFrame:
    """Both settings for every seed; rows ``setting, recipe (RECIPE | (from scratch)), label_fraction, auroc``."""
    from benchmarks._quality_runs import PLANTED_ON_DEMO
    from benchmarks._recipes import FRACTIONS, run_cell

    frames = []
    for seed in b["seeds"][dims]:
        cell = work / f"{dims}d_s{seed}"
        tables, cohort = cohorts(cell, b, dims, seed)
        common = cohort + list(b["extra"]) + PLANTED_ON_DEMO + RUN + [f"device={device}", f"seed={seed}"]
        ft = [f"cohort.table={tables['labelled']}", "finetune.heads=[linear]",
              f"finetune.label_fractions=[{','.join(f'{f:g}' for f in FRACTIONS)}]"] + \
            ([f"finetune.epochs={b['ft_epochs']}"] if b["ft_epochs"] else [])
        for setting in SETTINGS:
            pre = [f"cohort.table={tables[setting]}", "cohort.label_column=null", "pretrain.progress=false"] + \
                ([f"pretrain.epochs={b['pre_epochs']}"] if b["pre_epochs"] else [])
            df = run_cell(common, pre, ft, cell / setting.replace(" ", "_").replace("+", "and"), [RECIPE])
            frames.append(df.assign(setting=setting, seed=seed,
                                    n_pretrain=len(pd.read_csv(tables[setting], usecols=["id"]))))
    return pd.concat(frames, ignore_index=True)


def section(b: Dict[str, Any], dims: int, work: Path, device: str) -> Dict[str, Any]:
    """One table (setting x model rows, every seed) and each setting's verdict on the goals."""
    from benchmarks._quality_runs import PLANTED_ON_DEMO
    from benchmarks._recipes import table_rows, verdict

    t0 = time.perf_counter()
    df = runs(b, dims, work, device)
    rows, verdicts = [], {}
    for setting in SETTINGS:
        part = df[df["setting"] == setting]
        for r in table_rows(part):
            rows.append({"setting": setting, **r, "pretraining rows": int(part["n_pretrain"].iloc[0])})
        verdicts[setting] = verdict(part, recipe=RECIPE)
    text = "; ".join(f"{s}: {v['text'].split('; highest mean')[0]}" for s, v in verdicts.items())
    note = (f"Planted cohort {dims}D, {b['size'][dims]}^{dims}, 1 image per patient; {b['patients']} labelled "
            f"patients (15% val, 30% test) and {b['pool']} unlabelled; seeds {b['seeds'][dims]} (cohort, split and "
            f"weights change with the seed). Label fractions are of the labelled training patients; 'n train "
            f"(100%)' counts them. Demo config; overrides: {' '.join(PLANTED_ON_DEMO + RUN)}, pretraining "
            f"cohort.label_column=null (no label column), fine-tuning finetune.heads=[linear] "
            f"finetune.baselines=[fused_scratch]. {text}. "
            f"{time.perf_counter() - t0:.0f} s in all.")
    return {"title": f"Label efficiency with an unlabelled pool, planted cohort {dims}D", "columns": list(rows[0]),
            "rows": rows, "note": note, "verdicts": verdicts}


def main(argv: Sequence[str] | None = None) -> int:
    p = _cli.parser(NAME, __doc__)
    p.add_argument("--budget", choices=sorted(BUDGETS), default="small")
    p.add_argument("--dims", nargs="*", type=int, choices=[2, 3], default=None)
    args = p.parse_args(argv)
    if args.tiny:
        args.budget = "tiny"
    _cli.setup(args)
    b = BUDGETS[args.budget]
    from benchmarks._device import pick_device

    device = pick_device(args.device).type
    t0 = time.perf_counter()
    sections, verdicts = [], {}
    with tempfile.TemporaryDirectory(prefix="cf_label_eff_") as tmp:
        for dims in args.dims or b["dims"]:
            sec = section(b, dims, Path(tmp), device)
            verdicts[f"{dims}d"] = sec.pop("verdicts")
            sections.append(sec)
    summary = f"Budget '{args.budget}' ({b}); total {time.perf_counter() - t0:.0f} s. " + " ".join(
        f"{d}, {s}: {v['text'].split('; highest mean')[0]}." for d, vs in verdicts.items() for s, v in vs.items())
    _cli.write(NAME, args, sections, argv, extra={"summary": summary, "budget": args.budget, "verdicts": verdicts, "tiny": args.tiny})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
