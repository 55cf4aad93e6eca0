"""The one training loop: optimisation, precision, accumulation, DDP, checkpoints, logging.

``Trainer(task, section, run_dir, device="auto", seed=0)`` trains any ``task`` module whose
``forward(batch) -> {"loss": [], "<name>_loss": [] ...}``: pretraining
(:class:`clinfusion.models.PretrainTask`, ``section = cfg.pretrain``), fine-tuning
(:class:`clinfusion.downstream.neural.ClassifierTask`, ``section = cfg.finetune``) and the
federated local rounds. ``task.model`` holds the weights saved as ``model.safetensors``;
``task.after_step()`` (optional) runs after each optimizer step. The task owns model and
loss; the loop only does optimisation, precision, checkpoints and logging.

The section gives the engine keys ``epochs, batch_size, lr, weight_decay, warmup_epochs,
grad_accum, grad_clip, precision, grad_checkpointing, compile, channels_last, num_workers,
pin_memory, checkpoint_every_steps, log_every, progress`` (``checkpoint_every``: epochs, default 1).
``compile`` / ``channels_last`` apply to the image encoders inside the task during :meth:`Trainer.fit`
(:func:`image_speedups`).

Model selection: after each epoch the validation rows give the mean loss terms
(:meth:`Trainer.evaluate`) plus, optionally, ``val_metrics(trainer) -> {name: value}``
(e.g. AUROC); ``monitor`` / ``maximize`` name the value that picks ``checkpoints/best``
(default: the lowest validation loss; ``None``: the latest epoch, a fixed budget) and ``patience`` stops after that many epochs
without improvement (early stopping). :meth:`Trainer.load_best` restores the kept weights.

Reproducibility: the data order of epoch ``e`` depends only on ``(seed, e)`` (a fresh
seeded loader / ``DistributedSampler.set_epoch`` per epoch). A checkpoint stores the
step within the epoch; on resume the consumed batches are re-read (not trained on), so the
views' random state matches too, and every RNG is restored before the next step: a run
killed after a checkpoint and resumed ends with the same weights as one never stopped.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from clinfusion.config.schema import EngineConfig
from clinfusion.errors import ConfigError, TrainingError
from clinfusion.training import distributed as D
from clinfusion.training.checkpoint import (MODEL_FILE, load_checkpoint, resolve_checkpoint, save_checkpoint,
                                           set_rng_state)
from clinfusion.training.logging import MetricsLogger
from clinfusion.training.schedule import build_optimizer, build_scheduler, param_groups

StepCallback = Callable[["Trainer"], None]


@dataclass
class Progress:
    epoch: int = 0  # epoch being run (0-based)
    step: int = 0  # optimizer steps done in total
    step_in_epoch: int = 0  # batches of `epoch` already consumed
    best: float = math.inf  # best monitored validation value so far (negated when maximised)
    bad_epochs: int = 0  # epochs since the best one (early stopping)
    stopped: bool = False  # early stopping ended the run


class _Window:
    """Sums over the steps since the last log row; a checkpoint stores them (:meth:`state`), so the
    row logged after a resume covers the same steps as the uninterrupted run's."""

    def __init__(self) -> None:
        self.n, self.samples, self.data, self.compute = 0, 0, 0.0, 0.0
        self.terms: Dict[str, float] = {}

    def add(self, out: Dict[str, Tensor], samples: int, data_s: float, compute_s: float) -> None:
        self.n += 1
        self.samples += samples
        self.data += data_s
        self.compute += compute_s
        for k, v in out.items():
            if k.endswith(("loss", "_acc")):  # loss terms and accuracies (itm_acc)
                self.terms[k] = self.terms.get(k, 0.0) + float(v.detach())

    def state(self) -> Dict[str, Any]:
        return {"n": self.n, "samples": self.samples, "data": self.data, "compute": self.compute,
                "terms": dict(self.terms)}

    @classmethod
    def from_state(cls, state: Optional[Dict[str, Any]]) -> "_Window":
        w = cls()
        if state:
            w.n, w.samples, w.data, w.compute = int(state["n"]), int(state["samples"]), float(state["data"]), \
                float(state["compute"])
            w.terms = {str(k): float(v) for k, v in state["terms"].items()}
        return w

    def values(self, lr: float) -> Dict[str, float]:
        n = max(self.n, 1)
        vals = {k: v / n for k, v in self.terms.items()}
        vals.update(lr=lr, samples_per_s=self.samples / max(self.data + self.compute, 1e-9),
                    data_wait_s=self.data / n, compute_s=self.compute / n)
        return vals


