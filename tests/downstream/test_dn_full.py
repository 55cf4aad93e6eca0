"""Full fine-tuning honours finetune.freeze; unknown module names are a clear error."""

import pytest
import torch

from clinfusion.errors import ConfigError


def test_full_head_freezes_named_modules(dn_cfg, tmp_path):
    from clinfusion.downstream.finetune import run_finetune
    from clinfusion.downstream.inference import load_finetuned
    from clinfusion.models.io import build_model

    cfg = dn_cfg("finetune.heads=[full]", "finetune.baselines=[]", "finetune.freeze=[image_encoder]",
                 "evaluation.bootstrap=0", "evaluation.subgroups=[]", "finetune.encoder_lr=0.01")
    run = load_finetuned(run_finetune(cfg, None, tmp_path / "full", show=False))
    torch.manual_seed(run.cfg.seed)
    init = build_model(run.cfg, run.preprocessor.schema).state_dict()
    trained = run.classifier.model.state_dict()
    image_keys = [k for k in init if k.startswith("image_encoder.") and init[k].is_floating_point()]
    table_keys = [k for k in init if k.startswith("table_encoder.") and init[k].is_floating_point()]
    assert image_keys and table_keys
    assert all(torch.equal(init[k], trained[k]) for k in image_keys if "running" not in k)
    assert any(not torch.equal(init[k], trained[k]) for k in table_keys)


def test_unknown_freeze_name_lists_modules():
    from clinfusion.downstream.neural import apply_freeze

    model = torch.nn.Sequential()
    model.add_module("image_encoder", torch.nn.Linear(2, 2))
    model.add_module("fusion", torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match=r"finetune.freeze: no module named 'imge_encoder'; "
                                          r"top-level modules: fusion, image_encoder"):
        apply_freeze(model, ["imge_encoder"])
    apply_freeze(model, ["fusion"])
    assert not any(p.requires_grad for p in model.fusion.parameters())
    assert all(p.requires_grad for p in model.image_encoder.parameters())


@pytest.mark.parametrize("pretrained", [True, False])
def test_encoder_lr_only_for_pretrained_encoders(pretrained, monkeypatch):
    """full on a pretrained run: encoders at finetune.encoder_lr; fused_scratch (and full
    without pretraining): everything at finetune.lr."""
    from types import SimpleNamespace

    from clinfusion.downstream import neural

    seen = {}
    monkeypatch.setattr(neural, "fit_with_engine", lambda ctx, net, name, tr, va, lrs=None, md=0.0: seen.setdefault(name, lrs))
    monkeypatch.setattr(neural, "cohort_dataset", lambda data, rows, augment=False: None)
    monkeypatch.setattr(neural, "make_classifier", lambda model, *a, **k: SimpleNamespace(model=model, to=lambda d: None))
    ctx = SimpleNamespace(info=SimpleNamespace(num_outputs=1, kind="binary"), pretrained=pretrained,
                          cfg=SimpleNamespace(mlp_hidden=8, freeze=[], encoder_lr=1e-4, lr=3e-3, augment=False, modality_dropout=0.0),
                          data=SimpleNamespace(device="cpu"), train_rows=None, val_rows=None,
                          encoder_copy=lambda: torch.nn.Linear(2, 2), new_model=lambda: torch.nn.Linear(2, 2))
    neural.full(ctx)
    neural.fused_scratch(ctx)
    assert seen["full"] == ({"model.model.": 1e-4} if pretrained else None)
    assert seen["fused_scratch"] is None


