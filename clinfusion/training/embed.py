"""``run_embed(run_dir, table, out_file)``: embeddings of a cohort with a pretrained run.

Writes Parquet, one row per sample: ``id``, ``patient``, ``image_emb`` (list of ``Di``
floats, null without an image), ``table_emb`` (``Dt``, null without table values),
``fused_emb`` (``F``; missing modalities use the fusion's learned placeholders), and the
aligned CLIP-space projections ``image_proj`` / ``table_proj`` (``P`` floats each, unit L2
norm, null where the modality is missing): the cosine similarity of one row's
``image_proj`` with another's ``table_proj`` is the score pretraining's contrastive loss
ranks, so images of a new cohort can be matched to its records (cross-modal retrieval). The
table is preprocessed with the run's stored ``preprocessing.json`` (never refitted).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch


def run_embed(run_dir: str | os.PathLike, table: Optional[str], out_file: str | os.PathLike,
              device: str = "auto", batch_size: int = 64) -> Path:
    """Embed ``table`` (default: the run's own ``cohort.table``) into ``out_file`` (Parquet).

    Raises:
        RunDirError: ``run_dir`` incomplete (lists what is missing).
        DataError: unusable table/images (one line), or no row could be embedded.
    """
    import pandas as pd

    from clinfusion.datasets.builder import build_dataset, build_loader, load_run_cohort, write_skipped
    from clinfusion.datasets.cohort import label_columns
    from clinfusion.downstream.inference import PRETRAINED_REQUIRED, check_run_dir
    from clinfusion.models.io import load_pretrained
    from clinfusion.training.distributed import resolve_device

    check_run_dir(run_dir, PRETRAINED_REQUIRED, "pretrained")  # names a fine-tuned run passed by mistake
    cfg, pre, model = load_pretrained(run_dir)
    dev = resolve_device(device if device != "auto" else cfg.device)
    model = model.to(dev).eval()
    # embeddings need no label: an unlabelled --cohort (a new cohort) embeds too; the label column,
    # where the table has it, stays out of the features as in pretraining
    unlabelled = cfg.cohort.model_copy(update={"label_column": None,
                                              "exclude": list(cfg.cohort.exclude) + label_columns(cfg.cohort)})
    cohort = load_run_cohort(unlabelled, cfg.image, table)  # cohort.on_bad_image applied here
    ds = build_dataset(cohort, pre, range(len(cohort.ids)), cfg.image.model_copy(update={"cache": "none"}),
                       missing_features=cfg.cohort.missing_features)
    keys = ("image_emb", "table_emb", "fused_emb", "image_proj", "table_proj")
    cols: Dict[str, List] = {"id": [], "patient": [], **{k: [] for k in keys}}
    with torch.no_grad():
        for batch in build_loader(ds, batch_size, shuffle=False):
            b = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            out = model(b)
            mask = batch["modality_mask"].bool().numpy()
            cols["id"] += list(batch["id"])
            cols["patient"] += list(batch["patient"])
            unit = {k: torch.nn.functional.normalize(out[k].float(), dim=-1) for k in ("image_proj", "table_proj")}
            for key, emb, m in (("image_emb", out["image_emb"], mask[:, 0]), ("table_emb", out["table_emb"], mask[:, 1]),
                                ("fused_emb", out["fused"], np.ones(len(mask), bool)),
                                ("image_proj", unit["image_proj"], mask[:, 0]), ("table_proj", unit["table_proj"], mask[:, 1])):
                arr = emb.float().cpu().numpy()
                cols[key] += [arr[i].tolist() if m[i] else None for i in range(len(arr))]
    out_path = Path(out_file)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(cols).to_parquet(out_path, index=False)
    write_skipped(cohort, out_path.parent, f"{out_path.stem}_skipped_images.csv")
    return out_path