def image_speedups(task: nn.Module, compile_mode: str = "off", channels_last: bool = False) -> Callable[[], None]:
    """Speed up every :class:`~clinfusion.encoders.image_base.ImageEncoder` inside ``task`` in place;
    returns the function that undoes the compile.

    ``channels_last``: its 4-D / 5-D weights (conv kernels ``[O, I, *K]``) move to the
    channels-last layout once, and each input ``x [B, C, *S]`` is laid out the same way
    (``torch.channels_last`` for 2D, ``channels_last_3d`` for 3D). ``compile_mode`` (not
    ``off``): ``forward_features`` runs through ``torch.compile`` (``default`` = torch's default
    mode) with static shapes: each new input shape compiles anew (torch keeps up to
    ``torch._dynamo.config.recompile_limit`` of them, then runs eager); symbolic shapes made inductor
    fail on a 3D encoder trained after a 2D one in one process (torch 2.13). Both are set as an
    instance ``forward_features`` (``[B, C, *S] -> [B, D]``), so parameter names and values stay
    those of the eager module and checkpoints load anywhere. The undo removes that attribute: a
    copy of the module (``copy.deepcopy``) must not call the original's compiled function. The
    weights' layout is left as it is (values are unchanged).
    """
    from clinfusion.encoders.image_base import ImageEncoder

    if compile_mode == "off" and not channels_last:
        return lambda: None
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    encoders = [m for m in task.modules() if isinstance(m, ImageEncoder)]
    for enc in encoders:
        eager = enc.forward_features  # the class's bound method
        if channels_last:
            for param in enc.parameters():
                if param.dim() in formats:
                    param.data = param.data.contiguous(memory_format=formats[param.dim()])
        run = eager if compile_mode == "off" else \
            torch.compile(eager, mode=None if compile_mode == "default" else compile_mode, dynamic=False)

        def forward_features(x: Tensor, run: Callable[[Tensor], Tensor] = run) -> Tensor:
            if channels_last and x.dim() in formats:
                x = x.contiguous(memory_format=formats[x.dim()])
            return run(x)

        enc.forward_features = forward_features

    def undo() -> None:
        for enc in encoders:
            enc.__dict__.pop("forward_features", None)

    return undo


def move(batch: Dict[str, Any], device: torch.device) -> Dict[str, Any]:
    """Tensors of a batch dict to ``device`` (lists of ids stay)."""
    nb = device.type == "cuda"
    return {k: v.to(device, non_blocking=nb) if isinstance(v, Tensor) else v for k, v in batch.items()}


