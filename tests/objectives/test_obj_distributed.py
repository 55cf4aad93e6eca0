"""2-process gloo check of the global-batch convention (CPU, a few seconds).

Each rank gets half of a fixed global batch, computes its loss with gathered negatives
and backpropagates; gradients are averaged over ranks as DDP does. The mean of per-rank
losses and the averaged gradients must equal the single-process loss / gradients on the
full batch.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clinfusion.config.schema import FusionConfig
from clinfusion.encoders.schema import TableSchema
from clinfusion.fusion import create_fusion
from clinfusion.objectives import ClipLoss, ItmLoss, LogitScale, MaskedFusedLoss, NTXentLoss

WORLD, B, D_IN, D = 2, 4, 5, 3


def _setup():
    g = torch.Generator().manual_seed(0)
    data = {
        "x_img": torch.randn(WORLD * B, D_IN, generator=g), "x_tab": torch.randn(WORLD * B, D_IN, generator=g),
        # rank 0 has one invalid row, rank 1 none: per-rank normalisation must use the global count
        "valid": torch.tensor([True, False, True, True, True, True, True, True]),
    }
    torch.manual_seed(1)
    mods = torch.nn.ModuleDict({"img": torch.nn.Linear(D_IN, D), "tab": torch.nn.Linear(D_IN, D),
                                "scale": LogitScale(0.5, 100.0), "fusion": create_fusion(FusionConfig(dim=4), D, D),
                                "itm": ItmLoss(4), "rec": MaskedFusedLoss(4, TableSchema(numeric=["a", "b"]))})
    return data, mods


def _losses(data, mods, rows):
    zi, zt = mods["img"](data["x_img"][rows]), mods["tab"](data["x_tab"][rows])
    clip = ClipLoss(gather=True)(zi, zt, mods["scale"](), data["valid"][rows])["clip_loss"]
    ntx = NTXentLoss(0.5, gather=True)(zi, zt)["simclr_loss"]
    # ITM: hard negatives from the gathered batch (invalid rows excluded), fused pairs across ranks
    itm = mods["itm"](mods["fusion"], zi, zt, zi, zt, data["valid"][rows])["itm_loss"]
    both = torch.ones(zi.shape[0], 2, dtype=torch.bool)
    full = torch.ones(zi.shape[0], 2, dtype=torch.bool)  # every value masked: equal counts per rank
    rec = mods["rec"](mods["fusion"](zi, zt, both), data["x_tab"][rows, :2], torch.zeros(zi.shape[0], 0).long(),
                      full, torch.zeros(zi.shape[0], 0, dtype=torch.bool))["masked_fused_loss"]
    return {"clip": clip, "simclr": ntx, "itm": itm, "masked_fused": rec}


def _results(data, mods, rows, world):
    out = {}
    for name in ("clip", "simclr", "itm", "masked_fused"):
        mods.zero_grad()
        loss = _losses(data, mods, rows)[name]
        loss.backward()
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in mods.parameters()]
        loss = loss.detach().clone()
        if world > 1:  # what DDP does: average gradients; we also average the logged loss
            for t in grads + [loss]:
                dist.all_reduce(t)
                t /= world
        out[name] = (loss, grads)
    return out


def _worker(rank, init_file, out_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        data, mods = _setup()
        res = _results(data, mods, slice(rank * B, (rank + 1) * B), WORLD)
        if rank == 0:
            torch.save(res, out_file)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gloo")
    out_file = str(tmp / "res.pt")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(str(tmp / "init"), out_file), nprocs=WORLD, join=True)
    return torch.load(out_file, weights_only=True)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["clip", "simclr", "itm", "masked_fused"])
def test_two_process_gloo_matches_single_process(distributed_results, name):
    data, mods = _setup()
    single = _results(data, mods, slice(0, WORLD * B), 1)[name]
    dist_loss, dist_grads = distributed_results[name]
    torch.testing.assert_close(dist_loss, single[0], atol=1e-5, rtol=0)
    assert len(dist_grads) == len(single[1]) == len(list(mods.parameters()))
    for a, b in zip(dist_grads, single[1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert single[1][0].abs().sum() > 0
    if name in ("itm", "masked_fused"):  # the fusion learns from the term
        # the skip path and the mlp's zero-initialised output layer (its first layer moves from step 2)
        fusion_grads = [g for (n, _), g in zip(mods.named_parameters(), single[1])
                        if n.startswith(("fusion.skip", "fusion.mlp.2"))]
        assert fusion_grads and all(g.abs().sum() > 0 for g in fusion_grads)
