"""GPU throughput of realistic configurations: samples/s, MFU, step/bare ratio, data wait, memory.

For each configuration (2D 224 px ResNet-50 and ViT-S from
``configs/realistic_2d_gpu.yaml``; 3D 96^3 ResNet-18 and ViT-S from
``configs/ct_3d.yaml``), on a synthetic cohort of that size:

1. the real Trainer at the config's batch (or the largest that fits, if smaller), with the
   interleaved bare step of :mod:`benchmarks._step_overhead`: step/bare ratio and the
   share of the step spent waiting for data (``pretrain.num_workers`` from the config);
2. the largest batch that fits (doubling until CUDA OOM, capped), bf16 autocast;
3. at that batch: samples/s of the bare step, peak ``torch.cuda.max_memory_allocated``,
   FLOPs of one forward + backward (``FlopCounterMode``), model FLOPs utilisation
   against the device's bf16 dense peak (:data:`benchmarks._flops.BF16_PEAK_TFLOPS`);
4. the same MFU for the toolkit's step (engine + loader, from step 1): model FLOPs per
   sample x the trainer's batch / its median step time including the data wait.

Without a GPU it writes a section saying so (and what it would measure). ``--tiny`` runs
the whole pipeline on toy sizes on whatever device there is (a CPU dry run: not GPU figures).

    python -m benchmarks.gpu [--tiny] [--configs 2d_resnet50 2d_vit_small 3d_resnet18 3d_vit_small]
                             [--set KEY=VALUE ...] [--name NAME] [--results-dir DIR]

``--name`` writes ``<NAME>.json`` instead of ``gpu.json`` (e.g. one file per ``--set``), so runs
with other settings stand beside the default run in RESULTS.md.
"""

from __future__ import annotations

import gc
import math
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List

import torch

from benchmarks import _cli
from benchmarks._device import pick_device, precision
from benchmarks._pretrain_setup import ROOT

NAME = "gpu"
CFG_2D = ROOT / "configs" / "realistic_2d_gpu.yaml"
CFG_3D = ROOT / "configs" / "ct_3d.yaml"
COMMON = ["cohort.exclude=[]", "cohort.categorical=null", "cohort.on_bad_image=error", "image.cache=none",
          "image.cache_dir=null", "pretrain.epochs=2", "pretrain.progress=false"]

CONFIGS: Dict[str, Dict[str, Any]] = {
    "2d_resnet50": dict(config=CFG_2D, dims=2, size=224, start=64, cap=2048,
                        overrides=["model.image_encoder.name=resnet50"]),
    "2d_vit_small": dict(config=CFG_2D, dims=2, size=224, start=64, cap=2048,
                         overrides=["model.image_encoder.name=vit_small"]),
    "3d_resnet18": dict(config=CFG_3D, dims=3, size=96, start=4, cap=256,
                        overrides=["model.image_encoder.name=resnet18", "image.intensity.mode=scale"]),
    "3d_vit_small": dict(config=CFG_3D, dims=3, size=96, start=4, cap=512,  # 6^3 patches of 16^3 (MAE needs a ViT)
                         overrides=["model.image_encoder.name=vit_small", "image.intensity.mode=scale"]),
}
_TINY_MODEL = ["model.image_encoder.name=cnn_tiny", "model.image_encoder.width=4", "pretrain.num_workers=0",
               "model.tabular_encoder.hidden_size=16", "model.tabular_encoder.num_layers=1",
               "model.tabular_encoder.num_heads=2", "model.tabular_encoder.intermediate_size=32",
               "model.fusion.dim=16", "model.fusion.num_heads=2", "model.projection_dim=16"]
TINY: Dict[str, Dict[str, Any]] = {  # the same pipeline at toy sizes (smoke test / CPU dry run)
    "2d_resnet50": dict(config=CFG_2D, dims=2, size=16, start=2, cap=4, trainer_batch=2, rounds=2,
                        overrides=_TINY_MODEL),
    "3d_resnet18": dict(config=CFG_3D, dims=3, size=8, start=2, cap=4, trainer_batch=2, rounds=2,
                        overrides=_TINY_MODEL + ["image.intensity.mode=scale", "image.spacing=null",
                                                 "image.orientation=null", "pretrain.grad_checkpointing=false"]),
}


def tile(batch: Dict[str, Any], b: int) -> Dict[str, Any]:
    """Repeat a batch's rows up to ``b`` rows (same shapes per row)."""
    out = {}
    for k, v in batch.items():
        n = len(v)
        reps = math.ceil(b / n)
        out[k] = torch.cat([v] * reps)[:b] if isinstance(v, torch.Tensor) else (list(v) * reps)[:b]
    return out


