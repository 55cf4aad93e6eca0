"""Loader settings are real: workers, persistence, prefetch; batches independent of the worker count."""

import torch

from clinfusion.config import load_config
from clinfusion.datasets.dataset import SeededSampler
from clinfusion.datasets.synthetic import make_synthetic_cohort
from clinfusion.models.io import build_model
from clinfusion.models.pretrain_task import PretrainTask
from clinfusion.training.engine import Trainer
from clinfusion.training.pretrain import build_datasets

TINY = ["model.image_encoder.name=cnn_tiny", "model.image_encoder.width=4", "pretrain.batch_size=4",
        "cohort.exclude=[]", "cohort.categorical=null", "image.size=[16,16]", "device=cpu", "pretrain.progress=false"]


def _trainer(tmp_path, syn, workers, extra=()):
    cfg = load_config(None, list(syn.overrides) + TINY + [f"pretrain.num_workers={workers}", *extra])
    run = tmp_path / f"run{workers}"
    run.mkdir()
    _, pre, train, _ = build_datasets(cfg, run, resume=False)
    task = PretrainTask(build_model(cfg, pre.schema), cfg.pretrain, 0.0)
    return Trainer(task, cfg.pretrain, run, device="cpu"), train


def test_batches_identical_for_0_and_2_workers_and_persistent_loader_reused(tmp_path):
    syn = make_synthetic_cohort(tmp_path / "c", n_patients=12, size=16, seed=2)
    seen = {}
    for workers in (0, 2):
        trainer, train = _trainer(tmp_path, syn, workers, ["pretrain.prefetch_factor=3"])
        epochs = []
        loaders = []
        for epoch in (0, 1, 0):  # epoch 0 again: the same batches (a resumed run re-draws them)
            loader = trainer.loader(train, epoch, True)
            loaders.append(loader)
            batch = next(iter(loader))
            epochs.append((batch["id"], batch["image"].clone(), batch["image_view2"].clone()))
        seen[workers] = epochs
        if workers:
            assert loaders[0] is loaders[1] is loaders[2]  # persistent: one loader, workers started once
            assert loaders[0].persistent_workers and loaders[0].prefetch_factor == 3
            assert isinstance(loaders[0].sampler, SeededSampler)
        else:
            assert loaders[0] is not loaders[1]
        trainer._loaders.clear()
    for (ids0, v0, w0), (ids2, v2, w2) in zip(seen[0], seen[2]):
        assert ids0 == ids2 and torch.equal(v0, v2) and torch.equal(w0, w2)
    assert seen[0][0][0] == seen[0][2][0] and torch.equal(seen[0][0][1], seen[0][2][1])
    assert seen[0][0][0] != seen[0][1][0] or not torch.equal(seen[0][0][1], seen[0][1][1])  # epochs differ


def test_persistent_workers_off_builds_a_loader_per_epoch(tmp_path):
    syn = make_synthetic_cohort(tmp_path / "c", n_patients=12, size=16, seed=3)
    trainer, train = _trainer(tmp_path, syn, 1, ["pretrain.persistent_workers=false"])
    a, b = trainer.loader(train, 0, True), trainer.loader(train, 1, True)
    assert a is not b and not a.persistent_workers and a.num_workers == 1


def test_disk_cache_defaults_to_the_shared_user_cache(tmp_path, monkeypatch):
    from clinfusion.config.schema import ImageConfig
    from clinfusion.datasets.dataset import IMAGE_CACHES

    monkeypatch.setenv("CLINFUSION_CACHE", str(tmp_path / "cache"))
    ds = IMAGE_CACHES.create("disk", [], lambda x: x, ImageConfig(cache="disk"))
    assert str(ds.cache_dir) == str(tmp_path / "cache" / "images") and (tmp_path / "cache" / "images").is_dir()
