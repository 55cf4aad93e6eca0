"""Distributed CLIP loss, 2 processes vs 1, measured interleaved inside one process group.

``run(spec)`` spawns 2 processes (gloo on CPU; NCCL when 2 GPUs are visible). Each round:

* **A** (distributed): both ranks take a DDP step of :class:`ClipPair` on their half of
  the global batch; the loss gathers negatives across ranks (``gather_with_grad``).
* **C** (compute only): both ranks take a plain step of a third copy on their half batch
  with no gathering and no gradient all-reduce: 1 - C/A is the communication share of A;
* **B** (one process): rank 0 alone takes a plain step of an identical copy of the model
  on the whole global batch with the threads of both processes (on CPU: equal total
  threads on both sides) while rank 1 waits at a barrier (not timed).

Both copies start from the same weights and see the same global batch, so if the
global-batch convention holds their losses stay equal step after step (the reported
difference) and their weights stay equal too. The image encoder is a ViT (LayerNorm):
BatchNorm statistics would legitimately differ between B/2 and B rows, and SyncBatchNorm
needs GPUs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2


def _build(spec: Dict[str, Any], device: torch.device):
    from benchmarks._clip_model import ClipPair, table_schema
    from clinfusion.config.schema import ImageEncoderConfig, TabularEncoderConfig

    torch.manual_seed(0)
    schema = table_schema(n_num=8, cards=(3, 5))
    model = ClipPair(ImageEncoderConfig(name=spec["encoder"], width=spec["width"]), TabularEncoderConfig(dropout=0.0),
                     schema, 2, 1, [spec["image"]] * 2).to(device).train()
    return model, schema


def _worker(rank: int, spec: Dict[str, Any], init_file: str, out_file: str) -> None:
    from benchmarks._clip_model import image_batch, table_batch
    from benchmarks._device import autocast, sync

    torch.set_num_threads(spec["threads"])
    use_cuda = spec["backend"] == "nccl"
    device = torch.device(f"cuda:{rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(spec["backend"], init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    model, schema = _build(spec, device)
    # find_unused_parameters: the empty omics projections of a table without omics get no gradient
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank] if use_cuda else None,
                                                    find_unused_parameters=True)
    opt_a = torch.optim.SGD(ddp.parameters(), lr=spec["lr"])
    local, _ = _build(spec, device)  # this rank's half batch without any communication (compute only)
    local.clip.gather = False
    opt_c = torch.optim.SGD(local.parameters(), lr=spec["lr"])
    single, _ = _build(spec, device) if rank == 0 else (None, None)
    if single is not None:
        single.clip.gather = False  # what one process computes; gathering here would wait for rank 1
    opt_b = torch.optim.SGD(single.parameters(), lr=spec["lr"]) if single is not None else None
    b, half = spec["batch"], spec["batch"] // WORLD
    rows = slice(rank * half, (rank + 1) * half)
    times_a, times_b, times_c, loss_a, loss_b = [], [], [], [], []
    for step in range(spec["warmup"] + spec["rounds"]):
        img = image_batch(b, 1, [spec["image"]] * 2, device, seed=step)
        tab = table_batch(schema, b, device, seed=step)
        dist.barrier()
        sync(device)
        t0 = time.perf_counter()
        opt_a.zero_grad(set_to_none=True)
        with autocast(device):
            loss = ddp(img[rows], **{k: v[rows] for k, v in tab.items()})
        loss.backward()
        opt_a.step()
        sync(device)
        ta = time.perf_counter() - t0
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)  # the global-batch loss is the mean of the per-rank losses
        dist.barrier()
        sync(device)
        t0 = time.perf_counter()
        opt_c.zero_grad(set_to_none=True)
        with autocast(device):
            lc = local(img[rows], **{k: v[rows] for k, v in tab.items()})
        lc.backward()
        opt_c.step()
        sync(device)
        tc = time.perf_counter() - t0
        dist.barrier()
        if rank == 0:
            if device.type == "cpu":  # equal total threads: one process gets both processes' threads
                torch.set_num_threads(spec["threads"] * WORLD)
            t0 = time.perf_counter()
            opt_b.zero_grad(set_to_none=True)
            with autocast(device):
                lb = single(img, **tab)
            lb.backward()
            opt_b.step()
            sync(device)
            tb = time.perf_counter() - t0
            torch.set_num_threads(spec["threads"])
            if step >= spec["warmup"]:
                times_a.append(ta)
                times_b.append(tb)
                times_c.append(tc)
                loss_a.append(float(mean_loss) / WORLD)
                loss_b.append(float(lb.detach()))
        dist.barrier()
    if rank == 0:
        wdiff = max(float((p.detach() - q.detach()).abs().max()) for p, q in zip(model.parameters(), single.parameters())
                    if p.numel())
        Path(out_file).write_text(json.dumps({"times_2proc": times_a, "times_1proc": times_b, "times_local": times_c, "loss_2proc": loss_a,
                                              "loss_1proc": loss_b, "max_weight_diff": wdiff}))
    dist.destroy_process_group()


def run(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Spawn the 2-process group; returns timings (s), losses and the final weight difference.

    ``spec``: ``batch`` (global), ``image``, ``encoder``, ``width``, ``rounds``, ``warmup``,
    ``lr``, ``threads`` (per process). The backend is NCCL with >= 2 GPUs, else gloo.
    """
    spec = dict(spec)
    spec["backend"] = "nccl" if torch.cuda.device_count() >= WORLD else "gloo"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        mp.spawn(_worker, args=(spec, os.path.join(tmp, "init"), out), nprocs=WORLD, join=True)
        res = json.loads(Path(out).read_text())
    res["backend"] = spec["backend"]
    return res