@pytest.mark.parametrize("augment", [True, False])
def test_finetune_augment_reaches_the_training_rows_of_end_to_end_models_only(dn_cfg, tmp_path, monkeypatch, augment):
    import clinfusion.downstream.neural as neural
    from clinfusion.downstream.finetune import run_finetune

    seen, real = [], neural.fit_with_engine

    def augmented(ds):
        base = getattr(getattr(ds, "base", None), "base", None)  # _WithTargets -> _Indexed -> CohortDataset
        return base is not None and base.augment is not None

    def spy(ctx, net, name, train, val, *args, **kwargs):
        seen.append((name, augmented(train), augmented(val)))
        return real(ctx, net, name, train, val, *args, **kwargs)

    monkeypatch.setattr(neural, "fit_with_engine", spy)
    cfg = dn_cfg("finetune.heads=[full, mlp]", "finetune.baselines=[image_only, fused_scratch]", "finetune.epochs=1",
                 f"finetune.augment={str(augment).lower()}", "evaluation.bootstrap=0", "evaluation.subgroups=[]",
                 "evaluation.missing_modality=false")
    run_finetune(cfg, None, tmp_path / "aug", show=False)
    assert sorted(seen) == [("full", augment, False), ("fused_scratch", augment, False),
                            ("image_only", augment, False), ("mlp", False, False)]


def test_finetune_modality_dropout_hides_one_input_in_training_only():
    from clinfusion.downstream.neural import ClassifierTask

    class Spy(torch.nn.Module):
        def forward_batch(self, batch):
            self.mask = batch["modality_mask"].clone()
            return torch.zeros(len(batch["target"]), 1, requires_grad=True)

    n = 4000
    batch = {"modality_mask": torch.ones(n, 2, dtype=torch.bool), "target": torch.zeros(n)}
    task = ClassifierTask(Spy(), "binary", modality_dropout=0.3).train()
    torch.manual_seed(0)
    task(batch)
    mask = task.model.mask
    assert mask.any(dim=1).all()  # never both inputs hidden
    hidden = (~mask).float().mean(dim=0)  # each input hidden in about 0.3 * 0.7 of rows (both drawn: undone)
    assert torch.allclose(hidden, torch.full((2,), 0.21), atol=0.03), hidden
    assert batch["modality_mask"].all()  # the batch itself is not modified
    task.eval()
    task(batch)
    assert task.model.mask.all()
    plain = ClassifierTask(Spy(), "binary").train()  # finetune.modality_dropout 0: nothing hidden
    plain(batch)
    assert plain.model.mask.all()


@pytest.mark.parametrize("keep", ["last", "best"])
def test_mlp_keep_chooses_the_kept_epoch_of_the_mlp_head_only(dn_cfg, tmp_path, monkeypatch, keep):
    """finetune.mlp_keep: "last" trains the mlp head for the whole budget and keeps the last epoch (no
    monitored value, no early stopping); "best" keeps the best validation AUROC like full does."""
    from pathlib import Path

    from safetensors.torch import load_file

    import clinfusion.training.engine as engine
    from clinfusion.downstream.finetune import run_finetune
    from clinfusion.downstream.inference import load_finetuned

    seen = {}

    class Spy(engine.Trainer):
        def __init__(self, task, cfg, run_dir, *args, **kwargs):
            seen[Path(run_dir).name] = (kwargs["monitor"], kwargs["patience"])
            super().__init__(task, cfg, run_dir, *args, **kwargs)

    monkeypatch.setattr(engine, "Trainer", Spy)
    cfg = dn_cfg("finetune.heads=[mlp, full]", "finetune.baselines=[]", "finetune.epochs=3",
                 "finetune.early_stopping=1", f"finetune.mlp_keep={keep}", "evaluation.bootstrap=0",
                 "evaluation.subgroups=[]", "evaluation.missing_modality=false")
    run_dir = run_finetune(cfg, None, tmp_path / keep, show=False)
    assert seen["full"] == ("auroc", 1)
    assert seen["mlp"] == ((None, None) if keep == "last" else ("auroc", 1))
    if keep == "last":
        (ckpts,) = Path(run_dir).glob("training/*/mlp/checkpoints")
        assert torch.load(ckpts / "best" / "state.pt", weights_only=True)["epoch"] == 3
        last = load_file(str(ckpts / "last" / "model.safetensors"))
        head = load_finetuned(run_dir, head="mlp").classifier.head
        assert torch.equal(head[1].weight.detach().cpu(), last["head.1.weight"])
