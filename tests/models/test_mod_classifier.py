"""FusedClassifier: plain-tensor forward for captum, heads by name, frozen encoders."""

from __future__ import annotations

import pytest
import torch

from clinfusion.errors import ConfigError
from clinfusion.models import INPUT_KEYS, FusedClassifier

from mod_helpers import fake_batch


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_logits_shape_and_both_faces_agree(model, head):
    clf = FusedClassifier(model, num_outputs=3, head=head, hidden=8).eval()
    batch = fake_batch()
    logits = clf(*(batch[k] for k in INPUT_KEYS))
    assert logits.shape == (6, 3)
    assert torch.equal(clf.forward_batch(batch), logits)
    fused = clf.embed(batch)
    assert fused.shape == (6, 12)
    assert torch.allclose(clf.head(fused), logits, atol=1e-6)


def test_frozen_encoders_train_only_the_head(model):
    clf = FusedClassifier(model, num_outputs=1, freeze_encoders=True).train()
    assert not model.training  # frozen encoders stay in eval mode (BatchNorm statistics kept)
    clf.forward_batch(fake_batch()).sum().backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in clf.head.parameters())


def test_captum_attributes_through_plain_tensors(model):
    from captum.attr import IntegratedGradients

    clf = FusedClassifier(model, num_outputs=1).eval()
    batch = fake_batch()
    args = tuple(batch[k] for k in INPUT_KEYS)
    attr = IntegratedGradients(clf).attribute((args[0], args[1]), additional_forward_args=args[2:], n_steps=4)
    assert attr[0].shape == batch["image"].shape and attr[1].shape == batch["num"].shape


def test_unknown_head_lists_valid_names(model):
    with pytest.raises(ConfigError, match="unknown classification head layer 'mpl'.*Did you mean 'mlp'.*linear, mlp"):
        FusedClassifier(model, 1, head="mpl")
