"""Heads and baselines: ONE registry with a kind, the fitting context, the predictor face.

A fine-tuning model is a function ``fit(ctx: HeadContext) -> Predictor`` registered with
:func:`register_model` under a name and a **kind**: ``head`` (``finetune.heads``: built on
the (pre)trained model and saved in ``classifier/``) or ``baseline`` (``finetune.baselines``:
references trained on the same splits). Built-in: heads ``linear``, ``linear_image``,
``linear_table``, ``linear_concat`` (:mod:`~clinfusion.downstream.probe`), ``mlp``, ``full``
(:mod:`~clinfusion.downstream.neural`), ``lightgbm`` (:mod:`~clinfusion.downstream.lgbm`);
baselines ``image_only``, ``fused_scratch``, ``tabular_lgbm``. A plug-in registered by the
user before the config is loaded is accepted (config keys checked against :data:`HEADS` /
:data:`BASELINES`, the registry's names of each kind).

:class:`FusedPredictor` adapts to the classifier's face: ``FusedClassifier(model,
num_outputs, head, hidden, freeze_encoders, features)`` with ``.model`` (the
MultimodalModel), ``.head`` (embedding ``[B, D]`` -> logits ``[B, K_out]``) and
``forward_batch(batch) -> [B, K_out]``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from safetensors.torch import save_model

from clinfusion.config.schema import FinetuneConfig
from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.labels import LabelInfo, to_probs
from clinfusion.registry import Registry

MODELS = Registry("fine-tuning model")  # name -> fit(ctx) -> Predictor; each fit function carries .kind
KINDS = ("head", "baseline")
BUILTIN = ("clinfusion.downstream.probe", "clinfusion.downstream.neural", "clinfusion.downstream.lgbm")


INPUTS = ("image", "table")


def register_model(name: str, kind: str, reads: Sequence[str] = INPUTS) -> Callable:
    """Decorator: register ``fit(ctx: HeadContext) -> Predictor`` as ``name`` of ``kind``
    (``head`` | ``baseline``). ``reads``: the inputs its prediction depends on (a subset of
    :data:`INPUTS`); on a cohort with none of them the model is skipped (:func:`usable_models`)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not reads or set(reads) - set(INPUTS):
        raise ValueError(f"reads must be a non-empty subset of {INPUTS}, got {reads!r}")

    def deco(fit: Callable) -> Callable:
        fit.kind, fit.reads = kind, tuple(reads)
        return MODELS.register(name)(fit)

    return deco


def absent_inputs(cohort: Any) -> List[str]:
    """The inputs no row of ``cohort`` has: ``image`` (no image path) and/or ``table`` (no clinical
    or omics value)."""
    out = [] if any(p is not None for p in cohort.image_paths) else ["image"]
    return out + ([] if bool(np.asarray(cohort.has_table).any()) else ["table"])


