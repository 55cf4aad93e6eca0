"""The Python API: the jobs of the CLI as plain calls for notebooks and scripts.

The CLI (``clinfusion <command>``) is a thin shell over these functions; both read one
config per cohort (``configs/nih_cxr_demo.yaml``). Example (executed by the test suite,
copied from README.md)::

    from clinfusion import api as cf

    cfg = cf.load_config("configs/nih_cxr_demo.yaml", ["pretrain.epochs=2"])
    cohort = cf.load_cohort(cfg)                       # the table, bad images handled
    pre = cf.pretrain(cfg, "runs/pre")                 # -> run folder (Path)
    emb = cf.embed(pre)                                # -> DataFrame, one row per sample
    X = cf.embeddings(emb, "fused_emb")                # -> array [N, D]
    ft = cf.finetune(cfg, "runs/ft", pretrained=pre)   # -> run folder
    metrics = cf.evaluate(ft, "runs/eval")             # -> dict of metrics
    preds = cf.predict(ft)                             # -> DataFrame of probabilities
    xp = cf.explain(ft, "runs/explain")                # -> folder with report.html

``config`` arguments take a :class:`~clinfusion.config.RunConfig` or a YAML path (plus
``overrides``); ``cohort=`` takes another table with the run's columns (default: the run's own).
Every job raises :class:`~clinfusion.errors.ClinfusionError` subclasses with one-line messages.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from clinfusion.config import RunConfig
from clinfusion.config import load_config as _load_config

ConfigLike = Union[RunConfig, str, os.PathLike]
PathLike = Union[str, os.PathLike]

__all__ = ["load_config", "load_cohort", "validate", "pretrain", "embed", "embeddings", "finetune", "evaluate",
           "predict", "explain"]


def load_config(path: Optional[PathLike] = None, overrides: Sequence[str] = ()) -> RunConfig:
    """The validated config of ``path`` (``extends:`` followed) with dotted ``overrides``."""
    return _load_config(path, list(overrides))


def _config(config: ConfigLike, overrides: Sequence[str] = ()) -> RunConfig:
    if isinstance(config, RunConfig):
        if overrides:
            from clinfusion.config.loader import validate_config, _deep_merge, apply_overrides

            return validate_config(_deep_merge(config.model_dump(mode="json"), apply_overrides({}, overrides)))
        return config
    return load_config(config, overrides)


def load_cohort(config: ConfigLike, table: Optional[PathLike] = None, require_labels: bool = False) -> Any:
    """The cohort every command sees (:class:`~clinfusion.datasets.cohort.Cohort`: ``frame``,
    ``ids``, ``patients``, ``image_paths``, ``label_matrix [N, K]``, ...), with
    ``cohort.on_bad_image`` applied (``cohort.skipped`` lists dropped rows)."""
    from clinfusion.datasets.builder import load_run_cohort

    cfg = _config(config)
    return load_run_cohort(cfg.cohort, cfg.image, None if table is None else str(table), require_labels)


def validate(config: ConfigLike, overrides: Sequence[str] = ()) -> Any:
    """The cohort report (``.fatal`` list, ``.render()`` text) without training anything: the data,
    then the settings pretraining would stop on (model, losses, device, batch size), and, as warnings,
    the fine-tuning heads the cohort cannot feed (e.g. image heads when no row has an image)."""
    from clinfusion.datasets.validate import validate_cohort
    from clinfusion.downstream.finetune import unreadable_heads_note
    from clinfusion.training.pretrain import check_settings

    def settings(cfg: RunConfig, cohort: Any, train_rows: np.ndarray) -> List[str]:
        check_settings(cfg, cohort, train_rows)
        return unreadable_heads_note(cfg, cohort)

    return validate_cohort(_config(config, overrides), settings=settings)


def pretrain(config: ConfigLike, out: PathLike, overrides: Sequence[str] = (), overwrite: bool = False,
             resume: bool = False) -> Path:
    """Self-supervised pretraining into the run folder ``out``; returns it."""
    from clinfusion.training.pretrain import run_pretrain

    return Path(run_pretrain(_config(config, overrides), out, overwrite=overwrite, resume=resume))


def embed(run: PathLike, out: Optional[PathLike] = None, cohort: Optional[PathLike] = None) -> Any:
    """Embeddings of ``cohort`` (default: the run's table) with a pretrained run, as a DataFrame
    (``id, patient, image_emb, table_emb, fused_emb, image_proj, table_proj``; the two ``*_proj``
    columns are the unit-norm CLIP-space projections, so ``image_proj . table_proj`` scores an
    image against a record); also written to ``out`` (Parquet) when given."""
    import pandas as pd

    from clinfusion.training.embed import run_embed

    if out is not None:
        return pd.read_parquet(run_embed(run, None if cohort is None else str(cohort), out))
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_parquet(run_embed(run, None if cohort is None else str(cohort), Path(tmp) / "emb.parquet"))


def embeddings(frame: Any, column: str = "fused_emb") -> np.ndarray:
    """``[N, D]`` float32 array of one embedding column of :func:`embed` (rows without it dropped)."""
    values = [v for v in frame[column] if v is not None]
    return np.asarray(np.stack(values) if values else np.zeros((0, 0)), dtype=np.float32)


def pretrained_differences(cfg: RunConfig, pretrained: PathLike) -> List[str]:
    """Lines saying which ``model`` / ``image`` values of ``cfg`` differ from the pretrained run and which wins."""
    from clinfusion.config.diff import pretrained_differences as diff
    from clinfusion.errors import RunDirError

    path = Path(pretrained) / "config.yaml"
    if not path.is_file():
        raise RunDirError(f"pretrained run {str(pretrained)!r} has no config.yaml: pass a folder written by "
                          f"clinfusion pretrain")
    return diff(cfg, load_config(path))


def finetune(config: ConfigLike, out: PathLike, pretrained: Optional[PathLike] = None,
             overrides: Sequence[str] = (), overwrite: bool = False, show: bool = True, resume: bool = False) -> Path:
    """Heads and baselines on the cohort's labels into ``out``; returns the run folder.

    ``resume`` continues an interrupted fine-tune in ``out`` (engine-trained models from their checkpoints).

    With ``pretrained``, prints one line per ``model`` / ``image`` key of this config that differs
    from the pretrained run and which value wins (the pretrained run's, so its weights load).
    """
    from clinfusion.downstream.finetune import run_finetune

    cfg = _config(config, overrides)
    if pretrained is not None and show and os.environ.get("RANK", "0") == "0":  # rank 0 under torchrun
        for line in pretrained_differences(cfg, pretrained):
            print(f"finetune --pretrained: {line}", flush=True)
    return Path(run_finetune(cfg, None if pretrained is None else str(pretrained), out, overwrite=overwrite,
                             show=show, resume=resume))


def evaluate(run: PathLike, out: PathLike, cohort: Optional[PathLike] = None, overrides: Sequence[str] = (),
             overwrite: bool = False, head: Optional[str] = None) -> Dict[str, Any]:
    """Score a fine-tuned run (on ``cohort``, default: the run's own table); metrics also written to ``out``.
    ``head``: a saved head other than the one chosen on validation."""
    import json

    from clinfusion.downstream.inference import run_evaluate

    folder = run_evaluate(run, None if cohort is None else str(cohort), out, overwrite=overwrite,
                          overrides=list(overrides), head=head)
    return json.loads((Path(folder) / "metrics.json").read_text())


def predict(run: PathLike, out: Optional[PathLike] = None, cohort: Optional[PathLike] = None,
            overrides: Sequence[str] = (), head: Optional[str] = None) -> Any:
    """Class probabilities (``id, patient, prob_<class>..., predicted``) as a DataFrame; CSV at ``out`` when given.
    ``head``: a saved head other than the one chosen on validation."""
    import pandas as pd

    from clinfusion.downstream.inference import run_predict

    table = None if cohort is None else str(cohort)
    if out is not None:
        return pd.read_csv(run_predict(run, table, out, overrides=list(overrides), head=head))
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_csv(run_predict(run, table, Path(tmp) / "predictions.csv", overrides=list(overrides),
                                       head=head))


def explain(run: PathLike, out: PathLike, cohort: Optional[PathLike] = None, ids: Optional[List[str]] = None,
            methods: Optional[List[str]] = None, overrides: Sequence[str] = (), overwrite: bool = False,
            head: Optional[str] = None) -> Path:
    """Attributions of a fine-tuned run into ``out`` (maps/, tabular.csv, report.html); settings from the
    run's ``explain`` section with ``explain.*`` overrides. ``head``: a saved head other than the one
    chosen on validation."""
    from clinfusion.explain.run import run_explain

    return Path(run_explain(run, None if cohort is None else str(cohort), out, ids=ids, methods=methods,
                            overwrite=overwrite, overrides=list(overrides), head=head))
