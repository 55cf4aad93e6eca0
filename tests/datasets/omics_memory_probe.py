"""Run in a subprocess by ``test_ds_omics_store.py``: one pretraining step on a wide-omics
cohort (load cohort, fit + transform the preprocessing, datasets, model, one AdamW step),
printing the peak resident memory (VmHWM) growth over it as JSON. The first such step
(store build, library imports, kernel warm-up) runs before the measured one.

    python tests/datasets/omics_memory_probe.py WORKDIR ROWS GENES
"""

import json
import os
import re
import sys
from pathlib import Path


def _kb(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def main(work: Path, rows: int, genes: int) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from clinfusion.config import load_config
    from clinfusion.datasets.synthetic import make_synthetic_cohort
    from clinfusion.models.io import build_model
    from clinfusion.models.pretrain_task import PretrainTask
    from clinfusion.training.pretrain import build_datasets

    syn = make_synthetic_cohort(work / "cohort", n_patients=rows // 2, images_per_patient=2, size=16, seed=0)
    ids = __import__("pandas").read_csv(syn.table)["id"].astype(str).tolist()
    rng = np.random.default_rng(0)
    templates = [",".join(f"{v:.0f}" for v in rng.normal(size=genes)) for _ in range(7)]  # short cells: fast to parse
    omics = work / "omics.csv"
    with open(omics, "w") as f:  # cheap to write: rows cycle through 7 value templates
        f.write("sid," + ",".join(f"g{j}" for j in range(genes)) + "\n")
        for i, sid in enumerate(ids):
            f.write(f"{sid},{templates[i % 7]}\n")
    tiny = ["model.image_encoder.name=cnn_tiny", "model.image_encoder.width=4", "model.tabular_encoder.hidden_size=16",
            "model.tabular_encoder.num_layers=1", "model.tabular_encoder.num_heads=2",
            "model.tabular_encoder.intermediate_size=32", "model.fusion.dim=16", "model.projection_dim=16",
            "pretrain.batch_size=8", "cohort.exclude=[]", "cohort.categorical=null", "image.size=[16,16]",
            f"cohort.omics={{table: {omics}, key_column: sid, cache_dir: {work / 'cache'}}}"]
    cfg = load_config(None, list(syn.overrides) + tiny + ["device=cpu", "pretrain.progress=false"])
    def step() -> tuple:
        _, pre, train, _ = build_datasets(cfg, work / "run", resume=False, write=False)
        task = PretrainTask(build_model(cfg, pre.schema), cfg.pretrain, 0.0)
        opt = torch.optim.AdamW(task.parameters(), lr=1e-3)
        batch = torch.utils.data.default_collate([train[i] for i in range(8)])
        loss = task(batch)["loss"]
        loss.backward()
        opt.step()
        return task, batch, float(loss.detach())

    import ctypes
    import gc
    import time

    t0 = time.perf_counter()
    step()  # first use: builds the omics store, imports pyarrow, warms torch kernels (not measured)
    first_s = time.perf_counter() - t0
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back so the measured region starts clean
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark (VmHWM)
    base = _kb("VmRSS")
    t0 = time.perf_counter()
    task, batch, loss = step()
    step_s = time.perf_counter() - t0
    params = sum(p.numel() for p in task.parameters())
    print(json.dumps({"base_mb": base / 1024, "peak_growth_mb": (_kb("VmHWM") - base) / 1024,
                      "matrix_mb": len(ids) * genes * 4 / 2 ** 20, "rows": len(ids), "genes": genes,
                      "omics_width": int(batch["omics"].shape[1]), "loss": loss, "params": params,
                      "first_use_s": first_s, "step_s": step_s}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
