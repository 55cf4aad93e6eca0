"""PretrainTask: weighted sum of the enabled terms, CLIP only over full pairs, gradients."""

from __future__ import annotations

import pytest
import torch

from clinfusion.config.schema import LossWeights, PretrainConfig
from clinfusion.errors import ConfigError
from clinfusion.models import PretrainTask

from mod_helpers import fake_batch


def test_loss_is_weighted_sum_of_enabled_terms(model):
    cfg = PretrainConfig(losses=LossWeights(clip=1.0, simclr=0.5, byol=0.0, scarf=0.25, masked_features=2.0))
    task = PretrainTask(model, cfg, modality_dropout=0.0).train()
    assert not hasattr(task, "byol_target")  # zero weight: not built
    torch.manual_seed(0)
    out = task(fake_batch())
    assert set(out) == {"loss", "clip_loss", "simclr_loss", "scarf_loss", "masked_features_loss"}
    expected = out["clip_loss"] + 0.5 * out["simclr_loss"] + 0.25 * out["scarf_loss"] + 2.0 * out["masked_features_loss"]
    assert torch.allclose(out["loss"], expected)
    out["loss"].backward()
    for name in ("image_encoder", "table_encoder", "image_proj", "table_proj"):
        grads = [p.grad for n, p in getattr(model, name).named_parameters() if "omics" not in n]  # no omics here
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), name


def test_clip_uses_only_rows_with_both_modalities(model):
    cfg = PretrainConfig(losses=LossWeights(clip=1.0, simclr=0.0, scarf=0.0))
    task = PretrainTask(model, cfg).eval()
    batch = fake_batch()
    base = task(batch)["clip_loss"]
    changed = dict(batch, image=batch["image"].clone())
    changed["image"][1] = torch.rand(1, 16, 16)  # row 1 has no table: not a pair
    assert torch.equal(task(changed)["clip_loss"], base)
    changed["image"][2] = torch.rand(1, 16, 16)  # row 2 is a pair
    assert not torch.equal(task(changed)["clip_loss"], base)


def test_byol_target_follows_online_by_ema(model):
    cfg = PretrainConfig(losses=LossWeights(clip=0.0, simclr=0.0, byol=1.0, scarf=0.0))
    task = PretrainTask(model, cfg)
    before = next(task.byol_target.target.parameters()).clone()
    with torch.no_grad():
        for p in model.image_encoder.parameters():
            p.add_(1.0)
    task.after_step()
    after = next(task.byol_target.target.parameters())
    online = next(model.image_encoder.parameters())
    decay = task.byol_target.decay
    assert torch.allclose(after, decay * before + (1 - decay) * online, atol=1e-6)
    assert "byol_loss" in task(fake_batch())


def test_all_zero_weights_is_a_config_error(model):
    cfg = PretrainConfig(losses=LossWeights(clip=0.0, simclr=0.0, byol=0.0, scarf=0.0, masked_features=0.0))
    with pytest.raises(ConfigError, match="pretrain.losses: every weight is 0"):
        PretrainTask(model, cfg)


def test_grad_checkpointing_gives_the_same_gradients(model):
    cfg = PretrainConfig(losses=LossWeights(clip=1.0, simclr=0.0, scarf=0.0))
    task = PretrainTask(model, cfg).train()
    grads = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        model.zero_grad()
        task(fake_batch())["loss"].backward()
        grads.append([p.grad.clone() for p in model.image_encoder.parameters()] +
                     [p.grad.clone() for n, p in model.table_encoder.named_parameters() if "omics" not in n])
    assert model.image_encoder.grad_checkpointing and model.table_encoder.grad_checkpointing
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("term", ["itm", "masked_fused"])
def test_each_fusion_term_sends_gradient_to_the_fusion(model, term):
    cfg = PretrainConfig(losses=LossWeights(clip=0.0, simclr=0.0, scarf=0.0, **{term: 1.0}), fused_mask_ratio=1.0)
    task = PretrainTask(model, cfg, modality_dropout=0.0).train()
    torch.manual_seed(0)
    out = task(fake_batch())
    assert out[f"{term}_loss"] > 0
    torch.testing.assert_close(out["loss"], out[f"{term}_loss"])
    out["loss"].backward()
    # the fusion's skip path and the mlp's output layer (zero at init, so its first layer follows one step later)
    grads = [model.fusion.skip.weight.grad] + [p.grad for p in model.fusion.mlp[-1].parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    if term == "itm":
        assert 0.0 <= float(out["itm_acc"]) <= 1.0 and "itm_acc" not in {k for k in out if k.endswith("_loss")}


def test_modality_dropout_reaches_the_fusion_in_pretraining(model):
    cfg = PretrainConfig(losses=LossWeights(clip=0.0, simclr=0.0, scarf=0.0, masked_fused=1.0))
    seen = []
    model.fusion.register_forward_hook(lambda m, args, out: seen.append(args[2].clone()))
    batch = fake_batch(b=32)
    batch["modality_mask"][:] = True
    PretrainTask(model, cfg, modality_dropout=0.5).train()(batch)
    assert seen and all(s.any(dim=1).all() for s in seen)  # never a row with nothing left
    assert any(not bool(s.all()) for s in seen)  # some modality hidden from the fusion
    seen.clear()
    PretrainTask(model, cfg, modality_dropout=0.0).train()(batch)
    assert all(bool(s.all()) for s in seen)


def test_mae_needs_a_vit_and_trains_the_vit(model):
    with pytest.raises(ConfigError, match="pretrain.losses.mae needs a ViT"):
        PretrainTask(model, PretrainConfig(losses=LossWeights(mae=1.0)))
    from clinfusion.config.schema import ModelConfig
    from clinfusion.models import MultimodalModel
    from mod_helpers import SCHEMA, tiny_model_cfg

    cfg = tiny_model_cfg().model_dump()
    cfg["image_encoder"] = {"name": "vit_tiny", "width": 16}
    vit = MultimodalModel(ModelConfig.model_validate(cfg), 2, 1, SCHEMA, [16, 16])
    task = PretrainTask(vit, PretrainConfig(losses=LossWeights(clip=1.0, simclr=0.0, scarf=0.0, mae=0.5)))
    out = task(fake_batch())
    torch.testing.assert_close(out["loss"], out["clip_loss"] + 0.5 * out["mae_loss"])
    out["mae_loss"].backward()
    assert vit.image_encoder.net.patch_embedding.patch_embeddings.weight.grad.abs().sum() > 0
