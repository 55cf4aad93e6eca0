"""Predictive quality: every model, every seed, no selection on the test set.

1. **NIH chest X-ray cohort** (bundled, 760 films of 160 patients; ``abnormal``),
   non-transductive 5-fold CV: for each fold, ``run_pretrain`` on the demo config (configs/nih_cxr_demo.yaml)
   sees only that fold's train/val patients (``cohort.split_column``), then ``run_finetune``
   on the same config tests on the fold's held-out patients. Every head and
   baseline at label fractions 1/10/100%: AUROC mean ± sd over folds with a 95% t-interval.
2. **Planted synthetic cohorts** (:mod:`clinfusion.datasets.synthetic`: faint disc at a random
   place, noisy marker threshold, 4% label noise, distractor, site shift), 2D and 3D with
   different seeds, 3 seeds each, the demo configs' training settings: every model at
   1/10/100% labels, mean ± sd over seeds, beside the Bayes oracle of the planted truth on the
   same test rows; the issue's goals as sentences computed from the numbers.
3. **Recipes** (``benchmarks/_recipes.py``, H4): pretraining recipes by label efficiency.

``--budget tiny|small|full`` (default ``small``) sets epochs, seeds and sizes; the JSON records
the exact overrides used.

    python -m benchmarks.quality [--budget tiny|small|full] [--parts nih synthetic recipes] [--device ...]
                                 [--cache-dir DIR | --no-cache]  (finished parts are kept: see benchmarks._jobcache)
"""

from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pandas as pd

from benchmarks import _cli, _jobcache
from benchmarks._device import pick_device

NAME = "quality"
BUDGETS: Dict[str, Dict[str, Any]] = {  # "small" (default): the demo config's own epochs; 34-86 min with --jobs 2 on 2 cores
    "tiny": dict(nih_patients=24, nih_pre_epochs=1, nih_ft_epochs=1, nih_folds=3, nih_fractions=[1.0],
                 syn_patients=40, syn_size={2: 16, 3: 8}, syn_pre_epochs=1, syn_ft_epochs=1, syn_fractions=[1.0],
                 seeds={2: [0], 3: [100]}, dims=[2, 3], extra=["pretrain.batch_size=16", "finetune.batch_size=16"]),
    "small": dict(nih_patients=None, nih_pre_epochs=None, nih_ft_epochs=None, nih_folds=5, nih_fractions=[0.01, 0.1, 1.0],
                  syn_patients=300, syn_size={2: 32, 3: 24}, syn_pre_epochs=None, syn_ft_epochs=None,
                  syn_fractions=[0.01, 0.1, 1.0], seeds={2: [0, 1, 2], 3: [100, 101, 102]}, dims=[2, 3], extra=[]),
    "full": dict(nih_patients=None, nih_pre_epochs=None, nih_ft_epochs=None, nih_folds=5,
                 nih_fractions=[0.01, 0.1, 1.0], syn_patients=300, syn_size={2: 32, 3: 24}, syn_pre_epochs=None,
                 syn_ft_epochs=None, syn_fractions=[0.01, 0.1, 1.0], seeds={2: [0, 1, 2], 3: [100, 101, 102]},
                 dims=[2, 3], extra=[]),
}  # epochs None = the demo config's own values (pretrain 24, finetune 30)


def _epochs(pre: Any, ft: Any, extra: List[str] = ()) -> List[str]:
    return ([f"pretrain.epochs={pre}"] if pre else []) + ([f"finetune.epochs={ft}"] if ft else []) + list(extra)


def _fractions(values: List[float]) -> str:
    return "[" + ",".join(f"{f:g}" for f in values) + "]"


