"""The training engine: exact resume after a kill, NaN stop, logs and checkpoints."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from clinfusion.config.schema import PretrainConfig
from clinfusion.errors import TrainingError
from clinfusion.models.io import build_model
from clinfusion.models.pretrain_task import PretrainTask
from clinfusion.training.engine import Trainer
from clinfusion.training.pretrain import build_datasets, seed_everything

from trn_helpers import tiny_config


class Killed(Exception):
    pass


def _task(cfg, pre):
    seed_everything(cfg.seed)
    return PretrainTask(build_model(cfg, pre.schema), cfg.pretrain, cfg.model.modality_dropout)


def test_killed_then_resumed_run_matches_uninterrupted(synthetic, tmp_path):
    # 30 train rows / batch 8 -> 3 steps per epoch; checkpoint every 2 steps; killed after step 5 (mid-epoch 2,
    # after the step-4 checkpoint), so the resume replays one consumed batch of epoch 2; one train row per epoch
    # (log_every > 3), so the step-4 checkpoint holds a step not logged yet
    cfg = tiny_config(synthetic, ["pretrain.checkpoint_every_steps=2", "pretrain.log_every=10",
                                  "pretrain.losses.masked_features=0.3",
                                  "pretrain.losses.byol=0.3", "model.modality_dropout=0.3"])
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full_dir.mkdir(), cut_dir.mkdir()
    _, pre, train, val = build_datasets(cfg, full_dir, resume=False)
    assert len(train) // cfg.pretrain.batch_size == 3

    full = _task(cfg, pre)
    Trainer(full, cfg.pretrain, full_dir, device="cpu", seed=cfg.seed).fit(train, val)

    def kill_after_5(trainer):
        if trainer.progress.step == 5:
            raise Killed

    with pytest.raises(Killed):
        Trainer(_task(cfg, pre), cfg.pretrain, cut_dir, device="cpu", seed=cfg.seed,
                step_callbacks=[kill_after_5]).fit(train, val)
    torch.manual_seed(123)  # the resumed process starts from another random state
    resumed_task = _task(cfg, pre)
    resumed = Trainer(resumed_task, cfg.pretrain, cut_dir, device="cpu", seed=cfg.seed)
    resumed.fit(train, val, resume=True)

    assert resumed.progress.step == 6
    a, b = full.state_dict(), resumed_task.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    # the interrupted run's log rows after step 4 were dropped, then rewritten: same steps as the full run
    rows = {d: list(csv.DictReader(open(d / "metrics.csv"))) for d in (full_dir, cut_dir)}
    assert [(r["step"], r["split"]) for r in rows[cut_dir]] == [(r["step"], r["split"]) for r in rows[full_dir]]
    # and the same values: the train row of epoch 2 (logged after the resume) averages steps 5-6 AND the
    # checkpointed step 4 (timings aside, which differ run to run)
    terms = [k for k in rows[full_dir][0] if k.endswith(("loss", "_acc"))]
    assert "loss" in terms and "masked_features_loss" in terms
    for r_full, r_cut in zip(rows[full_dir], rows[cut_dir]):
        for k in terms:
            assert (r_full[k] == "") == (r_cut[k] == ""), (r_full["step"], k)
            if r_full[k]:
                assert float(r_cut[k]) == pytest.approx(float(r_full[k]), abs=1e-6), (r_full["step"], r_full["split"], k)


class _Toy(Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int):
        return {"id": str(i), "x": torch.full((2,), float(i))}


class _NanAfter(nn.Module):
    """Linear model whose loss turns NaN at its ``bad``-th forward call."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.model = nn.Linear(2, 1)
        self.calls, self.bad = 0, bad

    def forward(self, batch):
        self.calls += 1
        loss = self.model(batch["x"]).pow(2).mean()
        return {"loss": loss * float("nan") if self.calls == self.bad else loss}


def test_nan_loss_stops_with_step_and_last_checkpoint(tmp_path):
    cfg = PretrainConfig(epochs=3, batch_size=4, progress=False, checkpoint_every=1)  # 4 steps per epoch
    trainer = Trainer(_NanAfter(bad=7), cfg, tmp_path, device="cpu")
    with pytest.raises(TrainingError) as err:
        trainer.fit(_Toy())
    last = tmp_path / "checkpoints" / "last"
    assert str(err.value).startswith(f"loss became NaN at step 7 (epoch 1); last good checkpoint: {last}")
    state = torch.load(last / "state.pt", weights_only=True)
    assert state["step"] == 4 and state["epoch"] == 1  # end of epoch 0 kept


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    cfg = PretrainConfig(epochs=1, batch_size=4, grad_accum=3, progress=False, log_every=1)  # 4 batches -> 2 steps
    trainer = Trainer(_NanAfter(bad=-1), cfg, tmp_path, device="cpu")
    progress = trainer.fit(_Toy())
    assert progress.step == 2
    rows = list(csv.DictReader(open(Path(tmp_path) / "metrics.csv")))
    assert [r["step"] for r in rows] == ["1", "2"]
    assert all(float(r["compute_s"]) > 0 and float(r["data_wait_s"]) >= 0 for r in rows)
    assert (tmp_path / "tensorboard").is_dir()