def usable_models(names: Sequence[str], absent: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``(kept, skipped)``: a model is skipped when every input it reads is ``absent``."""
    load_builtin()
    skip = [n for n in names if set(getattr(MODELS.get(n), "reads", INPUTS)) <= set(absent)]
    return [n for n in names if n not in skip], skip


def load_builtin() -> None:
    """Import the modules registering the built-in heads and baselines."""
    from importlib import import_module

    for module in BUILTIN:
        import_module(module)


class ModelsOfKind:
    """The registered names of one kind (what ``finetune.heads`` / ``finetune.baselines`` accept);
    the face :mod:`clinfusion.config.names` checks config values against."""

    def __init__(self, kind: str) -> None:
        self.of_kind, self.kind = kind, f"fine-tuning {kind}"

    def names(self) -> List[str]:
        load_builtin()
        return [n for n in MODELS.names() if MODELS.get(n).kind == self.of_kind]

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def get(self, name: str) -> Callable:
        """The fit function; ConfigError (via the registry) naming the valid ones when unknown."""
        if name in self:
            return MODELS.get(name)
        from clinfusion.config.names import check_name

        check_name(f"finetune.{self.of_kind}s", name, self)
        raise AssertionError  # check_name raised


HEADS = ModelsOfKind("head")
BASELINES = ModelsOfKind("baseline")


@dataclass
class HeadContext:
    data: FinetuneData  # cohort view: loaders, cached embeddings, raw features
    info: LabelInfo  # label kind and classes
    cfg: FinetuneConfig  # the finetune section
    train_rows: np.ndarray  # cohort rows used for training (label fraction applied)
    val_rows: np.ndarray  # cohort rows for the operating threshold
    encoder: torch.nn.Module  # the (pre)trained MultimodalModel: frozen heads share it, others copy it
    new_model: Callable[[], torch.nn.Module]  # a freshly initialised MultimodalModel
    new_image_encoder: Callable[[], torch.nn.Module]  # a freshly initialised ImageEncoder
    seed: int = 0
    pretrained: bool = False  # `encoder` comes from a pretrained run (else it is randomly initialised)
    work_dir: Optional[Path] = None  # engine-trained models: checkpoints + metrics.csv under <work_dir>/<name>/
    resume: bool = False  # continue engine training from <work_dir>/<name>/checkpoints/last
    device_pref: str = "auto"  # the run's `device` (the engine places each process under torchrun)
    is_main: bool = True  # rank 0 (writes files)

    def encoder_copy(self) -> torch.nn.Module:
        return copy.deepcopy(self.encoder)


class Predictor:
    """A trained head or baseline.

    ``predict(data, rows, variant) -> [len(rows), K_out]`` probabilities (see
    :mod:`clinfusion.downstream.labels`); ``variants`` says whether the model takes the
    modality mask (missing-modality evaluation); ``save(dir) -> meta`` writes weights
    (safetensors / LightGBM text, never pickle) and returns the JSON-able head meta.
    """

    name: str = ""
    variants: bool = True

    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        raise NotImplementedError

    def save(self, directory: Path) -> Dict[str, Any]:
        raise NotImplementedError(f"{self.name} cannot be saved")


WEIGHTS = "model.safetensors"


@torch.no_grad()
def predict_on_batches(module: torch.nn.Module, data: FinetuneData, rows: np.ndarray, forward, kind: str,
                       variant: str = "all") -> np.ndarray:
    """Probabilities ``[len(rows), K_out]`` of ``forward(batch) -> logits`` in row order."""
    module.eval()
    out = [to_probs(forward(b), kind) for b, _ in data.batches(rows, variant)]
    return np.concatenate(out) if out else np.zeros((0, 1))


def make_classifier(model: torch.nn.Module, num_outputs: int, head: str, hidden: int,
                    freeze_encoders: bool, features: str = "fused") -> torch.nn.Module:
    from clinfusion.models import FusedClassifier

    return FusedClassifier(model, num_outputs, head=head, hidden=hidden, freeze_encoders=freeze_encoders,
                           features=features)


class FusedPredictor(Predictor):
    """A trained FusedClassifier.

    With ``frozen=True`` (probe heads) predictions reuse the data's cached fused
    embeddings (``head(embed(batch))``), which equals ``forward_batch`` for a frozen model.
    """

    def __init__(self, name: str, classifier: torch.nn.Module, kind: str, head: str, hidden: int,
                 frozen: bool, meta: Optional[Dict[str, Any]] = None, features: str = "fused") -> None:
        self.name, self.classifier, self.kind, self.features = name, classifier, kind, features
        self.head, self.hidden, self.frozen = head, hidden, frozen
        self.meta = meta or {}

    @torch.no_grad()
    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        self.classifier.eval()
        if self.frozen:
            emb = torch.as_tensor(data.embed(self.classifier.model, rows, variant, self.features), device=data.device)
            return to_probs(self.classifier.head(emb), self.kind)
        return predict_on_batches(self.classifier, data, rows, self.classifier.forward_batch, self.kind, variant)

    def save(self, directory: Path) -> Dict[str, Any]:
        save_model(self.classifier, str(Path(directory) / WEIGHTS))
        return {"format": "fused_classifier", "head": self.head, "hidden": self.hidden,
                "freeze_encoders": self.frozen, "features": self.features, "weights": WEIGHTS, **self.meta}