def nih(b: Dict[str, Any], work: Path, device: str, plots: Path) -> Dict[str, Any]:
    """The NIH section: per CV fold, pretrain without the fold's test patients, then fine-tune."""
    from benchmarks._quality_runs import (BASELINES, CHOSEN, HEADS, NIH_FINETUNE, NIH_PRETRAIN, auroc_plot, fold_tables,
                                          fused_vs_single, nih_subset, pretrain_finetune, run_records, seed_rows,
                                          t_ci, with_chosen)

    tables = fold_tables(nih_subset(work, b["nih_patients"]), b["nih_folds"], 0, work)
    common = [f"device={device}", "cohort.split_column=cv_split", "pretrain.progress=false"]
    ft = [f"finetune.label_fractions={_fractions(b['nih_fractions'])}", f"finetune.heads=[{','.join(HEADS)}]",
          f"finetune.baselines=[{','.join(BASELINES)}]", "evaluation.bootstrap=0"]
    epochs = _epochs(b["nih_pre_epochs"], b["nih_ft_epochs"], b["extra"])
    frames, secs = [], {"pretrain": 0.0, "finetune": 0.0}
    for f, table in enumerate(tables):
        over = [f"cohort.table={table}"] + common + epochs
        r = pretrain_finetune(NIH_PRETRAIN, over, NIH_FINETUNE, over + ft, work / f"nih{f}")
        frames.append(r["comparison"].assign(fold=f))
        secs["pretrain"] += r["pretrain_s"]
        secs["finetune"] += r["finetune_s"]
    runs = with_chosen(pd.concat(frames, ignore_index=True), "fold")
    rows = seed_rows(runs, oracle=False)
    ci = runs.groupby(["model", "label_fraction"], sort=False)["auroc"].agg(list).reset_index()
    ci["auroc"] = [float(np.mean(v)) for v in ci["auroc"]]
    bounds = [t_ci(v) for v in runs.groupby(["model", "label_fraction"], sort=False)["auroc"].agg(list)]
    ci["auroc_ci_low"], ci["auroc_ci_high"] = [x[0] for x in bounds], [x[1] for x in bounds]
    plot = auroc_plot(plots / "quality_nih.png", ci, "NIH CXR (abnormal): AUROC vs label fraction, "
                      f"{b['nih_folds']}-fold CV, non-transductive")
    verdict = fused_vs_single(runs, "NIH")
    note = (f"{verdict}. Non-transductive {b['nih_folds']}-fold CV: fold f's pretraining reads only its train/val "
            f"patients (test patients never seen, not even unlabelled). Each cell: AUROC over the {b['nih_folds']} "
            f"test folds, mean ± sd, 95% t-interval of the mean. Every model is reported; none is chosen on the "
            f"test folds; the {len(CHOSEN)} 'chosen on validation' rows hold, per fold, the head `clinfusion finetune` picks on "
            f"that fold's validation patients (highest validation AUROC): what a user of the toolkit gets. "
            f"Pretraining {secs['pretrain']:.0f} s, fine-tuning {secs['finetune']:.0f} s in total. "
            f"Overrides on the demo configs: {' '.join(common + epochs)}; finetune {' '.join(ft)}.")
    return {"title": "NIH chest X-ray: abnormal film, every model (non-transductive CV)", "columns": list(rows[0]),
            "rows": rows, "note": note, "plot": f"plots/{plot.name}", "verdict": {"text": verdict},
            "runs": run_records(runs, "fold")}


