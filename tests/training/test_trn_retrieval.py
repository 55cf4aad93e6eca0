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


def test_verdict_says_whether_retrieval_beats_chance():
    """4 of 10 pairs found at k=1 (chance 1/10): P(X >= 4) = 0.013 by hand; 2 of 10: P(X >= 2) = 0.26."""
    from math import comb

    from clinfusion.training.retrieval import format_table, verdict

    tail = lambda h: sum(comb(10, j) * 0.1 ** j * 0.9 ** (10 - j) for j in range(h, 11))  # noqa: E731
    assert tail(4) < 0.05 < tail(3) and tail(2) > 0.05

    def rows(hits_i2t, hits_t2i):
        return [{"direction": d, "k": k, "recall": (h / 10 if k == 1 else 1.0), "chance": min(1.0, k / 10), "n": 10}
                for d, h in (("image_to_table", hits_i2t), ("table_to_image", hits_t2i)) for k in (1, 5, 10)]

    assert verdict(rows(4, 2)) == "above chance at k=1 (one-sided binomial p < 0.05): image_to_table"
    assert verdict(rows(3, 3)).startswith("no direction beats chance at k=1 on 10 validation pairs")
    assert format_table(rows(4, 4)).splitlines()[-1].endswith("image_to_table, table_to_image")
