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
    """10 pairs, k=1 (chance 1/10): 5 hits has P(X >= 5) = 0.0016 < 0.05 / 4 tests; 3 hits P(X >= 3) = 0.07.
    k=5 (chance 1/2): 10 of 10 has P = 0.001 < 0.0125; 8 of 10 has 0.055. Computed by hand below."""
    from math import comb

    from clinfusion.training.retrieval import format_table, verdict

    def tail(h, p):
        return sum(comb(10, j) * p ** j * (1 - p) ** (10 - j) for j in range(h, 11))

    assert tail(5, 0.1) < 0.05 / 4 < tail(4, 0.1) and tail(10, 0.5) < 0.05 / 4 < tail(8, 0.5)

    def rows(at1, at5):  # hits at k=1 and k=5 per direction; k=10 has chance 1 and is not tested
        return [{"direction": d, "k": k, "recall": {1: h1, 5: h5, 10: 10}[k] / 10, "chance": min(1.0, k / 10), "n": 10}
                for d, h1, h5 in (("image_to_table", *at1), ("table_to_image", *at5)) for k in (1, 5, 10)]

    assert verdict(rows((5, 6), (3, 10))) == ("above chance (one-sided binomial, p < 0.05/4 (Bonferroni)): "
                                              "image_to_table@1, table_to_image@5")
    none = verdict(rows((4, 8), (3, 8)))
    assert none.startswith("no row beats chance on 10 validation pairs") and "not aligned" in none
    assert "ITM" not in none  # no ITM row: nothing said about the fusion
    itm = {"direction": "itm", "k": 1, "recall": 0.6, "chance": 2 / 3, "n": 10}
    with_itm = verdict(rows((4, 8), (3, 8)) + [itm])
    assert "p < 0.05/5" in with_itm and "not aligned" in with_itm and "hard negatives (ITM)" in with_itm
    assert format_table(rows((5, 6), (3, 10))).splitlines()[-1].endswith("image_to_table@1, table_to_image@5")