def synthetic(b: Dict[str, Any], dims: int, work: Path, device: str) -> Dict[str, Any]:
    """One planted-cohort section: every model at every label fraction over the dims' seeds."""
    from benchmarks._quality_runs import (BASELINES, CHOSEN, HEADS, NIH_FINETUNE, NIH_PRETRAIN, PLANTED_ON_DEMO,
                                          fused_vs_single, goal_sentences, oracle_aurocs, pretrain_finetune,
                                          run_records, seed_rows, with_chosen)
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    size = b["syn_size"][dims]
    frames, secs = [], {"pretrain": 0.0, "finetune": 0.0}
    cohort_keys = PLANTED_ON_DEMO + ["split.test_fraction=0.25"]
    for seed in b["seeds"][dims]:
        synth = make_synthetic_cohort(work / f"syn{dims}d_{seed}" / "cohort", n_patients=b["syn_patients"],
                                      images_per_patient=2, spatial_dims=dims, size=size, seed=seed)
        over = list(synth.overrides) + cohort_keys + [f"device={device}", f"seed={seed}", "pretrain.progress=false",
                                                      "image.cache=memory"] + _epochs(b["syn_pre_epochs"],
                                                                                      b["syn_ft_epochs"], b["extra"])
        ft = [f"finetune.label_fractions={_fractions(b['syn_fractions'])}", f"finetune.heads=[{','.join(HEADS)}]",
              f"finetune.baselines=[{','.join(BASELINES)}]", "evaluation.bootstrap=0"]
        r = pretrain_finetune(NIH_PRETRAIN, over, NIH_FINETUNE, over + ft, work / f"syn{dims}d_{seed}")
        splits = pd.read_csv(work / f"syn{dims}d_{seed}" / "finetune" / "splits.csv", dtype=str)
        test = splits.loc[splits["split"] == "test", "id"].tolist()
        labels = dict(zip(*[pd.read_csv(synth.table)[c].tolist() for c in ("id", "label")]))
        oracle = oracle_aurocs(synth.planted, test, labels)
        frames.append(r["comparison"].assign(seed=seed, **{f"oracle_{k}": v for k, v in oracle.items()}))
        secs["pretrain"] += r["pretrain_s"]
        secs["finetune"] += r["finetune_s"]
    runs = with_chosen(pd.concat(frames, ignore_index=True), "seed")
    rows = seed_rows(runs, oracle=True)
    goals = goal_sentences(runs, dims)
    verdict = fused_vs_single(runs, f"the planted {dims}D cohort")
    note = (f"{verdict}. Goals (100% labels, seed means): " + "; ".join(g["text"] for g in goals) + ". "
            f"{b['syn_patients']} patients x 2 images, {size}^{dims}, seeds {b['seeds'][dims]} (cohort, split and "
            f"weights change with the seed); holdout test split (25% of patients). The demo configs "
            f"(configs/nih_cxr_demo.yaml) give every training setting; overrides: "
            f"{' '.join(cohort_keys + _epochs(b['syn_pre_epochs'], b['syn_ft_epochs'], b['extra']))}; finetune {' '.join(ft)}. "
            f"Oracle: Bayes posterior of the planted truth on the same test rows, from the inputs the model sees "
            f"(image-only: the disc; tabular: the true marker; others: both). The {len(CHOSEN)} 'chosen on validation' rows: "
            f"per seed, the head `clinfusion finetune` picks on the validation patients (its oracle: the inputs of "
            f"the head picked). Pretraining {secs['pretrain']:.0f} s, "
            f"fine-tuning {secs['finetune']:.0f} s in total.")
    return {"title": f"Planted synthetic cohort, {dims}D: every model, {len(b['seeds'][dims])} seeds",
            "columns": list(rows[0]), "rows": rows, "note": note, "verdict": {"text": verdict, "goals": goals},
            "runs": run_records(runs, "seed")}


def _failed(title: str, exc: BaseException) -> Dict[str, Any]:
    line = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
    return {"title": title, "columns": ["status"], "rows": [{"status": "not measured"}], "note": f"Not measured: {line}"}


def _nih_task(b: Dict[str, Any], budget: str, work: Path, device: str, plots: Path) -> List[Dict[str, Any]]:
    sec = nih(b, work, device, plots)
    return [{**sec, "key": "nih"}]


def _synthetic_task(dims: int):
    def run(b: Dict[str, Any], budget: str, work: Path, device: str, plots: Path) -> List[Dict[str, Any]]:
        return [{**synthetic(b, dims, work, device), "key": f"{dims}d"}]
    return run


def _recipes_task(dims: int):
    def run(b: Dict[str, Any], budget: str, work: Path, device: str, plots: Path) -> List[Dict[str, Any]]:
        from benchmarks import _recipes

        return [_recipes.synthetic_section(_recipes.BUDGETS[budget], dims, work, device)]
    return run


def _recipes_nih_task(b: Dict[str, Any], budget: str, work: Path, device: str, plots: Path) -> List[Dict[str, Any]]:
    from benchmarks import _recipes

    return [_recipes.nih_section(_recipes.BUDGETS[budget], work, device)]


def tasks(budget: str, parts: List[str]) -> List[tuple]:
    """``(title if it fails, part, task name)`` in run order; the names index :data:`TASKS`."""
    from benchmarks import _recipes

    b, rb = BUDGETS[budget], _recipes.BUDGETS[budget]
    out = [("NIH chest X-ray: abnormal film, every model (non-transductive CV)", "nih", "nih")]
    out += [(f"Planted synthetic cohort, {d}D: every model", "synthetic", f"synthetic {d}d") for d in b["dims"]]
    out += [(f"Pretraining recipes, planted cohort {d}D", "recipes", f"recipes {d}d") for d in rb["dims"]]
    if rb.get("rec_nih"):
        out.append(("Pretraining recipes, NIH chest X-ray", "recipes", "recipes nih"))
    return [t for t in out if t[1] in parts]