class Trainer:
    """Optimises ``task`` on a dataset; see the module docstring.

    Args:
        task: module with ``.model`` and ``forward(batch) -> {"loss", ...}``.
        cfg: the ``pretrain`` or ``finetune`` section (their shared keys: ``EngineConfig``).
        run_dir: receives ``checkpoints/``, ``metrics.csv``, ``tensorboard/``.
        device: ``auto`` / ``cpu`` / ``cuda`` (the run config's ``device``).
        seed: data order and views of epoch ``e`` derive from ``(seed, e)``.
        step_callbacks: called with the trainer after every optimizer step (after any
            checkpoint of that step).
        epoch_end: called with ``(trainer, epoch)`` after each epoch's validation
            (e.g. retrieval metrics), on every rank.
        groups: optimizer parameter groups (default ``param_groups(task, cfg.weight_decay)``:
            no decay on norms and biases); a group's own ``lr`` overrides ``cfg.lr``.
        val_metrics: ``(trainer) -> {name: value}`` computed after each epoch on every rank
            (identical on all ranks), logged on the ``val`` row of metrics.csv.
        monitor, maximize: the validation value choosing ``checkpoints/best`` (None: every epoch
            replaces it, so the kept weights are the last epoch's).
        patience: stop after this many epochs without a better ``monitor`` (None: never).
    """

    def __init__(self, task: nn.Module, cfg: EngineConfig, run_dir: str | Path, device: str = "auto",
                 seed: int = 0, step_callbacks: Sequence[StepCallback] = (),
                 epoch_end: Optional[Callable[["Trainer", int], None]] = None,
                 groups: Optional[List[dict]] = None,
                 val_metrics: Optional[Callable[["Trainer"], Dict[str, float]]] = None,
                 monitor: Optional[str] = "loss", maximize: bool = False, patience: Optional[int] = None) -> None:
        self.cfg, self.run_dir, self.seed = cfg, Path(run_dir), seed
        self.dist = D.setup_distributed(device)
        self.device = self.dist.device
        self.task = task.to(self.device)
        if cfg.grad_checkpointing:
            task.model.set_grad_checkpointing(True)
        self.step_callbacks, self.epoch_end = list(step_callbacks), epoch_end
        self.val_metrics, self.monitor, self.maximize, self.patience = val_metrics, monitor, maximize, patience
        self.dtype = self._precision()
        self.optimizer = build_optimizer(groups if groups is not None else param_groups(task, cfg.weight_decay),
                                         cfg.lr)
        self.scheduler: Any = None
        self.progress = Progress()
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.logger: Optional[MetricsLogger] = None
        self._resume_rng: Optional[Dict[str, Any]] = None
        self.window = _Window()  # the train steps not logged yet (checkpointed with the progress)
        self._loaders: Dict[tuple, tuple] = {}  # persistent loaders: (id(ds), train, shard) -> (ds, loader)
        self.wrapped: nn.Module = task
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DDP(task, device_ids=ids, find_unused_parameters=True)

    # ------------------------------------------------------------------ set-up
    def _precision(self) -> Optional[torch.dtype]:
        """bf16 autocast on CUDA (``auto``/``bf16``) or when asked for on CPU; else fp32 (None)."""
        p = self.cfg.precision
        if p == "bf16" or (p == "auto" and self.device.type == "cuda"):
            return torch.bfloat16
        return None

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def loader(self, ds: Dataset, epoch: int, train: bool, shard: bool = True) -> DataLoader:
        """Loader whose order and views depend only on ``(seed, epoch)``; under DDP each rank
        reads its shard (``shard=False``: the whole dataset, e.g. for retrieval on rank 0).

        Loader settings (``num_workers``, ``pin_memory``, ``persistent_workers``,
        ``prefetch_factor``) come from the section through
        :class:`~clinfusion.datasets.builder.LoaderSettings`. With persistent workers one
        loader per (dataset, train, shard) is kept for the whole run and re-seeded each epoch
        (its :class:`~clinfusion.datasets.dataset.SeededSampler`), so workers start once.
        """
        from clinfusion.datasets.builder import LoaderSettings, build_loader
        from clinfusion.datasets.dataset import SeededSampler

        seed = self.seed * 100_003 + epoch + (0 if train else 50_000)
        key = (id(ds), train, shard)
        cached = self._loaders.get(key)
        if cached is not None and cached[0] is ds:
            loader = cached[1]
            base = loader.sampler.base
            if isinstance(base, DistributedSampler):
                base.set_epoch(epoch)
            loader.sampler.reseed(seed)
            return loader
        sampler = None
        if self.dist.enabled and shard:
            sampler = DistributedSampler(ds, self.dist.world_size, self.dist.rank, shuffle=train, seed=self.seed,
                                         drop_last=train)
            sampler.set_epoch(epoch)
        settings = LoaderSettings.from_section(self.cfg)
        loader = build_loader(ds, self.cfg.batch_size, shuffle=train, settings=settings, seed=seed,
                              drop_last=train, sampler=sampler)
        if loader.persistent_workers and isinstance(loader.sampler, SeededSampler):
            self._loaders[key] = (ds, loader)
        return loader

    def _steps_per_epoch(self, n_batches: int) -> int:
        return math.ceil(n_batches / self.cfg.grad_accum)

    def _resume(self) -> None:
        path = resolve_checkpoint(self.ckpt_dir / "last")
        if path is None:
            if self.dist.is_main:
                print(f"resume: no checkpoint in {self.ckpt_dir / 'last'}; starting from the beginning")
            return
        state = load_checkpoint(path, self.task.model, self.optimizer, self.scheduler, map_location=self.device)
        extra = state["extra"]
        if int(extra.get("seed", self.seed)) != self.seed:
            raise ConfigError(f"seed={self.seed} differs from the seed {extra['seed']} of {path}: resume with the same "
                              f"seed (the data order derives from it) or start again with --overwrite")
        if extra.get("task_state"):
            self.task.load_state_dict(extra["task_state"], strict=False)
        self.progress = Progress(state["epoch"], state["step"], int(extra.get("step_in_epoch", 0)),
                                 float(extra.get("best", math.inf)), int(extra.get("bad_epochs", 0)),
                                 bool(extra.get("stopped", False)))
        self._resume_rng = state["rng"]
        self.window = _Window.from_state(extra.get("window"))  # absent in checkpoints of older runs
        if self.dist.is_main and (self.progress.epoch >= self.cfg.epochs or self.progress.stopped):
            print(f"resume: {path} has finished {self.progress.epoch} epoch(s) of {self.section}.epochs="
                  f"{self.cfg.epochs}{' (stopped early)' if self.progress.stopped else ''}: nothing to train; "
                  f"raise {self.section}.epochs to train on", flush=True)

    # ------------------------------------------------------------------ checkpoints
    def save(self, name: str) -> Path:
        """Write ``checkpoints/<name>`` (rank 0) with the current progress."""
        p = self.progress
        task_state = {k: v for k, v in self.task.state_dict().items() if not k.startswith("model.")}
        extra = {"step_in_epoch": p.step_in_epoch, "best": p.best, "bad_epochs": p.bad_epochs, "stopped": p.stopped,
                 "seed": self.seed, "task_state": task_state, "window": self.window.state()}
        path = self.ckpt_dir / name
        if self.dist.is_main:
            save_checkpoint(path, self.task.model, self.optimizer, self.scheduler, None, p.step, p.epoch, extra)
        D.barrier(self.dist)
        return path

    def _nan_error(self, loss: Tensor) -> TrainingError:
        last = resolve_checkpoint(self.ckpt_dir / "last")
        where = str(last) if last is not None else "none (no checkpoint was written yet)"
        what = "NaN" if bool(torch.isnan(loss)) else "inf"
        return TrainingError(f"loss became {what} at step {self.progress.step + 1} (epoch {self.progress.epoch}); "
                             f"last good checkpoint: {where}; lower {self.section}.lr or check the inputs")

    @property
    def section(self) -> str:
        """Name of the config section driving this run (for messages)."""
        return "finetune" if hasattr(self.cfg, "heads") else "pretrain"

    def load_best(self) -> Path:
        """Load ``checkpoints/best`` (else ``last``) into ``task.model``; returns its folder."""
        from clinfusion.training.checkpoint import load_weights

        path = resolve_checkpoint(self.ckpt_dir / "best") or resolve_checkpoint(self.ckpt_dir / "last")
        if path is None:
            raise TrainingError(f"no checkpoint in {self.ckpt_dir}: train first")
        load_weights(path / MODEL_FILE, self.task.model, self.device)
        return path

    # ------------------------------------------------------------------ loops
    def fit(self, train_ds: Dataset, val_ds: Optional[Dataset] = None, resume: bool = False) -> Progress:
        """Train for ``cfg.epochs`` epochs (continuing from ``checkpoints/last`` if ``resume``)."""
        n_batches = len(self.loader(train_ds, 0, True))
        if n_batches == 0:
            raise TrainingError(f"no full training batch: {len(train_ds)} rows per process < {self.section}.batch_size="
                                f"{self.cfg.batch_size}; lower {self.section}.batch_size")
        per_epoch = self._steps_per_epoch(n_batches)
        self.scheduler = build_scheduler(self.optimizer, int(round(self.cfg.warmup_epochs * per_epoch)),
                                         per_epoch * self.cfg.epochs)
        if resume:
            self._resume()
        self.logger = MetricsLogger(self.run_dir, self.dist.is_main, self.progress.step if resume else None)
        undo = image_speedups(self.task, self.cfg.compile, self.cfg.channels_last)
        try:
            while self.progress.epoch < self.cfg.epochs and not self.progress.stopped:
                self._train_epoch(self.loader(train_ds, self.progress.epoch, True))
                self._end_epoch(val_ds)
        finally:
            undo()
            self.logger.close()
            self._loaders.clear()  # persistent workers end with the run
        return self.progress

    def _batches(self, loader: DataLoader) -> Iterator[tuple]:
        """``(index, batch, data_wait_s)``, skipping the batches a resumed checkpoint consumed."""
        it = iter(loader)
        skip = self.progress.step_in_epoch
        for _ in range(skip):  # re-read, not trained on: keeps the views' random stream identical
            next(it)
        if self._resume_rng is not None:
            set_rng_state(self._resume_rng)
            self._resume_rng = None
        i = skip
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            yield i, batch, time.perf_counter() - t0
            i += 1

    def _train_epoch(self, loader: DataLoader) -> None:
        self.wrapped.train()
        n, accum = len(loader), self.cfg.grad_accum
        bar = self._bar(n)
        data_s = 0.0
        for i, batch, wait in self._batches(loader):
            t0 = time.perf_counter()
            data_s += wait
            group = (i // accum) * accum
            last_micro = (i + 1 - group) == min(accum, n - group)
            sync = contextlib.nullcontext() if (last_micro or not self.dist.enabled) else self.wrapped.no_sync()
            with sync:
                with self._autocast():
                    out = self.wrapped(move(batch, self.device))
                loss = out["loss"]
                if D.any_rank(not bool(torch.isfinite(loss.detach())), self.dist):
                    raise self._nan_error(loss.detach())
                (loss / min(accum, n - group)).backward()
            if last_micro:
                self._optimizer_step(i + 1)
                self.window.add(out, len(batch["id"]) * (i + 1 - group), data_s, time.perf_counter() - t0)
                data_s = 0.0
                if bar is not None:
                    bar.update(i + 1 - group)
                    sps = self.window.values(0)["samples_per_s"]
                    bar.set_postfix(loss=f"{float(loss.detach()):.4f}", sps=f"{sps:.1f}")
                if self.progress.step % self.cfg.log_every == 0:
                    self.logger.log(self.progress.epoch, self.progress.step, "train", self.window.values(self._lr()))
                    self.window = _Window()
                self._after_step()
        if self.window.n:
            self.logger.log(self.progress.epoch, self.progress.step, "train", self.window.values(self._lr()))
            self.window = _Window()
        if bar is not None:
            bar.close()

    def _optimizer_step(self, consumed: int) -> None:
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.task.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if hasattr(self.task, "after_step"):
            self.task.after_step()
        self.progress.step += 1
        self.progress.step_in_epoch = consumed

    def _after_step(self) -> None:
        every = self.cfg.checkpoint_every_steps
        if every and self.progress.step % every == 0:
            self.save("last")
        for cb in self.step_callbacks:
            cb(self)

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _bar(self, n: int) -> Any:
        if not (self.cfg.progress and self.dist.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=n, initial=self.progress.step_in_epoch, desc=f"epoch {self.progress.epoch + 1}/{self.cfg.epochs}",
                    leave=False, dynamic_ncols=True)

    @torch.no_grad()
    def evaluate(self, ds: Dataset) -> Dict[str, float]:
        """Mean loss terms over ``ds`` in eval mode (own RNG fork: training RNG untouched)."""
        self.task.eval()
        sums: Dict[str, float] = {}
        n = 0
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            for batch in self.loader(ds, self.progress.epoch, False):
                with self._autocast():
                    out = self.task(move(batch, self.device))
                b = len(batch["id"])
                for k, v in out.items():
                    if k.endswith(("loss", "_acc")):  # loss terms and accuracies (itm_acc)
                        sums[k] = sums.get(k, 0.0) + float(v) * b
                n += b
        return {k: D.all_reduce_mean(v / max(n, 1), self.dist) for k, v in sums.items()}

    def _end_epoch(self, val_ds: Optional[Dataset]) -> None:
        p = self.progress
        vals: Dict[str, float] = {}
        if val_ds is not None and len(val_ds) > 1:
            vals = self.evaluate(val_ds)
            if self.val_metrics is not None:
                vals.update(self.val_metrics(self))
            self.logger.log(p.epoch, p.step, "val", vals)
        if self.epoch_end is not None:
            self.epoch_end(self, p.epoch)
        p.epoch, p.step_in_epoch = p.epoch + 1, 0
        score = float(vals.get(self.monitor, math.inf)) if self.monitor is not None else math.inf
        score = -score if self.maximize else score
        if not math.isfinite(score):  # no validation (or an undefined value): best = latest
            self.save("best")
        elif score < p.best:
            p.best, p.bad_epochs = score, 0
            self.save("best")
        else:
            p.bad_epochs += 1
            if self.patience is not None and p.bad_epochs >= self.patience:
                p.stopped = True
        every = getattr(self.cfg, "checkpoint_every", 1)
        if p.epoch % every == 0 or p.epoch == self.cfg.epochs or p.stopped:
            self.save("last")
