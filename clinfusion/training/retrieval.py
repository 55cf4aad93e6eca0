"""Cross-modal retrieval on held-out embeddings: image->table and table->image recall@k.

For ``N`` held-out pairs (both modalities present), the similarity ``S = img @ tab.T``
``[N, N]`` of L2-normalised projections ranks, for each image, all tables; recall@k is the
share of images whose own table is among the top ``k`` (ties counted pessimistically).
The chance level for random embeddings is ``k / N`` and is reported beside each value.
As in CLIP's zero-shot retrieval evaluation (Radford et al. 2021).
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

KS = (1, 5, 10)


def recall_at_k(sim: Tensor, ks: Sequence[int] = KS) -> Dict[int, float]:
    """Row-wise recall@k of the diagonal in ``sim [N, N]`` (query rows, candidate columns).

    The rank of row ``i``'s match is the number of candidates scoring ``>=`` ``sim[i, i]``
    other than itself (pessimistic ties); hit@k when that rank is ``< k``.
    """
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"recall_at_k expects a square similarity matrix; got {tuple(sim.shape)}")
    diag = sim.diagonal().unsqueeze(1)
    rank = (sim >= diag).sum(dim=1) - 1  # [N]
    return {k: int((rank < k).sum()) / len(rank) for k in ks}


def retrieval_table(image_proj: Tensor, table_proj: Tensor, ks: Sequence[int] = KS) -> List[Dict[str, float]]:
    """Rows ``{direction, k, recall, chance, n}`` for both directions.

    Args:
        image_proj, table_proj: ``[N, P]`` paired projections (row ``i`` = one sample).
    """
    if image_proj.shape != table_proj.shape or image_proj.dim() != 2:
        raise ValueError(f"retrieval expects paired [N, P] embeddings; got {tuple(image_proj.shape)} "
                         f"and {tuple(table_proj.shape)}")
    n = image_proj.shape[0]
    sim = F.normalize(image_proj.float(), dim=-1) @ F.normalize(table_proj.float(), dim=-1).T
    rows: List[Dict[str, float]] = []
    for direction, s in (("image_to_table", sim), ("table_to_image", sim.T)):
        rec = recall_at_k(s, ks) if n else {k: float("nan") for k in ks}
        for k in ks:
            rows.append({"direction": direction, "k": k, "recall": rec[k], "chance": min(1.0, k / n) if n else float("nan"),
                         "n": n})
    return rows


def format_table(rows: List[Dict[str, float]]) -> str:
    """Human-readable retrieval table (printed at the end of pretraining), ending with :func:`verdict`."""
    lines = [f"{'direction':<16}{'k':>4}{'recall':>9}{'chance':>9}{'n':>6}"]
    for r in rows:
        lines.append(f"{r['direction']:<16}{r['k']:>4}{r['recall']:>9.3f}{r['chance']:>9.3f}{r['n']:>6}")
    return "\n".join(lines + [v for v in [verdict(rows)] if v])


def verdict(rows: List[Dict[str, float]], alpha: float = 0.05) -> str:
    """Which rows (direction at k; the ITM accuracy too) beat their chance level: one-sided binomial
    tests of the hits among the ``n`` validation pairs, Bonferroni-corrected over the rows tested
    (rows whose chance is 1 are not tested). Pairs ranked against one another are not fully
    independent: read it as a guide. Retrieval measures only the alignment of the projections; the
    unimodal terms (SimCLR, SCARF, MAE) train the encoders whether or not it beats chance."""
    from scipy.stats import binomtest

    tested = [(f"{r['direction']}@{r['k']}", binomtest(int(round(r["recall"] * r["n"])), int(r["n"]), r["chance"],
                                                       alternative="greater").pvalue)
              for r in rows if r["n"] and 0 < r["chance"] < 1]
    if not tested:
        return ""
    level = alpha / len(tested)
    above = [name for name, p in tested if p < level]
    how = f"one-sided binomial, p < {alpha:g}/{len(tested)} (Bonferroni)"
    if above:
        return f"above chance ({how}): {', '.join(above)}"
    kinds = {name.split("@")[0] == "itm" for name, _ in tested}  # True: the ITM row, False: retrieval rows
    said = [what for is_itm, what in ((False, "the image and table projections are not aligned (yet)"),
                                      (True, "the fusion does not tell true pairs from hard negatives (ITM) (yet)"))
            if is_itm in kinds]
    return (f"no row beats chance on {int(rows[0]['n'])} validation pairs ({how}): {'; '.join(said)}; more epochs or "
            f"patients may help, and the unimodal terms still train the encoders")
