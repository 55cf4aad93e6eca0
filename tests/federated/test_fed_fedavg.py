"""FedAvg with one local SGD step on equal-size sites equals one centralized step on their union."""

import numpy as np
import pandas as pd
import torch

from clinfusion.datasets.cohort import load_cohort
from clinfusion.datasets.builder import build_dataset
from clinfusion.datasets.preprocess import TabularPreprocessor
from clinfusion.federated.local import build_task
from clinfusion.seed import seed_everything
from clinfusion.training.engine import Trainer
from clinfusion.training.pretrain import run_pretrain
from clinfusion.training.schedule import param_groups
from fed_helpers import fed_config, load_task, site_tables

# masked-feature reconstruction with every observed value masked: a per-row loss with no random
# mask and no in-batch negatives, so the union's mean gradient is the mean of the sites' gradients
PER_ROW = ["pretrain.losses.clip=0", "pretrain.losses.simclr=0", "pretrain.losses.scarf=0",
           "pretrain.losses.masked_features=1", "pretrain.mask_ratio=1.0", "model.modality_dropout=0",
           "pretrain.weight_decay=0", "pretrain.grad_clip=null", "pretrain.lr=0.5", "federated.local_optimizer=sgd",
           "federated.strategy=fedavg",
           "federated.rounds=1", "federated.local_steps=1", "pretrain.batch_size=6",
           "federated.min_category_count=1"]


def _no_missing(frame):
    return frame.fillna({c: 0.0 for c in frame.columns if frame[c].dtype.kind == "f"}).fillna("F")


def test_fedavg_one_sgd_step_equals_one_centralized_step(fed_cohort, tmp_path):
    edit = {s: _no_missing for s in ("a", "b")}  # equal observed counts per site
    tables = site_tables(fed_cohort, tmp_path, 6, edit=edit)
    cfg = fed_config(fed_cohort, PER_ROW + tables)
    run = run_pretrain(cfg, tmp_path / "fed")
    fed_task, _ = load_task(run, cfg)

    # centralized: the union of both tables, one step of the same engine with batch = 12 rows
    union = pd.concat([pd.read_csv(t.split("=", 1)[1]) for t in tables])
    path = fed_cohort.table.parent / "union_for_fedavg.csv"  # next to the images it names
    union.to_csv(path, index=False)
    ccfg = cfg.model_copy(update={"pretrain": cfg.pretrain.model_copy(update={"batch_size": 12, "epochs": 1,
                                                                              "warmup_epochs": 0.0})})
    cohort = load_cohort(ccfg.cohort, table=str(path))
    rows = np.arange(len(cohort))
    pre = TabularPreprocessor().fit(cohort, rows)
    assert TabularPreprocessor.load(run / "preprocessing.json").vocab == pre.vocab
    seed_everything(cfg.seed)
    task = build_task(ccfg, pre.schema)
    init = {k: v.clone() for k, v in task.named_parameters()}
    ds = build_dataset(cohort, pre, rows, ccfg.image)
    (tmp_path / "central").mkdir()
    trainer = Trainer(task, ccfg.pretrain, tmp_path / "central", device="cpu", seed=0)
    trainer.optimizer = torch.optim.SGD(param_groups(task, 0.0), lr=ccfg.pretrain.lr)
    trainer.fit(ds)

    fed_params = dict(fed_task.named_parameters())
    moved = 0
    for name, p in task.named_parameters():
        torch.testing.assert_close(fed_params[name], p, rtol=1e-4, atol=1e-5, msg=name)
        moved += int(not torch.allclose(p, init[name], atol=1e-4))
    assert moved >= 5  # the step changed the tabular encoder and heads (a no-op would also be "equal")
