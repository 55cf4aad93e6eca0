"""Speed of the toolkit against its own floor, as ratios measured interleaved in one run.

(a) the real Trainer/PretrainTask step on real CohortDataset/DataLoader batches vs a bare
    forward + backward + AdamW step on preloaded tensors (goal: ratio <= 1.10);
(a2) the same with the fusion terms ITM + masked_fused on (goal: ratio <= 1.10);
(b) data-loader samples/s alone vs training-step samples/s (goal: >= 1.5 on the demo config);
(c) the CLIP loss with negatives gathered over 2 processes vs 1 process on the same global
    batch: time per step and loss equality (gloo on CPU, NCCL with 2 GPUs);
(d) attribution samples/s per explanation method (IG, occlusion, Grad-CAM, tabular IG,
    feature ablation, TreeSHAP).

Default: ``configs/nih_cxr_demo.yaml`` on the bundled NIH cohort (a few minutes
on 2 CPU cores). ``--tiny``: a small synthetic cohort, seconds. Any ``key=value`` after the
options overrides the config (e.g. ``pretrain.num_workers=2``).

    python -m benchmarks.speed [--tiny] [--config PATH] [--device auto|cpu|cuda] [--results-dir DIR] [key=value ...]
"""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path
from typing import Any, Dict, List

import torch

from benchmarks import _cli
from benchmarks._device import pick_device, precision
from benchmarks._timing import median as _median

NAME = "speed"
STEP_GOAL, LOADER_GOAL = 1.10, 1.5
FUSION_TERMS = ["pretrain.losses.itm=1.0", "pretrain.losses.masked_fused=1.0"]  # (a2): the fusion learns too


def _step_section(r: Dict[str, Any], label: str) -> Dict[str, Any]:
    row = {"config": label, "batch": r["batch"], "steps timed": r["steps"], "trainer ms": 1000 * r["trainer_s"],
           "data wait ms": 1000 * r["data_s"], "trainer ms excl. data": 1000 * r["trainer_compute_s"],
           "bare ms": 1000 * r["bare_s"], "ratio": r["ratio"], "goal": f"<= {STEP_GOAL}",
           "pass": r["ratio"] <= STEP_GOAL, "ratio incl. data": r["ratio_with_data"]}
    note = ("Trainer step (real PretrainTask, real CohortDataset/DataLoader batches, grad clipping, LR schedule, "
            "NaN check, metrics.csv + TensorBoard row every step) timed between two `step_callbacks` calls; after "
            "each, the callback runs one bare step (copy of the task, one preloaded batch, forward + backward + "
            "AdamW) - so the two alternate under the same load. Ratio = median over steps of (trainer step - its "
            "data wait from metrics.csv) / bare step. 'ratio incl. data' adds the loader's time (num_workers="
            f"{r['num_workers']}: loading runs in the training process).")
    return {"title": "(a) Training step: toolkit vs bare", "columns": list(row), "rows": [row], "note": note}


def _loader_section(r: Dict[str, Any], label: str) -> Dict[str, Any]:
    rows = []
    for key, what in (("", "as configured"), ("_nometa", "MONAI set_track_meta(False) (candidate fix)")):
        rows.append({"config": label, "loader": what, "num_workers": r["num_workers"],
                     "loader samples/s": r[f"loader_samples_s{key}"], "train step samples/s": r["train_samples_s"],
                     "ratio": r[f"ratio{key}"], "goal": f">= {LOADER_GOAL}", "pass": r[f"ratio{key}"] >= LOADER_GOAL})
    note = (f"Each of {r['rounds']} rounds (after one warm-up round) iterates {r['batches_per_round']} batches of the "
            "Trainer's own loader alone (two augmented views per sample, MICLe partners, the config's cache), the "
            "same with MONAI metadata tracking off, then runs as many bare training steps; medians per batch. "
            "With num_workers=0 loading and training share the process, so a ratio below 1 means the step waits "
            "for data most of the time.")
    return {"title": "(b) Data loader vs training step", "columns": list(rows[0]), "rows": rows, "note": note}


def _dist_section(r: Dict[str, Any], spec: Dict[str, Any]) -> Dict[str, Any]:
    from benchmarks._timing import median

    dl = max(abs(a - b) for a, b in zip(r["loss_2proc"], r["loss_1proc"]))
    row = {"backend": r["backend"], "global batch": spec["batch"], "ms/step 1 process": 1000 * median(r["times_1proc"]),
           "ms/step 2 processes": 1000 * median(r["times_2proc"]),
           "ratio 2p/1p": median(r["times_2proc"]) / median(r["times_1proc"]), "steps": len(r["loss_1proc"]),
           "max abs loss diff": dl, "max abs weight diff": r["max_weight_diff"], "equal": dl < 1e-4}
    note = (f"ClipPair ({spec['encoder']} width {spec['width']} at {spec['image']} px + tabular encoder + ClipLoss, SGD "
            f"lr {spec['lr']}): 2 DDP processes with B/2 rows each, negatives gathered with gather_with_grad, vs one "
            "process on all B rows, same initial weights and batches, alternating step by step in one process group. "
            "Loss equality holds along the whole trajectory (weights stay equal). On CPU both processes share the "
            "same 2 cores, so the 2-process time shows the communication overhead, not a speed-up.")
    return {"title": "(c) Distributed CLIP loss: 2 processes vs 1", "columns": list(row), "rows": [row], "note": note}


