"""Linear probes on frozen embeddings (``linear``, ``linear_image``, ``linear_table``, ``linear_concat``).

The linear evaluation protocol of CLIP (Radford et al. 2021, appendix A.3): L2-regularised
logistic regression fitted with L-BFGS (scikit-learn) on standardised frozen embeddings,
its inverse strength ``C`` chosen on the **validation** patients from a log-spaced grid
(``finetune.probe``); the test rows never take part. Each probe reads one embedding of the
(pre)trained model (:data:`clinfusion.models.classifier.FEATURES`): ``linear`` the fused
embedding, ``linear_image`` / ``linear_table`` one input's and ``linear_concat`` both
inputs side by side, so the report shows what each input and the fusion carry.

The fitted scaler + regression are folded into one ``nn.Linear`` (``w / scale``,
``b - w . mean / scale``), so the saved head is a plain :class:`FusedClassifier` that
evaluate, predict and explain load like any other.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Dict

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from clinfusion.config.schema import ProbeConfig
from clinfusion.downstream.evaluation import compute_metrics
from clinfusion.downstream.models import FusedPredictor, HeadContext, make_classifier, register_model
from clinfusion.models.classifier import FEATURE_INPUTS


@dataclass
class ProbeFit:
    """A fitted probe in the embedding's own units: ``logits = X @ coef.T + intercept``."""

    coef: np.ndarray  # [K_out, D]
    intercept: np.ndarray  # [K_out]
    C: float  # chosen inverse L2 strength
    val_auroc: float  # validation AUROC at C (NaN without validation rows)
    scores: Dict[float, float] = field(default_factory=dict)  # validation AUROC per C of the grid


def c_grid(cfg: ProbeConfig) -> np.ndarray:
    """The log-spaced grid of C values, ascending (strongest regularisation first)."""
    return np.geomspace(cfg.c_min, max(cfg.c_max, cfg.c_min), cfg.c_steps)


def _fit_columns(X: np.ndarray, y: np.ndarray, kind: str, C: float, max_iter: int, seed: int, num_outputs: int):
    """One fit at ``C`` on standardised ``X [N, D]`` -> ``(coef [K_out, D], intercept [K_out])``."""
    def one(Xs, ys):
        lr = LogisticRegression(C=C, max_iter=max_iter, solver="lbfgs", random_state=seed)
        lr.fit(Xs, ys)
        return lr

    if kind == "multilabel":
        coefs, icpts = [], []
        for j in range(y.shape[1]):
            sel = ~np.isnan(y[:, j])
            lr = one(X[sel], y[sel, j].astype(int))
            coefs.append(lr.coef_[0])
            icpts.append(lr.intercept_[0])
        return np.stack(coefs), np.asarray(icpts)
    lr = one(X, y.astype(int))
    if kind == "binary":
        return lr.coef_, lr.intercept_
    coef = np.zeros((num_outputs, X.shape[1]))
    icpt = np.full(len(coef), -1e4)  # a class absent from training is never predicted
    coef[lr.classes_] = lr.coef_
    icpt[lr.classes_] = lr.intercept_
    return coef, icpt


def _probs(logits: np.ndarray, kind: str) -> np.ndarray:
    if kind == "multiclass":
        z = logits - logits.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)
    with np.errstate(over="ignore"):  # exp(1000) = inf gives the right 0.0; numpy would warn on every such row
        return 1.0 / (1.0 + np.exp(-logits))


def _val_auroc(y: np.ndarray, probs: np.ndarray, kind: str, num_outputs: int) -> float:
    if kind == "multiclass" and probs.shape[1] < num_outputs:
        probs = np.pad(probs, ((0, 0), (0, num_outputs - probs.shape[1])))
    p = probs[:, 0] if kind == "binary" else probs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(compute_metrics(y, p, kind)["auroc"])


