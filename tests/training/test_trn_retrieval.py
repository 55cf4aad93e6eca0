"""Retrieval recall@k against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from clinfusion.training.retrieval import recall_at_k, retrieval_table


def test_recall_on_toy_similarity_matrix():
    # row 0: own score highest -> rank 0; row 1: two others higher -> rank 2; row 2: one higher -> rank 1;
    # row 3: ties with two others (counted pessimistically) -> rank 2
    sim = torch.tensor([[0.9, 0.1, 0.2, 0.3],
                        [0.8, 0.5, 0.7, 0.1],
                        [0.1, 0.9, 0.6, 0.2],
                        [0.4, 0.4, 0.1, 0.4]])
    got = recall_at_k(sim, ks=(1, 2, 3))
    assert got == {1: 0.25, 2: 0.5, 3: 1.0}
    # columns as queries, ranks by hand:
    # col 0 = [.9,.8,.1,.4] own .9 -> 0; col 1 = [.1,.5,.9,.4] own .5 -> 1; col 2 = [.2,.7,.6,.1] own .6 -> 1;
    # col 3 = [.3,.1,.2,.4] own .4 -> 0
    assert recall_at_k(sim.T, ks=(1, 2)) == {1: 0.5, 2: 1.0}


def test_table_has_chance_beside_each_value():
    torch.manual_seed(0)
    x = torch.randn(20, 8)
    rows = retrieval_table(x, x.clone())  # identical pairs: perfect retrieval
    assert len(rows) == 6
    for r in rows:
        assert r["recall"] == 1.0 and r["n"] == 20 and r["chance"] == pytest.approx(r["k"] / 20)
    with pytest.raises(ValueError, match=r"\(20, 8\) and \(19, 8\)"):
        retrieval_table(x, x[:19])