def test_resume_with_another_seed_is_refused(tmp_path):
    from clinfusion.errors import ConfigError

    cfg = PretrainConfig(epochs=1, batch_size=4, progress=False)
    Trainer(_NanAfter(bad=-1), cfg, tmp_path, device="cpu", seed=0).fit(_Toy())
    more = cfg.model_copy(update={"epochs": 2})
    with pytest.raises(ConfigError, match=r"seed=1 differs from the seed 0 of .*checkpoints/last: resume with the same"):
        Trainer(_NanAfter(bad=-1), more, tmp_path, device="cpu", seed=1).fit(_Toy(), resume=True)
    done = Trainer(_NanAfter(bad=-1), more, tmp_path, device="cpu", seed=0).fit(_Toy(), resume=True)
    assert (done.epoch, done.step) == (2, 8)  # continued from step 4


def test_weight_decay_skips_norms_and_biases():
    from clinfusion.training.schedule import param_groups

    net = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Conv1d(4, 2, 1), nn.BatchNorm1d(2))
    net[2].weight.requires_grad_(True)
    groups = param_groups(net, 0.1, {"2.": 5e-3})
    by_id = {id(p): g for g in groups for p in g["params"]}
    # decayed: the Linear and Conv weights only; norms (weight and bias) and every bias: none
    assert by_id[id(net[0].weight)]["weight_decay"] == 0.1 and by_id[id(net[2].weight)]["weight_decay"] == 0.1
    for p in (net[0].bias, net[1].weight, net[1].bias, net[2].bias, net[3].weight, net[3].bias):
        assert by_id[id(p)]["weight_decay"] == 0.0
    # per-prefix learning rate: module "2" (the conv) only
    assert by_id[id(net[2].weight)]["lr"] == 5e-3 and by_id[id(net[2].bias)]["lr"] == 5e-3
    assert "lr" not in by_id[id(net[0].weight)]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_schedule_is_linear_warmup_then_cosine():
    from clinfusion.training.schedule import build_scheduler

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = build_scheduler(opt, warmup_steps=4, total_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # reference by hand: step s < 4 -> 2 * s / 4; then 2 * 0.5 * (1 + cos(pi * (s - 4) / 8))
    import math

    ref = [2.0 * s / 4 for s in range(4)] + [2.0 * 0.5 * (1 + math.cos(math.pi * (s - 4) / 8)) for s in range(4, 12)]
    assert lrs == pytest.approx(ref, abs=1e-9)


def test_no_monitor_keeps_the_last_epoch_whatever_validation_says(tmp_path):
    """``monitor=None`` (the mlp head's ``finetune.mlp_keep: last``): the kept weights are the last
    epoch's even when validation peaks early; validation values are still logged."""
    scores = iter([0.9, 0.6, 0.5])  # a monitored AUROC would keep epoch 1

    def val_metrics(trainer):
        return {"auroc": next(scores)}

    cfg = PretrainConfig(epochs=3, batch_size=4, progress=False)
    trainer = Trainer(_NanAfter(bad=-1), cfg, tmp_path, device="cpu", val_metrics=val_metrics, monitor=None,
                      maximize=True, patience=1)
    done = trainer.fit(_Toy(), _Toy())
    assert not done.stopped and done.epoch == 3
    assert torch.load(tmp_path / "checkpoints" / "best" / "state.pt", weights_only=True)["epoch"] == 3
    w_last = trainer.task.model.weight.detach().clone()
    trainer.load_best()
    assert torch.equal(trainer.task.model.weight.detach(), w_last)
    rows = [r for r in csv.DictReader(open(tmp_path / "metrics.csv")) if r["split"] == "val"]
    assert [float(r["auroc"]) for r in rows] == [0.9, 0.6, 0.5]


def test_best_checkpoint_follows_a_maximised_metric_and_early_stopping_stops(tmp_path):
    scores = iter([0.6, 0.8, 0.7, 0.75, 0.9, 0.95])  # best at epoch 2 (0-based 1); no better for 2 epochs -> stop

    def val_metrics(trainer):
        return {"auroc": next(scores)}

    cfg = PretrainConfig(epochs=6, batch_size=4, progress=False)
    trainer = Trainer(_NanAfter(bad=-1), cfg, tmp_path, device="cpu", val_metrics=val_metrics, monitor="auroc",
                      maximize=True, patience=2)
    done = trainer.fit(_Toy(), _Toy())
    assert done.stopped and done.epoch == 4  # epochs 1..4 ran, 3 and 4 without improvement
    best = torch.load(tmp_path / "checkpoints" / "best" / "state.pt", weights_only=True)
    assert best["epoch"] == 2  # saved after the epoch scoring 0.8
    rows = [r for r in csv.DictReader(open(tmp_path / "metrics.csv")) if r["split"] == "val"]
    assert [float(r["auroc"]) for r in rows] == [0.6, 0.8, 0.7, 0.75]
    # the kept weights are the best epoch's
    w_last = trainer.task.model.weight.detach().clone()
    trainer.load_best()
    from safetensors.torch import load_file

    ref = load_file(str(tmp_path / "checkpoints" / "best" / "model.safetensors"))
    assert torch.equal(trainer.task.model.weight.detach(), ref["weight"]) and not torch.equal(w_last, ref["weight"])
    # resuming a stopped run trains nothing more
    again = Trainer(_NanAfter(bad=-1), cfg, tmp_path, device="cpu", val_metrics=val_metrics, monitor="auroc",
                    maximize=True, patience=2).fit(_Toy(), _Toy(), resume=True)
    assert again.epoch == 4 and again.step == done.step