def fit_probe(X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, kind: str,
              cfg: ProbeConfig, num_outputs: int, seed: int = 0) -> ProbeFit:
    """Standardise on the training rows, fit one regression per C, keep the C whose validation
    AUROC is highest (ties: the stronger regularisation); refit nothing on validation rows.

    Args:
        X_train, X_val: embeddings ``[N, D]``; y_train, y_val: targets of the label kind
            (binary ``[N]`` 0/1, multiclass ``[N]`` index, multilabel ``[N, K]`` with NaN).
        kind: ``binary`` | ``multiclass`` | ``multilabel``.
        num_outputs: ``K_out`` (1 for binary).

    Without validation rows (or with a one-class validation set) ``C = 1`` is used.
    """
    scaler = StandardScaler().fit(X_train)
    scale = scaler.scale_
    Xt = scaler.transform(X_train)
    Xv = scaler.transform(X_val) if len(X_val) else X_val
    grid = c_grid(cfg)
    scores: Dict[float, float] = {}
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if len(Xv):
            for C in grid:
                coef, icpt = _fit_columns(Xt, y_train, kind, float(C), cfg.max_iter, seed, num_outputs)
                fits[float(C)] = (coef, icpt)
                scores[float(C)] = _val_auroc(y_val, _probs(Xv @ coef.T + icpt, kind), kind, num_outputs)
        finite = {c: s for c, s in scores.items() if np.isfinite(s)}
        if finite:
            best = max(finite.values())
            C = min(c for c, s in finite.items() if s == best)
            coef, icpt = fits[C]
        else:
            C = 1.0
            coef, icpt = _fit_columns(Xt, y_train, kind, C, cfg.max_iter, seed, num_outputs)
    w = coef / scale  # fold the standardisation into the linear map
    b = icpt - (coef * scaler.mean_ / scale).sum(1)
    return ProbeFit(w, b, C, scores.get(C, float("nan")), scores)


def _fit_head(ctx: HeadContext, features: str) -> FusedPredictor:
    data = ctx.data
    encoder = ctx.encoder  # frozen and shared: embeddings computed once per row set
    X_train = data.embed(encoder, ctx.train_rows, features=features).astype(np.float64)
    X_val = data.embed(encoder, ctx.val_rows, features=features).astype(np.float64) if len(ctx.val_rows) \
        else np.zeros((0, X_train.shape[1]))
    fit = fit_probe(X_train, data.y[ctx.train_rows], X_val, data.y[ctx.val_rows], ctx.info.kind, ctx.cfg.probe,
                    ctx.info.num_outputs, ctx.seed)
    clf = make_classifier(encoder, ctx.info.num_outputs, "linear", ctx.cfg.mlp_hidden, freeze_encoders=True,
                          features=features)
    with torch.no_grad():
        clf.head.weight.copy_(torch.as_tensor(fit.coef, dtype=torch.float32))
        clf.head.bias.copy_(torch.as_tensor(fit.intercept, dtype=torch.float32))
    clf.to(data.device).eval()
    meta = {"probe_C": fit.C, "probe_val_auroc": fit.val_auroc}
    return FusedPredictor("", clf, ctx.info.kind, "linear", ctx.cfg.mlp_hidden, frozen=True, meta=meta,
                          features=features)


@register_model("linear", "head")
def linear(ctx: HeadContext) -> FusedPredictor:
    """Linear probe on the frozen fused embedding ``[N, F]``."""
    return _fit_head(ctx, "fused")


@register_model("linear_image", "head", reads=FEATURE_INPUTS["image"])
def linear_image(ctx: HeadContext) -> FusedPredictor:
    """Linear probe on the frozen image embedding ``[N, Di]``."""
    return _fit_head(ctx, "image")


@register_model("linear_table", "head", reads=FEATURE_INPUTS["table"])
def linear_table(ctx: HeadContext) -> FusedPredictor:
    """Linear probe on the frozen table embedding ``[N, Dt]``."""
    return _fit_head(ctx, "table")


@register_model("linear_concat", "head")
def linear_concat(ctx: HeadContext) -> FusedPredictor:
    """Linear probe on the frozen image and table embeddings side by side ``[N, Di + Dt]``."""
    return _fit_head(ctx, "concat")