def _cohort(work: Path, spec: Dict[str, Any], trainer_batch: int) -> List[str]:
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    rows = int(trainer_batch * 6 / 0.7) + 2 * trainer_batch  # ~6 training batches per epoch after the split
    rows = max(rows, 24)
    synth = make_synthetic_cohort(work / "cohort", n_patients=max(rows // 2, 8), images_per_patient=2,
                                  spatial_dims=spec["dims"], size=spec["size"])
    return list(synth.overrides)


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def measure_config(name: str, spec: Dict[str, Any], work: Path, device: torch.device) -> Dict[str, Any]:
    """All figures for one configuration (see the module docstring)."""
    from benchmarks import _step_overhead
    from benchmarks._batch_search import is_oom, largest_batch
    from benchmarks._flops import count_flops, mfu, peak_tflops
    from benchmarks._memory import PeakMemory
    from benchmarks._pretrain_setup import bare_step, load_run_config
    from benchmarks._timing import interleave, median

    base = load_run_config(spec["config"], spec["overrides"], device.type)
    trainer_batch = spec.get("trainer_batch", base.pretrain.batch_size)
    cohort = _cohort(work, spec, trainer_batch)
    while True:  # the config's batch, halved while it does not fit
        cfg = load_run_config(spec["config"], cohort + COMMON + spec["overrides"]
                              + [f"pretrain.batch_size={trainer_batch}"], device.type)
        try:
            st = _step_overhead.measure(cfg, work / f"run{trainer_batch}", device, warmup=2)
            break
        except RuntimeError as exc:
            if not is_oom(exc) or trainer_batch <= 1:
                raise
            trainer_batch //= 2
            _free()
    task, batch, lr = st["task"], st["batch_tensors"], cfg.pretrain.lr
    trainer_row = {k: st[k] for k in ("ratio", "trainer_s", "data_s", "bare_s", "steps")}  # trainer_s: median step incl. data wait
    del st
    _free()

    def try_step(b: int) -> None:
        step = bare_step(task, tile(batch, b), lr, device, cfg.pretrain)
        step()
        step()

    best = largest_batch(try_step, spec["start"], spec["cap"])
    _free()
    if best is None:
        raise RuntimeError(f"{name}: not even batch 1 fits")
    step = bare_step(task, tile(batch, best), lr, device, cfg.pretrain)
    times = interleave({"bare": step}, rounds=spec.get("rounds", 10), warmup=min(3, spec.get("rounds", 10)),
                       device=device)["bare"]
    pm = PeakMemory(device).start()
    step()
    pm.stop()
    del step
    _free()
    flops_b = min(best, spec["start"])
    flops = count_flops(_fwd_bwd(task, tile(batch, flops_b), device)) * best / flops_b
    step_s = median(times)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak = peak_tflops(dev_name)
    return {
        "config": name, "encoder": cfg.model.image_encoder.name, "image": "x".join(map(str, cfg.image.size)),
        "precision": precision(device), "max batch": best, "batch cap": spec["cap"],
        "samples/s": best / step_s, "ms/step": 1000 * step_s, "TFLOP/step": flops / 1e12,
        "TFLOP/s": flops / step_s / 1e12, "peak TFLOP/s": peak if peak else float("nan"),
        "MFU": mfu(flops, step_s, peak), "peak GB": pm.peak_mb / 1024,
        "toolkit samples/s": trainer_batch / trainer_row["trainer_s"],
        "toolkit MFU": mfu(flops / best * trainer_batch, trainer_row["trainer_s"], peak),
        "trainer batch": trainer_batch, "step/bare": trainer_row["ratio"],
        "data-wait share": trainer_row["data_s"] / trainer_row["trainer_s"], "num_workers": cfg.pretrain.num_workers,
    }


def _fwd_bwd(task: torch.nn.Module, batch: Dict[str, Any], device: torch.device):
    """Forward + backward of a copy of ``task`` without activation checkpointing: *model*
    FLOPs exclude the recomputation checkpointing adds (PaLM's MFU convention)."""
    import copy

    from benchmarks._device import autocast
    from benchmarks._pretrain_setup import move

    twin = copy.deepcopy(task).to(device).train()
    twin.model.set_grad_checkpointing(False)
    b = move(batch, device)

    def run() -> None:
        with autocast(device):
            loss = twin(b)["loss"]
        loss.backward()

    return run


def _plan_section() -> Dict[str, Any]:
    rows = [{"config": n, "file": str(s["config"].relative_to(ROOT)), "image": f"{s['size']}^{s['dims']}",
             "encoder": s["overrides"][0].split("=")[1], "batch search": f"{s['start']} doubling to <= {s['cap']}"}
            for n, s in CONFIGS.items()]
    return {"title": "GPU throughput: not measured (no GPU was available)", "columns": list(rows[0]), "rows": rows,
            "note": "No CUDA device was available to this run, so no GPU figure exists yet. The script is ready: on a "
                    "GPU machine `python -m benchmarks.gpu` measures, per configuration below, samples/s at the "
                    "largest batch that fits (bf16 autocast), model FLOPs utilisation (FlopCounterMode FLOPs / step "
                    "time / the bf16 dense peak of the device, e.g. H100 SXM 989, A100 312 TFLOP/s) of the bare step and of "
                    "the toolkit's step (engine + loader), the toolkit step / bare step ratio, the data-wait share and "
                    "peak torch.cuda.max_memory_allocated."}


def _result_section(title: str, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    cols = ["config", "encoder", "image", "precision", "max batch", "samples/s", "ms/step", "TFLOP/step",
            "TFLOP/s", "peak TFLOP/s", "MFU", "peak GB", "trainer batch", "toolkit samples/s", "toolkit MFU",
            "step/bare", "data-wait share", "num_workers"]
    return {"title": title, "columns": cols, "rows": rows,
            "note": "max batch: doubling until CUDA OOM or the cap; samples/s, ms/step, MFU and peak "
                    "memory of the bare step at that batch (bf16 autocast on CUDA, the config's "
                    "activation checkpointing); TFLOP/step: FlopCounterMode over one forward + backward "
                    "without checkpointing at a small batch, scaled to 'max batch' (model FLOPs; "
                    "optimizer not counted); MFU = TFLOP/step / step time / 'peak TFLOP/s' (bf16 dense "
                    "data-sheet peak of the device). Toolkit columns: the real Trainer (engine + "
                    "loader decoding images from disk, the config's num_workers) at 'trainer batch' "
                    "(the config's batch): samples/s and MFU from its median step including data wait "
                    "(model FLOPs per sample x trainer batch / step time / peak); step/bare and "
                    "data-wait share from the same run."}


def _summary(rows: List[Dict[str, Any]], gpu: str) -> str:
    """One sentence per measured configuration, computed from its row."""
    done = [r for r in rows if "samples/s" in r]
    failed = [r["config"] for r in rows if "samples/s" not in r]
    parts = [f"On {gpu}:"]
    for r in done:
        parts.append(f"{r['config']} reaches {r['samples/s']:,.0f} samples/s (bare step, batch {r['max batch']}, "
                     f"MFU {r['MFU']:.2f}); the toolkit's step at batch {r['trainer batch']} is "
                     f"{r['step/bare']:.2f}x the bare step ({'within' if r['step/bare'] <= 1.10 else 'above'} "
                     f"the 1.10 goal) and waits for data {100 * r['data-wait share']:.0f}% of the time.")
    if failed:
        parts.append(f"Failed: {', '.join(failed)} (see the table).")
    return " ".join(parts)


def main(argv: List[str] | None = None) -> int:
    p = _cli.parser(NAME, __doc__)
    p.add_argument("--configs", nargs="*", default=None, choices=sorted(CONFIGS))
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides added to every configuration (e.g. pretrain.losses.itm=0.5)")
    p.add_argument("--name", default=NAME, help="result file name (<name>.json); default 'gpu'")
    args = p.parse_args(argv)
    name = args.name
    _cli.setup(args)
    device = pick_device(args.device)
    sections: List[Dict[str, Any]] = []
    extra: Dict[str, Any] = {"device": str(device), "tiny": args.tiny}
    if device.type != "cuda":
        print("no GPU: nothing is measured on a GPU (the plan is written instead)")
        sections.append(_plan_section())
        extra["summary"] = "No GPU was available to this run: nothing was measured on a GPU."
    if device.type == "cuda" or args.tiny:
        specs = TINY if args.tiny else CONFIGS
        names = [n for n in (args.configs or list(specs)) if n in specs]
        rows: List[Dict[str, Any]] = []
        title = "GPU throughput" if device.type == "cuda" else "CPU dry run of the GPU benchmark (toy sizes; not GPU figures)"
        if args.set:
            title += f" with {' '.join(args.set)}"
        with tempfile.TemporaryDirectory(prefix="cf_gpu_") as tmp:
            for i, n in enumerate(names):
                t0 = time.perf_counter()
                try:
                    spec = dict(specs[n], overrides=list(specs[n]["overrides"]) + list(args.set))
                    rows.append(measure_config(n, spec, Path(tmp) / n, device))
                except Exception as exc:  # noqa: BLE001 - one failing config must not hide the others
                    traceback.print_exc()
                    rows.append({"config": n, "encoder": f"failed: {type(exc).__name__}: {str(exc)[:200]}"})
                _free()
                print(f"{n}: {time.perf_counter() - t0:.0f} s", flush=True)
                if i + 1 < len(names):  # a run killed later keeps the configurations already measured
                    _cli.write(NAME, args, sections + [_result_section(title, rows)], argv,
                               extra={**extra, "summary": f"Partial: {i + 1} of {len(names)} configurations measured "
                                                          "(the run did not finish)."}, file_name=name)
        sections.append(_result_section(title, rows))
        if device.type == "cuda":
            extra["summary"] = _summary(rows, torch.cuda.get_device_name(device))
    _cli.write(NAME, args, sections, argv, extra=extra, file_name=name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
