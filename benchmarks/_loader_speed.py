"""(b) Data-loader throughput vs training-step throughput, interleaved.

Each round: **A** iterates ``k`` batches of the Trainer's own loader
(``Trainer.loader(train_ds, epoch, train=True)``: the run's ``num_workers``, views,
MICLe partners, cache) and nothing else; **A'** does the same with MONAI's metadata
tracking switched off (``monai.data.set_track_meta(False)``, restored afterwards: a
candidate fix, since the per-sample view augmentation spends most of its time updating
``MetaTensor`` metadata); **B** runs ``k`` bare training steps (the task copy of
:mod:`benchmarks._step_overhead`). After one untimed warm-up round (which also fills an
``image.cache: memory`` cache) ratio = loader samples/s / training samples/s: >= 1.5
means the loader keeps the training step fed with room to spare.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from typing import Any, Callable, Dict, Iterator, List

import torch

from benchmarks._device import sync
from benchmarks._timing import median


@contextlib.contextmanager
def track_meta(enabled: bool) -> Iterator[None]:
    """Temporarily set MONAI's global ``track_meta``."""
    from monai.data import get_track_meta, set_track_meta

    before = get_track_meta()
    set_track_meta(enabled)
    try:
        yield
    finally:
        set_track_meta(before)


def _load(trainer: Any, train_ds: Any, epoch: int, k: int, meta: bool) -> tuple:
    with track_meta(meta):
        loader = trainer.loader(train_ds, epoch, True)
        t0 = time.perf_counter()
        n = sum(1 for _ in itertools.islice(loader, k))
        return time.perf_counter() - t0, n


def measure(trainer: Any, train_ds: Any, step: Callable[[], Any], rounds: int, device: torch.device) -> Dict[str, Any]:
    """``rounds`` interleaved rounds of (loader pass, loader pass without metadata, k bare steps)."""
    batch = trainer.cfg.batch_size
    k = len(trainer.loader(train_ds, 0, True))
    load_s: List[float] = []
    load_nometa_s: List[float] = []
    step_s: List[float] = []
    for r in range(rounds + 1):
        t_load, n = _load(trainer, train_ds, 100 + r, k, meta=True)
        t_nometa, _ = _load(trainer, train_ds, 100 + r, k, meta=False)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        sync(device)
        t_step = time.perf_counter() - t0
        if r:  # round 0 warms up (and fills an in-memory image cache)
            load_s.append(t_load / n)
            load_nometa_s.append(t_nometa / n)
            step_s.append(t_step / n)
    train_sps = batch / median(step_s)
    out = {"batches_per_round": k, "rounds": rounds, "num_workers": trainer.cfg.num_workers,
           "step_s": median(step_s), "train_samples_s": train_sps}
    for key, ts in (("", load_s), ("_nometa", load_nometa_s)):
        out[f"loader_s{key}"] = median(ts)
        out[f"loader_samples_s{key}"] = batch / median(ts)
        out[f"ratio{key}"] = batch / median(ts) / train_sps
    return out
