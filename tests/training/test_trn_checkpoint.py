"""Checkpoints: round trip, atomic replacement, corrupt files named in the error."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

import clinfusion.training.checkpoint as ck
from clinfusion.errors import RunDirError
from clinfusion.training.checkpoint import load_checkpoint, save_checkpoint


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path):
    model = _model(0)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    random.seed(3), np.random.seed(4), torch.manual_seed(5)
    save_checkpoint(tmp_path / "last", model, opt, step=7, epoch=2, extra={"step_in_epoch": 3})
    expected = (random.random(), np.random.rand(), torch.rand(1))

    other = _model(1)
    opt2 = torch.optim.AdamW(other.parameters(), lr=0.1)
    state = load_checkpoint(tmp_path / "last", other, opt2, restore_rng=True)
    assert (state["step"], state["epoch"], state["extra"]["step_in_epoch"]) == (7, 2, 3)
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    got = (random.random(), np.random.rand(), torch.rand(1))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_kill_during_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    first = _model(0)
    save_checkpoint(tmp_path / "last", first, step=1)

    def crash(*args, **kwargs):  # dies after the temporary folder exists and the weights are written
        assert any(p.name.startswith("last.tmp-") for p in tmp_path.iterdir())
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(ck.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last", _model(1), step=2)
    monkeypatch.undo()

    loaded = _model(2)
    state = load_checkpoint(tmp_path / "last", loaded)
    assert state["step"] == 1
    assert torch.equal(loaded[0].weight, first[0].weight)
    assert not any(p.name.startswith("last.tmp-") for p in tmp_path.iterdir())


def test_kill_between_renames_falls_back_to_old(tmp_path):
    model = _model(0)
    save_checkpoint(tmp_path / "last", model, step=4)
    (tmp_path / "last").rename(tmp_path / "last.old")  # as if killed after the first rename
    state = load_checkpoint(tmp_path / "last", _model(1))
    assert state["step"] == 4


def test_corrupt_state_file_is_named(tmp_path):
    save_checkpoint(tmp_path / "last", _model(0))
    state = tmp_path / "last" / "state.pt"
    state.write_bytes(state.read_bytes()[:50])
    with pytest.raises(RunDirError, match=r"state\.pt.*corrupt or incomplete"):
        load_checkpoint(tmp_path / "last", _model(0))


def test_truncated_weights_file_is_named(tmp_path):
    save_checkpoint(tmp_path / "last", _model(0))
    weights = tmp_path / "last" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-20])
    with pytest.raises(RunDirError, match=r"model\.safetensors.*corrupt or incomplete"):
        load_checkpoint(tmp_path / "last", _model(0))


def test_missing_checkpoint_and_mismatched_model(tmp_path):
    with pytest.raises(RunDirError, match=r"not found or incomplete.*model\.safetensors"):
        load_checkpoint(tmp_path / "nothing", _model(0))
    save_checkpoint(tmp_path / "last", _model(0))
    with pytest.raises(RunDirError, match="does not match the model"):
        load_checkpoint(tmp_path / "last", nn.Linear(3, 4))
