"""Fixtures for the model tests (helpers live in ``mod_helpers``)."""

from __future__ import annotations

import pytest
import torch

from mod_helpers import SCHEMA, tiny_model_cfg


@pytest.fixture
def model():
    from clinfusion.models import MultimodalModel

    torch.manual_seed(0)
    return MultimodalModel(tiny_model_cfg(), 2, 1, SCHEMA, [16, 16])
