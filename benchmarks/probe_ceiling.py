"""What a linear probe can reach on the planted rule, given image evidence of a known quality.

The planted label is ``pattern AND crosses`` (``clinfusion/datasets/synthetic.py``). A linear
probe scores a weighted *sum* of what the embedding says about the image and about the marker,
while the Bayes rule multiplies ``P(pattern | image evidence)`` by ``P(crosses | marker)``. With
a perfect image signal the two rank alike; with a noisy one the sum loses far more than the
image signal itself does. This benchmark measures that, with no network: rows drawn by the
generator itself (``draw_planted``), image evidence ``s = pattern + N(0, sigma^2)`` and record
evidence ``t = marker_true + N(0, tau^2)`` for a grid of ``(sigma, tau)``, and per seed:

- ``image s alone`` / ``record t alone``: AUROC of ``s`` / ``t`` (their oracles: no noise);
- ``linear probe (s, t)``: standardised logistic regression fitted on ``n_train`` rows;
- ``Bayes (s, t)``: ``P(pattern | s) * P(crosses | t)``, the best any model of ``(s, t)`` can
  do (what LightGBM or an MLP head can approach);
- ``oracle both``: the generator's posterior given ``pattern`` and the true marker.

Read it beside ``benchmarks.quality``: find the row whose single-input losses match those of the
image- and table-embedding probes to their oracles; its ``linear gap`` is what a linear probe on
those embeddings should be expected to lose on the fused task.

    python -m benchmarks.probe_ceiling [--tiny]
"""

from __future__ import annotations

import time
from typing import Any, Dict, List

import numpy as np

from benchmarks import _cli

NAME = "probe_ceiling"
# (sigma, tau): noise on the image evidence and on the marker the probe sees
BUDGETS = {"tiny": dict(n_train=120, n_test=2000, seeds=[0], noise=[(0.0, 0.0), (0.5, 0.0)]),
           "small": dict(n_train=420, n_test=20000, seeds=[0, 1, 2],
                         noise=[(0.0, 0.0), (0.2, 0.0), (0.3, 0.0), (0.4, 0.0), (0.5, 0.0), (0.7, 0.0),
                                (0.0, 0.3), (0.0, 0.5), (0.0, 0.7)])}


def _rows(n: int, seed: int) -> Dict[str, np.ndarray]:
    from clinfusion.datasets.synthetic import draw_planted, oracle_scores

    d = draw_planted(n, size=8, seed=seed)  # images unused: only the rule's draws
    truth = d["truth"]
    return {"pattern": np.asarray(truth["pattern"], float), "marker": np.asarray(truth["marker_true"], float),
            "label": np.asarray(d["label"], int), "both": oracle_scores(truth)["both"]}


def _noisy(x: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    return x + sd * rng.standard_normal(len(x))


def _bayes(s: np.ndarray, t: np.ndarray, sigma: float, tau: float) -> np.ndarray:
    """``P(pattern | s) * P(crosses | t)``: pattern is a balanced coin, ``marker ~ N(0, 1)`` so
    ``marker | t ~ N(t / (1 + tau^2), tau^2 / (1 + tau^2))``."""
    from scipy.special import expit
    from scipy.stats import norm

    from clinfusion.datasets.synthetic import THRESHOLD_NOISE

    p = s if sigma == 0 else expit((s - 0.5) / sigma ** 2)  # log-likelihood ratio of N(1, sigma^2) vs N(0, sigma^2)
    shrink = 1.0 + tau ** 2
    return p * norm.cdf(t / shrink / np.sqrt(tau ** 2 / shrink + THRESHOLD_NOISE ** 2))


def evaluate(b: Dict[str, Any]) -> List[Dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    test = _rows(b["n_test"], seed=10_000)  # one large test draw, never trained on
    out = []
    for seed in b["seeds"]:
        train = _rows(b["n_train"], seed=seed)
        rng = np.random.default_rng(seed)
        for sigma, tau in b["noise"]:
            s_tr, s_te = _noisy(train["pattern"], sigma, rng), _noisy(test["pattern"], sigma, rng)
            t_tr, t_te = _noisy(train["marker"], tau, rng), _noisy(test["marker"], tau, rng)
            probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0)).fit(np.c_[s_tr, t_tr], train["label"])
            y = test["label"]
            row = {"sigma": sigma, "tau": tau, "seed": seed,
                   "image s alone": roc_auc_score(y, s_te), "image oracle": roc_auc_score(y, test["pattern"]),
                   "record t alone": roc_auc_score(y, t_te), "record oracle": roc_auc_score(y, test["marker"]),
                   "linear probe (s, t)": roc_auc_score(y, probe.decision_function(np.c_[s_te, t_te])),
                   "Bayes (s, t)": roc_auc_score(y, _bayes(s_te, t_te, sigma, tau)),
                   "oracle both": roc_auc_score(y, test["both"])}
            row["image loss"] = row["image oracle"] - row["image s alone"]
            row["record loss"] = row["record oracle"] - row["record t alone"]
            row["linear gap"] = row["oracle both"] - row["linear probe (s, t)"]
            row["Bayes gap"] = row["oracle both"] - row["Bayes (s, t)"]
            out.append(row)
    return out


def summary(rows: List[Dict[str, Any]]) -> str:
    """One sentence per (sigma, tau), from the seed means."""
    parts = []
    for sigma, tau in dict.fromkeys((r["sigma"], r["tau"]) for r in rows):
        rs = [r for r in rows if (r["sigma"], r["tau"]) == (sigma, tau)]
        m = {k: float(np.mean([r[k] for r in rs])) for k in ("image loss", "record loss", "linear gap", "Bayes gap")}
        lost = m["image loss"] + m["record loss"]
        ratio = f" ({m['linear gap'] / lost:.1f}x what the inputs lose)" if lost > 0.005 else ""
        parts.append(f"sigma {sigma}, tau {tau}: the image evidence loses {m['image loss']:.3f} and the record's "
                     f"{m['record loss']:.3f} to their oracles, the linear probe {m['linear gap']:.3f} to the "
                     f"both-oracle{ratio}, the Bayes combination {m['Bayes gap']:.3f}")
    return "; ".join(parts)


def main(argv: List[str] | None = None) -> int:
    p = _cli.parser(NAME, __doc__)
    args = p.parse_args(argv)
    _cli.setup(args)
    b = BUDGETS["tiny" if args.tiny else "small"]
    t0 = time.perf_counter()
    rows = evaluate(b)
    text = summary(rows)
    cols = ["sigma", "tau", "seed", "image s alone", "image loss", "record t alone", "record loss",
            "linear probe (s, t)", "Bayes (s, t)", "oracle both", "linear gap", "Bayes gap"]
    note = (f"Rows drawn by draw_planted: {b['n_train']} training rows per seed (seeds {b['seeds']}), one test draw "
            f"of {b['n_test']} rows. Image evidence s = pattern + N(0, sigma^2), record evidence t = marker_true + "
            f"N(0, tau^2). Linear probe: standardised logistic regression (C=1) on (s, t). Means over seeds: {text}. "
            f"{time.perf_counter() - t0:.0f} s.")
    sec = {"title": "Linear-probe ceiling on the planted rule (no network)", "columns": cols, "rows": rows,
           "note": note}
    _cli.write(NAME, args, [sec], argv, extra={"summary": text, "budget": b})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
