"""(b) Is the training step fed? Loader workers 0 / 1 / 2 on images read from disk, inside
the real training engine.

Per configuration (2D 224 px PNG, 2D 224 px JPEG, 3D 96^3 NIfTI; the default view
augmentations including rotation; ``image.cache=none`` so every sample is decoded from
disk) and per ``num_workers`` in 0, 1, 2 (persistent workers, ``prefetch_factor`` 2):

* **engine**: the real :class:`~clinfusion.training.engine.Trainer` trains the real
  :class:`~clinfusion.models.PretrainTask` for ``steps`` optimizer steps (the first two
  untimed); ``metrics.csv`` (one row per step) gives each step's data wait, the step's
  interval its total: data-wait share = wait / interval, step samples/s = batch / interval;
* **loader alone**: the same loader iterated without training (the first batch, which
  starts the workers, untimed): samples/s the data path can deliver;
* **encoder step**: the bare step (a copy of the task on one preloaded batch: forward +
  backward + AdamW): samples/s the model could take if data were free.

Loader/encoder >= 1 says the data path can keep up in principle; the data-wait share says
whether it does inside the engine (goal < 5%). On CPU the loader workers and the step
share the same cores, which the share shows.
"""

from __future__ import annotations

import csv
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

MODEL_2D = ["model.image_encoder.name=resnet10", "model.image_encoder.width=16"]
MODEL_3D = ["model.image_encoder.name=resnet10", "model.image_encoder.width=8"]
COMMON = ["model.tabular_encoder.hidden_size=32", "model.tabular_encoder.num_layers=1",
          "model.tabular_encoder.num_heads=2", "model.tabular_encoder.intermediate_size=64", "model.fusion.dim=32",
          "model.projection_dim=32", "image.cache=none", "pretrain.log_every=1", "pretrain.progress=false",
          "pretrain.persistent_workers=true", "cohort.categorical=[sex]", "device=cpu"]


def specs(tiny: bool) -> Dict[str, Dict[str, Any]]:
    if tiny:
        return {"2D PNG 32 px": dict(dims=2, size=32, ext="png", batch=4, steps=4, files=12, model=MODEL_2D),
                "3D NIfTI 16^3": dict(dims=3, size=16, ext="nii.gz", batch=2, steps=4, files=8, model=MODEL_3D)}
    return {"2D PNG 224 px": dict(dims=2, size=224, ext="png", batch=8, steps=6, files=48, model=MODEL_2D),
            "2D JPEG 224 px": dict(dims=2, size=224, ext="jpg", batch=8, steps=6, files=48, model=MODEL_2D),
            "3D NIfTI 96^3": dict(dims=3, size=96, ext="nii.gz", batch=2, steps=5, files=12, model=MODEL_3D)}


def write_images(work: Path, spec: Dict[str, Any]) -> List[str]:
    """``files`` distinct images on disk (2D: 10% larger than the target, so resizing is real;
    3D: 112^3 int16 volumes, 1.5 mm spacing)."""
    rng = np.random.default_rng(0)
    work.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(spec["files"]):
        name = f"img{i:03d}.{spec['ext']}"
        path = work / name
        if spec["dims"] == 2:
            from PIL import Image

            s = int(spec["size"] * 1.1)
            yy, xx = np.mgrid[:s, :s]
            img = 120 + 50 * np.sin(xx / (4 + i % 7)) + 40 * np.cos(yy / (6 + i % 5)) + rng.normal(0, 12, (s, s))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        else:
            import nibabel as nib

            s = int(spec["size"] * 7 / 6)
            vol = (rng.normal(0, 200, (s, s, s)) + 300 * np.sin(np.arange(s) / (3 + i % 4))[:, None, None]).astype(np.int16)
            nib.save(nib.Nifti1Image(vol, np.diag([1.5, 1.5, 1.5, 1.0])), str(path))
        names.append(name)
    return names