def _explain_section(r: Dict[str, Any]) -> Dict[str, Any]:
    rows = [{"method": m, "samples/s": v, "ms per batch": r["ms_per_batch"][m], "batch": r["batch"]}
            for m, v in r["samples_s"].items()]
    note = (f"Untrained fused classifier (linear head) on the config's model; one batch of {r['batch']} real samples, "
            f"methods interleaved over {r['rounds']} rounds after a warm-up. Settings: {r['settings']}.")
    if r["missing"]:
        note += f" Not registered (not measured): {', '.join(r['missing'])}."
    return {"title": "(d) Attribution throughput", "columns": ["method", "samples/s", "ms per batch", "batch"],
            "rows": rows, "note": note}


def _failed(title: str, exc: BaseException) -> Dict[str, Any]:
    line = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
    return {"title": title, "columns": ["status"], "rows": [{"status": "not measured"}],
            "note": f"Not measured: {line}"}


def main(argv: List[str] | None = None) -> int:
    from benchmarks import _dist, _explain_speed, _loader_speed, _step_overhead
    from benchmarks._pretrain_setup import DEMO_PRETRAIN, TINY_OVERRIDES, load_run_config, tiny_cohort

    p = _cli.parser(NAME, __doc__)
    p.add_argument("--config", type=Path, default=DEMO_PRETRAIN)
    p.add_argument("--skip", nargs="*", default=[], choices=["step", "fusion", "loader", "dist", "explain"])
    p.add_argument("overrides", nargs="*", help="dotted config overrides")
    args = p.parse_args(argv)
    _cli.setup(args)
    device = pick_device(args.device)
    tiny = args.tiny
    sections: List[Dict[str, Any]] = []
    headline: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cf_speed_") as tmp:
        work = Path(tmp)
        ov = (tiny_cohort(work) + TINY_OVERRIDES + ["explain.batch_size=4", "explain.ig_steps=4"]) if tiny else []
        cfg = load_run_config(args.config, ov + list(args.overrides), device.type)
        label = ("tiny synthetic cohort" if tiny else args.config.name) + f", {precision(device)}"
        step = None
        if "step" not in args.skip or "loader" not in args.skip or "explain" not in args.skip:
            step = _step_overhead.measure(cfg, work / "run", device, warmup=1 if tiny else 2)
            step["num_workers"] = cfg.pretrain.num_workers
            headline["step_ratio"] = step["ratio"]
            sections.append(_step_section(step, label))
        if "fusion" not in args.skip:  # (a) again with the fusion terms of issue 12 on (same goal)
            try:
                fcfg = load_run_config(args.config, ov + list(args.overrides) + FUSION_TERMS, device.type)
                r = _step_overhead.measure(fcfg, work / "run_fusion", device, warmup=1 if tiny else 2)
                r["num_workers"] = fcfg.pretrain.num_workers
                headline["step_ratio_fusion_terms"] = r["ratio"]
                sec = _step_section(r, label + ", + " + " ".join(FUSION_TERMS))
                sections.append(dict(sec, title="(a2) Training step with ITM + masked_fused on: toolkit vs bare"))
            except Exception as exc:  # noqa: BLE001
                sections.append(_failed("(a2) Training step with ITM + masked_fused on: toolkit vs bare", exc))
        if "loader" not in args.skip:
            from benchmarks._pretrain_setup import bare_step

            bare = bare_step(step["task"], step["batch_tensors"], cfg.pretrain.lr, device)
            r = _loader_speed.measure(step["trainer"], step["train_ds"], bare, 1 if tiny else 3, device)
            headline["loader_ratio"] = r["ratio"]
            headline["loader_ratio_track_meta_off"] = r["ratio_nometa"]
            sections.append(_loader_section(r, label))
        if "dist" not in args.skip:
            spec = dict(batch=16 if tiny else 128, image=16 if tiny else 32, encoder="vit_tiny",
                        width=32 if tiny else 64, rounds=2 if tiny else 8, warmup=1, lr=0.1,
                        threads=max(1, torch.get_num_threads() // 2))  # two processes share the cores
            try:
                r = _dist.run(spec)
                headline["dist_2p_over_1p"] = _median(r["times_2proc"]) / _median(r["times_1proc"])
                sections.append(_dist_section(r, spec))
            except Exception as exc:  # noqa: BLE001 - record and go on with the other parts
                sections.append(_failed("(c) Distributed CLIP loss: 2 processes vs 1", exc))
        if "explain" not in args.skip:
            try:
                r = _explain_speed.measure(step["task"], step["train_ds"], cfg, device, 1 if tiny else 3)
                sections.append(_explain_section(r))
            except Exception as exc:  # noqa: BLE001
                sections.append(_failed("(d) Attribution throughput", exc))
    summary = "; ".join(f"{k} {v:.2f}" for k, v in headline.items() if isinstance(v, float))
    _cli.write(NAME, args, sections, argv, extra={"summary": f"Headline ratios ({label}): {summary}.",
                                                  "headline": headline, "device": str(device), "tiny": tiny})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
