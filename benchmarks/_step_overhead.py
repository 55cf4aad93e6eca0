"""(a) The toolkit's training step vs the bare step, measured interleaved inside one run.

The real :class:`~clinfusion.training.engine.Trainer` trains the real
:class:`~clinfusion.models.PretrainTask` on batches from the real ``CohortDataset`` /
``DataLoader``. A ``step_callbacks`` hook (public API) runs after every optimizer step:
it reads the clock, runs one *bare* step (a copy of the task, a preloaded batch of the
same shapes, plain forward + backward + AdamW), and reads the clock again. So trainer
steps and bare steps alternate A, B, A, B under the same load.

Trainer step = time between two callbacks (steps of one epoch only: the epoch end writes
checkpoints). Its data wait comes from ``metrics.csv`` (``log_every=1``: one row per step).
Ratio = median over steps of (trainer step - its data wait) / bare step; the same with the
data wait included is reported beside it.

:func:`measure_finetune` does the same for fine-tuning: the same engine trains the ``full``
head's task (:class:`~clinfusion.downstream.neural.ClassifierTask` over a
``FusedClassifier``, ``finetune`` section) on the cohort's labelled rows (goal: <= 1.10).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Dict, List

import torch

from benchmarks._device import sync
from benchmarks._pretrain_setup import bare_step, build
from benchmarks._timing import median, timed


class _Interleaver:
    """``step_callbacks`` entry: times the trainer's step intervals and runs a bare step after each."""

    def __init__(self, bare, device: torch.device, warmup: int) -> None:
        self.bare, self.device, self.warmup = bare, device, warmup
        self.last_end: float | None = None
        self.last_epoch = -1
        self.rows: List[Dict[str, float]] = []  # step, trainer_s, bare_s

    def __call__(self, trainer: Any) -> None:
        sync(self.device)  # the trainer's step is queued on CUDA: its end is when the GPU finishes it
        start = time.perf_counter()
        step, epoch = trainer.progress.step, trainer.progress.epoch
        interval = start - self.last_end if (self.last_end is not None and epoch == self.last_epoch) else None
        bare_s = timed(self.bare, self.device)
        if interval is not None and step > self.warmup:
            self.rows.append({"step": step, "trainer_s": interval, "bare_s": bare_s})
        self.last_epoch = epoch
        sync(self.device)
        self.last_end = time.perf_counter()


def _data_wait(run_dir: Path) -> Dict[int, float]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return {int(r["step"]): float(r["data_wait_s"]) for r in csv.DictReader(f) if r["split"] == "train"}


def _measure(section: Any, train_ds: Any, task: Any, run_dir: Path, device_pref: str, seed: int,
             warmup: int) -> Dict[str, Any]:
    """Train ``task`` on ``train_ds`` with the interleaving callback; medians and ratios (seconds)."""
    from clinfusion.training.engine import Trainer

    cb = _Interleaver(None, torch.device("cpu"), warmup)
    trainer = Trainer(task, section, run_dir, device=device_pref, seed=seed, step_callbacks=[cb])
    batch = next(iter(trainer.loader(train_ds, 0, True)))
    cb.bare, cb.device = bare_step(task, batch, section.lr, trainer.device, section), trainer.device
    trainer.fit(train_ds, None)
    wait = _data_wait(run_dir)
    rows = [dict(r, data_s=wait.get(r["step"], float("nan"))) for r in cb.rows]
    if not rows:
        raise RuntimeError("no trainer step was timed: train for more steps (epochs x batches > warm-up + 1)")
    compute = [r["trainer_s"] - r["data_s"] for r in rows]
    bare = [r["bare_s"] for r in rows]
    return {
        "steps": len(rows), "batch": section.batch_size,
        "trainer_s": median([r["trainer_s"] for r in rows]), "data_s": median([r["data_s"] for r in rows]),
        "trainer_compute_s": median(compute), "bare_s": median(bare),
        "ratio": median([c / b for c, b in zip(compute, bare)]),
        "ratio_with_data": median([r["trainer_s"] / r["bare_s"] for r in rows]),
        "trainer_samples_s": section.batch_size / median(compute),
        "bare_samples_s": section.batch_size / median(bare),
        "train_ds": train_ds, "task": task, "trainer": trainer, "batch_tensors": batch,
    }


def measure(cfg: Any, run_dir: Path, device: torch.device, warmup: int = 2) -> Dict[str, Any]:
    """Pretraining: the real PretrainTask on the real views (``pretrain`` section)."""
    cfg = cfg.model_copy(deep=True)
    cfg.pretrain.log_every = 1
    train_ds, _, task = build(cfg, run_dir)
    return _measure(cfg.pretrain, train_ds, task, run_dir, cfg.device, cfg.seed, warmup)


def measure_finetune(cfg: Any, run_dir: Path, device: torch.device, warmup: int = 2) -> Dict[str, Any]:
    """Fine-tuning: the ``full`` head's task (FusedClassifier + loss) on the labelled rows, trained by the
    same engine with the ``finetune`` section (bare step: the same copy-of-the-task floor)."""
    import numpy as np

    from clinfusion.datasets.builder import load_run_cohort
    from clinfusion.datasets.preprocess import TabularPreprocessor
    from clinfusion.downstream.data import FinetuneData
    from clinfusion.downstream.labels import LabelInfo, labelled, targets_from_cohort
    from clinfusion.downstream.neural import ClassifierTask, cohort_dataset
    from clinfusion.models import FusedClassifier
    from clinfusion.models.io import build_model

    cfg = cfg.model_copy(deep=True)
    cfg.finetune.log_every = 1
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    cohort = load_run_cohort(cfg.cohort, cfg.image, require_labels=True, show=False)
    info = LabelInfo.from_spec(cohort.labels)
    rows = np.flatnonzero(labelled(targets_from_cohort(cohort, info), info.kind))
    pre = TabularPreprocessor(cfg.cohort).fit(cohort, rows)
    data = FinetuneData(cohort, pre, cfg.image, info, cfg.finetune.batch_size, cfg.finetune.num_workers)
    torch.manual_seed(cfg.seed)
    task = ClassifierTask(FusedClassifier(build_model(cfg, pre.schema), info.num_outputs), info.kind)
    return _measure(cfg.finetune, cohort_dataset(data, rows), task, run_dir, cfg.device, cfg.seed, warmup)
