"""Fine-tuning runs on the training engine: bf16 on CPU, DDP under torchrun, exact resume."""

import csv

import numpy as np
import torch

from tests.torchrun_helpers import assert_same_weights, kill_after_mid_epoch_checkpoint, run_torchrun


def test_bf16_finetune_step_on_cpu(dn_cfg, tmp_path):
    from clinfusion.datasets.cohort import load_cohort
    from clinfusion.datasets.preprocess import TabularPreprocessor
    from clinfusion.downstream.data import FinetuneData
    from clinfusion.downstream.neural import ClassifierTask, cohort_dataset
    from clinfusion.downstream.labels import LabelInfo
    from clinfusion.models import FusedClassifier
    from clinfusion.models.io import build_model
    from clinfusion.training.engine import Trainer

    cfg = dn_cfg("finetune.precision=bf16", "finetune.epochs=1", "finetune.batch_size=8")
    cohort = load_cohort(cfg.cohort, require_labels=True)
    rows = np.arange(16)
    pre = TabularPreprocessor(cfg.cohort).fit(cohort, rows)
    data = FinetuneData(cohort, pre, cfg.image, LabelInfo.from_spec(cohort.labels), batch_size=8)
    clf = FusedClassifier(build_model(cfg, pre.schema), 1)
    dtypes = []
    clf.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    before = clf.head.weight.detach().clone()
    trainer = Trainer(ClassifierTask(clf, "binary"), cfg.finetune, tmp_path, device="cpu", seed=0)
    trainer.fit(cohort_dataset(data, rows))
    assert trainer.dtype == torch.bfloat16
    assert dtypes and all(d == torch.bfloat16 for d in dtypes)  # the head ran under bf16 autocast
    assert not torch.equal(before, clf.head.weight.detach())  # and the optimizer stepped
    rows_csv = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert rows_csv and np.isfinite(float(rows_csv[0]["loss"]))


def _metrics_rows(run):
    keep = ("epoch", "step", "split", "loss", "lr", "auroc")
    path = run / "training" / "holdout_frac1" / "full" / "metrics.csv"
    return [{k: r[k] for k in keep} for r in csv.DictReader(open(path))]


def test_torchrun_finetune_killed_mid_epoch_resumes_to_identical_weights(dn_cfg, tmp_path):
    """``torchrun --nproc_per_node 2 -m clinfusion.cli.main finetune`` (gloo, CPU): a run killed
    after a mid-epoch checkpoint and resumed with --resume ends with the weights and metrics
    rows of the run never stopped. Two epochs, so that the kill at the first checkpoint (inside the
    first epoch) leaves a whole epoch to run."""
    from clinfusion.config import save_config

    cfg = tmp_path / "cfg.yaml"
    save_config(dn_cfg("finetune.heads=[full]", "finetune.baselines=[]", "finetune.epochs=2", "finetune.batch_size=4",
                       "finetune.checkpoint_every_steps=1", "evaluation.bootstrap=0", "evaluation.subgroups=[]",
                       "evaluation.missing_modality=false"), cfg)
    args = []
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    done = run_torchrun(["finetune", str(cfg), *args, "--out", str(ref)])
    assert done.returncode == 0, done.stdout[-3000:]
    assert done.stdout.count("fine-tuned run:") == 1  # rank 0 speaks
    ckpt = cut / "training" / "holdout_frac1" / "full" / "checkpoints" / "last"
    kill_after_mid_epoch_checkpoint(["finetune", str(cfg), *args, "--out", str(cut)], ckpt)
    assert not (cut / "classifier" / "meta.json").exists()
    again = run_torchrun(["finetune", str(cfg), *args, "--out", str(cut), "--resume"])
    assert again.returncode == 0, again.stdout[-3000:]
    assert_same_weights(ref / "classifier" / "full" / "model.safetensors",
                        cut / "classifier" / "full" / "model.safetensors")
    rows_cut, rows_ref = _metrics_rows(cut), _metrics_rows(ref)
    assert rows_cut == rows_ref  # train rows too: the checkpoint holds the epoch's steps not logged yet
    assert [r["split"] for r in rows_ref].count("val") == 2  # validation loss + AUROC per epoch
    assert (ref / "comparison.csv").read_text() == (cut / "comparison.csv").read_text()