def _cohort(work: Path, spec: Dict[str, Any]) -> List[str]:
    import pandas as pd

    names = write_images(work, spec)
    n = max(len(names), int(spec["batch"] * (spec["steps"] + 2) / 0.7) + 4)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"id": [f"r{i:05d}" for i in range(n)], "image": [names[i % len(names)] for i in range(n)],
                          "age": rng.normal(60, 10, n).round(1), "bmi": rng.normal(27, 4, n).round(1),
                          "sex": rng.choice(["F", "M"], n)})
    frame.to_csv(work / "cohort.csv", index=False)
    return [f"cohort.table={work / 'cohort.csv'}", "cohort.id_column=id", "cohort.image_column=image",
            f"image.spatial_dims={spec['dims']}", f"image.size={[spec['size']] * spec['dims']}",
            f"pretrain.batch_size={spec['batch']}"]


class _Stop(Exception):
    pass


class _Clock:
    """``step_callbacks`` entry: step intervals; stops the run after ``steps`` steps."""

    def __init__(self, steps: int) -> None:
        self.steps, self.last, self.intervals = steps, None, []

    def __call__(self, trainer: Any) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.intervals.append((trainer.progress.step, now - self.last))
        self.last = now
        if trainer.progress.step >= self.steps:
            raise _Stop


def _engine(cfg: Any, run: Path, steps: int) -> Dict[str, Any]:
    from benchmarks._pretrain_setup import bare_step, build
    from benchmarks._timing import timed
    from clinfusion.training.engine import Trainer

    train_ds, _, task = build(cfg, run)
    clock = _Clock(steps)
    trainer = Trainer(task, cfg.pretrain, run, device="cpu", seed=cfg.seed, step_callbacks=[clock])
    bare = bare_step(task, next(iter(trainer.loader(train_ds, 99, True))), cfg.pretrain.lr, torch.device("cpu"))
    trainer._loaders.clear()
    try:
        trainer.fit(train_ds, None)
    except _Stop:
        pass
    with open(run / "metrics.csv", newline="") as f:
        wait = {int(r["step"]): float(r["data_wait_s"]) for r in csv.DictReader(f) if r["split"] == "train"}
    rows = [(s, dt, wait.get(s, float("nan"))) for s, dt in clock.intervals if s > 2]
    loader = trainer.loader(train_ds, 7, True)
    it = iter(loader)
    next(it)  # starts the workers: not timed
    t0, n = time.perf_counter(), 0
    for _ in range(min(3, len(loader) - 1)):
        n += len(next(it)["id"])
    load_s = (time.perf_counter() - t0) / max(n, 1)
    del it
    trainer._loaders.clear()
    bare_s = statistics.median([timed(bare) for _ in range(3)])
    step_s = statistics.median([dt for _, dt, _ in rows])
    wait_s = statistics.median([w for _, _, w in rows])
    b = cfg.pretrain.batch_size
    return {"steps": len(rows), "step_s": step_s, "wait_s": wait_s,
            "share": statistics.median([w / dt for _, dt, w in rows]), "step_sps": b / step_s,
            "loader_sps": 1.0 / load_s, "encoder_sps": b / bare_s}


def measure(work: Path, tiny: bool, workers=(0, 1, 2)) -> List[Dict[str, Any]]:
    """One row per (configuration, num_workers)."""
    from benchmarks._pretrain_setup import load_run_config

    out = []
    for label, spec in specs(tiny).items():
        cohort = _cohort(work / label.replace(" ", "_").replace("^", ""), spec)
        for w in workers:
            cfg = load_run_config(None, cohort + COMMON + spec["model"] + [f"pretrain.num_workers={w}"], "cpu")
            r = _engine(cfg, work / f"run_{label.replace(' ', '_').replace('^', '')}_{w}", spec["steps"])
            out.append({"config": label, "num_workers": w, "batch": spec["batch"], "steps timed": r["steps"],
                        "loader samples/s": r["loader_sps"], "encoder step samples/s": r["encoder_sps"],
                        "loader / encoder": r["loader_sps"] / r["encoder_sps"],
                        "engine step samples/s": r["step_sps"], "data wait ms": 1000 * r["wait_s"],
                        "data-wait share": r["share"]})
    return out
