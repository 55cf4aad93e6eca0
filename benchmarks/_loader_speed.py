"""(b) Data-loader throughput vs training-step throughput, interleaved.

Each round: **A** iterates ``k`` batches of the Trainer's own loader
(``Trainer.loader(train_ds, epoch, train=True)``: the run's ``num_workers``, views,
MICLe partners, cache) and nothing else; **B** runs ``k`` bare training steps (the
task copy of :mod:`benchmarks._step_overhead`). After one untimed warm-up round (which
also fills an ``image.cache: memory`` cache) ratio = loader samples/s / training
samples/s: >= 1.5 means the loader keeps the training step fed with room to spare.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Callable, Dict, List

import torch

from benchmarks._device import sync
from benchmarks._timing import median


def measure(trainer: Any, train_ds: Any, step: Callable[[], Any], rounds: int, device: torch.device) -> Dict[str, Any]:
    """``rounds`` interleaved rounds of (one loader pass of k batches, k bare steps)."""
    batch = trainer.cfg.batch_size
    k = len(trainer.loader(train_ds, 0, True))
    load_s: List[float] = []
    step_s: List[float] = []
    for r in range(rounds + 1):
        loader = trainer.loader(train_ds, 100 + r, True)
        t0 = time.perf_counter()
        n = sum(1 for _ in itertools.islice(loader, k))
        t_load = time.perf_counter() - t0
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        sync(device)
        t_step = time.perf_counter() - t0
        if r:  # round 0 warms up (and fills an in-memory image cache)
            load_s.append(t_load / n)
            step_s.append(t_step / n)
    loader_sps, train_sps = batch / median(load_s), batch / median(step_s)
    return {"batches_per_round": k, "rounds": rounds, "num_workers": trainer.cfg.num_workers,
            "loader_s": median(load_s), "step_s": median(step_s), "loader_samples_s": loader_sps,
            "train_samples_s": train_sps, "ratio": loader_sps / train_sps}