TASKS = {"nih": _nih_task, "synthetic 2d": _synthetic_task(2), "synthetic 3d": _synthetic_task(3),
         "recipes 2d": _recipes_task(2), "recipes 3d": _recipes_task(3), "recipes nih": _recipes_nih_task}


def run_task(task: tuple, budget: str, work: Path, device: str, plots: Path, threads: Any) -> List[Dict[str, Any]]:
    """One task -> its sections; a failure becomes a "not measured" section naming the error.
    Runs in this process or in a worker process (``--jobs``), each with its own work folder."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    title, _, name = task
    folder = work / name.replace(" ", "_")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return TASKS[name](BUDGETS[budget], budget, folder, device, plots)
    except Exception as exc:  # noqa: BLE001 - record it and still run the other parts
        return [_failed(title, exc)]


def task_entry(task: tuple, budget: str, work: Path, device: str, plots: Path, threads: Any) -> Dict[str, Any]:
    """:func:`run_task`'s sections and the bytes of the plots they link (what the job cache keeps)."""
    sections = run_task(task, budget, work, device, plots, threads)
    files = {Path(sec["plot"]).name: (plots / Path(sec["plot"]).name).read_bytes()
             for sec in sections if sec.get("plot") and (plots / Path(sec["plot"]).name).is_file()}
    return {"sections": sections, "files": files}


def entry_measured(entry: Dict[str, Any]) -> bool:
    """A task entry worth keeping: none of its sections says "not measured"."""
    return not any(sec.get("rows") == [{"status": "not measured"}] for sec in entry["sections"])


def main(argv: List[str] | None = None) -> int:
    p = _cli.parser(NAME, __doc__)
    p.add_argument("--budget", choices=sorted(BUDGETS), default="small")
    p.add_argument("--parts", nargs="*", choices=["nih", "synthetic", "recipes"], default=["nih", "synthetic", "recipes"])
    p.add_argument("--jobs", type=int, default=1,
                   help="parts run in this many processes at once (each with --threads torch threads, default 1 on "
                        "CPU); results do not depend on it")
    _jobcache.add_options(p)
    args = p.parse_args(argv)
    _cli.setup(args)
    device = pick_device(args.device).type
    b = BUDGETS[args.budget]
    import torch

    threads = torch.get_num_threads() if device == "cpu" else None
    todo = tasks(args.budget, args.parts)
    cache = _jobcache.JobCache(args, NAME)
    paths = [cache.path((args.budget, t, device, threads), t[2]) for t in todo]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cf_quality_") as tmp:
        work, plots = Path(tmp), _cli.plots_dir(args)
        if args.jobs > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_jobcache.run_cached, q, task_entry, t, args.budget, work, device, plots,
                                       threads, keep=entry_measured) for t, q in zip(todo, paths)]
                entries = [f.result() for f in futures]
        else:
            entries = [_jobcache.run_cached(q, task_entry, t, args.budget, work, device, plots, threads,
                                            keep=entry_measured) for t, q in zip(todo, paths)]
        for entry in entries:  # a task read from the cache did not draw its plots this time
            for name, data in entry["files"].items():
                (plots / name).write_bytes(data)
    sections: List[Dict[str, Any]] = [sec for e in entries for sec in e["sections"]]  # always in task order
    verdicts: Dict[str, Any] = {}
    for sec in sections:
        if "verdict" in sec:
            verdicts[sec["key"]] = sec.pop("verdict")
        sec.pop("key", None)
    summary = (f"Budget '{args.budget}' ({b}); total {time.perf_counter() - t0:.0f} s with {args.jobs} job(s)"
               f"{cache.note()}. ") + " ".join(
        f"{k}: {v['text']}." for k, v in verdicts.items())
    _cli.write(NAME, args, sections, argv, extra={"summary": summary, "budget": args.budget, "budget_settings": b,
                                                  "verdicts": verdicts, "device": device, "tiny": args.tiny})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
