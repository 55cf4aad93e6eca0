"""One point of a scaling curve, run in its own process so its peak memory is its own.

    python -m benchmarks._scaling_probe '{"work": DIR, "rows": N, "genes": G, "size": S, ...}'

Writes a cohort of ``rows`` rows (8 numeric + 1 categorical clinical columns; images cycle
through a pool of ``pool`` PNGs of ``size`` px on disk; ``genes`` omics columns as CSV,
rows cycling through a few value templates so the file is quick to write), then measures
in two phases, each with the resident-set high-water mark (``VmHWM``) reset at its start:

* **prepare**: the real data path of ``run_pretrain`` (cohort, omics store on first use,
  split, preprocessing fit + transform, datasets, model, Trainer);
* **train**: ``steps`` optimizer steps of the real Trainer on real loader batches (the first
  two untimed); time per epoch = median step time x steps per epoch (extrapolated).

Prints one JSON line.
"""

from __future__ import annotations

import ctypes
import gc
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict


def _kb(field: str) -> float:
    return float(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def _reset() -> float:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    Path("/proc/self/clear_refs").write_text("5")
    return _kb("VmRSS")


def write_cohort(spec: Dict[str, Any]) -> list:
    """The cohort files; returns config overrides."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    work, n, g, size = Path(spec["work"]), spec["rows"], spec["genes"], spec["size"]
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pool = []
    for i in range(spec.get("pool", 32)):
        p = work / f"img_{size}_{i}.png"
        if not p.exists():
            yy, xx = np.mgrid[:size, :size]
            img = (127 + 60 * np.sin(xx / (3 + i)) + 40 * np.cos(yy / (5 + i)) + rng.normal(0, 10, (size, size)))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(p)
        pool.append(p.name)
    ids = [f"s{i:07d}" for i in range(n)]
    frame = pd.DataFrame({"id": ids, "image": [pool[i % len(pool)] for i in range(n)],
                          **{f"x{j}": rng.normal(size=n).round(3) for j in range(8)},
                          "sex": rng.choice(["F", "M"], n)})
    frame.to_csv(work / "cohort.csv", index=False)
    over = [f"cohort.table={work / 'cohort.csv'}", "cohort.id_column=id", "cohort.image_column=image",
            "cohort.categorical=[sex]", f"image.size=[{size},{size}]"]
    if g:
        templates = [",".join(f"{v:.0f}" for v in rng.normal(size=g)) for _ in range(7)]
        with open(work / "omics.csv", "w") as f:
            f.write("sid," + ",".join(f"g{j}" for j in range(g)) + "\n")
            for i, sid in enumerate(ids):
                f.write(f"{sid},{templates[i % 7]}\n")
        over.append(f"cohort.omics={{table: {work / 'omics.csv'}, key_column: sid, cache_dir: {work / 'cache'}}}")
    return over


class _Stop(Exception):
    pass


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    import torch

    torch.set_num_threads(spec.get("threads", 1))
    from pyarrow import csv  # noqa: F401  (library load outside the measured phases)

    from clinfusion.config import load_config
    from clinfusion.models.io import build_model
    from clinfusion.models.pretrain_task import PretrainTask
    from clinfusion.training.engine import Trainer
    from clinfusion.training.pretrain import build_datasets

    over = write_cohort(spec)
    model = ["model.image_encoder.name=cnn_tiny", "model.image_encoder.width=8", "model.tabular_encoder.hidden_size=32",
             "model.tabular_encoder.num_layers=1", "model.tabular_encoder.num_heads=2",
             "model.tabular_encoder.intermediate_size=64", "model.fusion.dim=32", "model.projection_dim=32",
             f"pretrain.batch_size={spec['batch']}", "pretrain.num_workers=0", "pretrain.log_every=1000",
             "pretrain.progress=false", "device=cpu", "image.cache=none"]
    cfg = load_config(None, over + model + list(spec.get("overrides", [])))
    run = Path(spec["work"]) / f"run_{spec['rows']}_{spec['genes']}_{spec['size']}"
    run.mkdir(parents=True, exist_ok=True)
    base = _reset()
    t0 = time.perf_counter()
    _, pre, train_ds, _ = build_datasets(cfg, run, resume=False)
    task = PretrainTask(build_model(cfg, pre.schema), cfg.pretrain, cfg.model.modality_dropout)
    times: list = []
    last = [0.0]

    def stop_after(trainer: Any) -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now
        if len(times) >= spec["steps"]:
            raise _Stop

    trainer = Trainer(task, cfg.pretrain, run, device="cpu", seed=0, step_callbacks=[stop_after])
    prepare_s = time.perf_counter() - t0
    prepare_peak = _kb("VmHWM") - base
    base2 = _reset()
    last[0] = time.perf_counter()
    try:
        trainer.fit(train_ds, None)
    except _Stop:
        pass
    train_peak = _kb("VmHWM") - base2
    timed = sorted(times[2:])
    step_s = timed[len(timed) // 2]
    steps_per_epoch = len(train_ds) // cfg.pretrain.batch_size
    return {"rows": spec["rows"], "genes": spec["genes"], "size": spec["size"], "train_rows": len(train_ds),
            "batch": cfg.pretrain.batch_size, "steps_timed": len(timed), "step_s": step_s,
            "steps_per_epoch": steps_per_epoch, "epoch_s": step_s * steps_per_epoch, "prepare_s": prepare_s,
            "prepare_peak_mb": prepare_peak / 1024, "train_peak_mb": train_peak / 1024,
            "base_rss_mb": base / 1024, "peak_mb": max(prepare_peak, train_peak) / 1024}


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
