"""Pretraining on the engine: bf16 autocast on CPU, DDP under torchrun, exact resume after SIGKILL."""

from __future__ import annotations

import csv

import torch

from tests.torchrun_helpers import assert_same_weights, kill_after_mid_epoch_checkpoint, run_torchrun
from trn_helpers import tiny_config


def test_bf16_pretrain_step_on_cpu(synthetic, tmp_path):
    from clinfusion.models.io import build_model
    from clinfusion.models.pretrain_task import PretrainTask
    from clinfusion.training.engine import Trainer
    from clinfusion.training.pretrain import build_datasets, seed_everything

    cfg = tiny_config(synthetic, ["pretrain.precision=bf16", "pretrain.epochs=1"])
    _, pre, train, _ = build_datasets(cfg, tmp_path, resume=False)
    seed_everything(cfg.seed)
    model = build_model(cfg, pre.schema)
    dtypes = []
    model.image_proj.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer = Trainer(PretrainTask(model, cfg.pretrain, cfg.model.modality_dropout), cfg.pretrain, tmp_path,
                      device="cpu", seed=cfg.seed)
    trainer.fit(train)
    assert trainer.dtype == torch.bfloat16
    assert dtypes and all(d == torch.bfloat16 for d in dtypes)  # the projection ran under bf16 autocast
    after = model.state_dict()
    assert not torch.equal(before["image_proj.0.weight"], after["image_proj.0.weight"])  # the optimizer stepped
    assert all(v.dtype == before[k].dtype for k, v in after.items())  # autocast, not a cast of the weights
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert rows and all(torch.isfinite(torch.tensor(float(r["loss"]))) for r in rows)


def _metrics_rows(run):
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in ("samples_per_s", "data_wait_s", "compute_s")} for r in csv.DictReader(f)]


def test_torchrun_pretrain_killed_mid_epoch_resumes_to_identical_weights(synthetic, tmp_path):
    """``torchrun --nproc_per_node 2 -m clinfusion.cli.main pretrain`` (gloo, CPU): a run SIGKILLed after a
    mid-epoch checkpoint and resumed with --resume ends with the weights and metrics rows of the run never
    stopped. 30 training rows, 2 ranks x batch 4 -> 3 optimizer steps in the one epoch."""
    from clinfusion.config import save_config

    cfg = tmp_path / "cfg.yaml"
    save_config(tiny_config(synthetic, ["pretrain.epochs=1", "pretrain.batch_size=4",
                                        "pretrain.checkpoint_every_steps=1"]), cfg)
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    done = run_torchrun(["pretrain", str(cfg), "--out", str(ref)])
    assert done.returncode == 0, done.stdout[-3000:]
    kill_after_mid_epoch_checkpoint(["pretrain", str(cfg), "--out", str(cut)], cut / "checkpoints" / "last")
    again = run_torchrun(["pretrain", str(cfg), "--out", str(cut), "--resume"])
    assert again.returncode == 0, again.stdout[-3000:]
    assert_same_weights(ref / "checkpoints" / "last" / "model.safetensors",
                        cut / "checkpoints" / "last" / "model.safetensors")
    assert _metrics_rows(cut) == _metrics_rows(ref)
    assert [r["split"] for r in _metrics_rows(ref)].count("train") >= 3  # log_every=1: every step is a row
