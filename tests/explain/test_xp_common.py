"""Targets and probabilities per task."""

import torch

from clinfusion.explain.common import choose_targets, probabilities


def test_targets_binary_is_the_single_logit_and_multiclass_the_argmax():
    assert choose_targets(torch.tensor([[-3.0], [2.0]]), "binary").tolist() == [0, 0]
    assert choose_targets(torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]]), "multiclass").tolist() == [1, 0]


def test_probabilities_softmax_for_multiclass_sigmoid_otherwise():
    logits = torch.tensor([[0.0, 0.0]])
    torch.testing.assert_close(probabilities(logits, "multiclass"), torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(probabilities(torch.tensor([[0.0, 2.0]]), "multilabel"),
                               torch.sigmoid(torch.tensor([[0.0, 2.0]])))
