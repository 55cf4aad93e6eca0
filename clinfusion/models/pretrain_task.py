"""The self-supervised pretraining task: model + objectives -> one weighted loss.

``PretrainTask(model, cfg.pretrain, modality_dropout)``; ``forward(batch) -> {"loss",
"<name>_loss", ...}`` (batch layout in :mod:`clinfusion.datasets.batch`; ``image_view2``
needed for ``simclr`` / ``byol``). Terms, each with weight ``cfg.losses.<name>`` (a zero
weight means the term is neither built nor computed):

* ``clip``: symmetric InfoNCE between ``image_proj`` and ``table_proj`` (Radford et al.
  2021); only rows having *both* modalities are pairs.
* ``simclr``: NT-Xent between the two image views through their own projection head
  (Chen et al. 2020; MICLe pairs, Azizi et al. 2021, come from the dataset).
* ``byol``: online predictor vs. EMA target on the two views (Grill et al. 2020).
* ``scarf``: InfoNCE between a table and its SCARF corruption (Bahri et al. 2022).
* ``masked_features``: reconstruct masked clinical values from the table tokens.
* ``itm``: image-table matching; the fusion + a binary head tell true pairs from the
  hardest CLIP-space negatives of another patient in the global batch (Li et al. 2021;
  Du et al. 2024). Logs ``itm_acc`` beside the loss.
* ``masked_fused``: masked clinical values rebuilt from the *fused* embedding of the full
  image and the masked record (Du et al. 2024), so the fusion must combine both.
* ``mae``: masked image modelling on the ViT image encoder (He et al. 2022).

Modality dropout (Neverova et al. 2016) hides whole modalities from the fusion in
training: it acts on the ``masked_fused`` fusion (a dropped image leaves the record's
unmasked part; a dropped record leaves the image alone to predict it) and on the
``fused`` output; ITM always fuses both modalities (matching needs both). Rows lacking a modality are left out of that modality's single-modality terms
on one process; under DDP every rank must contribute equal-sized blocks to the gathered
negatives, so all rows are kept there (a missing image is a zero image).
"""

from __future__ import annotations

import zlib
from typing import Dict, List, Sequence

import torch
from torch import Tensor, nn

from clinfusion.config.schema import PretrainConfig
from clinfusion.datasets.batch import IMAGE, TABLE
from clinfusion.errors import ConfigError
from clinfusion.fusion import ModalityDropout
from clinfusion.models.multimodal import TABLE_KEYS, MultimodalModel, projection
from clinfusion.objectives import (EMA, BYOLLoss, ClipLoss, ItmLoss, MAELoss, MaskedFeatureLoss, MaskedFusedLoss,
                                   NTXentLoss, ScarfLoss, mask_features, scarf_corrupt, world_info)

TERMS = ("clip", "simclr", "byol", "scarf", "masked_features", "itm", "masked_fused", "mae")


def patient_codes(patients: Sequence[str], device: torch.device) -> Tensor:
    """Patient keys -> ``[B]`` int64 codes (CRC-32; equal keys give equal codes on every rank)."""
    return torch.tensor([zlib.crc32(str(p).encode()) for p in patients], dtype=torch.long, device=device)


class PretrainTask(nn.Module):
    def __init__(self, model: MultimodalModel, cfg: PretrainConfig, modality_dropout: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.weights = {t: float(getattr(cfg.losses, t)) for t in TERMS}
        if not any(w > 0 for w in self.weights.values()):
            raise ConfigError("pretrain.losses: every weight is 0; give at least one term a positive weight")
        di = model.image_encoder.embed_dim
        dt = model.table_encoder.embed_dim
        p = model.image_proj[-1].out_features
        self.modality_dropout = ModalityDropout(modality_dropout)
        self.clip = ClipLoss()
        if self.weights["simclr"] > 0:
            self.simclr_head = projection(di, p)
            self.simclr = NTXentLoss(temperature=cfg.temperature)
        if self.weights["byol"] > 0:
            self.byol_proj = projection(di, p)
            self.byol_pred = projection(p, p)
            self.byol = BYOLLoss()
            self._online: List[nn.Module] = [nn.Sequential(model.image_encoder, self.byol_proj)]  # not registered twice
            self.byol_target = EMA(self._online[0])
        if self.weights["scarf"] > 0:
            self.scarf_head = projection(dt, p)
            self.scarf = ScarfLoss(temperature=cfg.temperature)  # paper: 1.0; sharper here as for NT-Xent
        if self.weights["masked_features"] > 0:
            self.masked = MaskedFeatureLoss(dt, model.schema)
        if self.weights["itm"] > 0:
            self.itm = ItmLoss(model.fused_dim)
        if self.weights["masked_fused"] > 0:
            if model.schema.n_num + model.schema.n_cat == 0:
                raise ConfigError("pretrain.losses.masked_fused: the cohort has no numeric or categorical column to "
                                  "mask; set it to 0 or list clinical columns")
            self.masked_fused = MaskedFusedLoss(model.fused_dim, model.schema)
        if self.weights["mae"] > 0:
            self.mae = self._build_mae(model, cfg)

    @staticmethod
    def _build_mae(model: MultimodalModel, cfg: PretrainConfig) -> MAELoss:
        enc = model.image_encoder
        if not hasattr(enc, "encode_tokens"):
            raise ConfigError(f"pretrain.losses.mae needs a ViT image encoder (vit_tiny / vit_small); model.image_encoder "
                              f"is {type(enc).__name__}: set pretrain.losses.mae=0 or choose a ViT")
        m = cfg.mae
        try:
            return MAELoss(enc.embed_dim, enc.cam_token_grid, enc.patch_size, model.in_channels, m.mask_ratio,
                           m.decoder_dim, m.decoder_depth, m.decoder_heads, m.norm_pix_loss)
        except ValueError as exc:
            raise ConfigError(f"pretrain.mae: {exc}") from None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _rows(present: Tensor) -> Tensor:
        """Row selector for single-modality terms (all rows under DDP: see module doc)."""
        if world_info()[1] > 1:
            return torch.ones_like(present)
        return present

    def _image_terms(self, batch: Dict[str, Tensor], emb: Tensor, rows: Tensor, out: Dict[str, Tensor]) -> None:
        if "image_view2" not in batch:
            raise KeyError("simclr/byol need batch['image_view2']: build the dataset with views=True")
        if int(rows.sum()) < 2:
            return
        emb2 = self.model.encode_image(batch["image_view2"][rows])
        emb = emb[rows]
        if self.weights["simclr"] > 0:
            out.update(self.simclr(self.simclr_head(emb), self.simclr_head(emb2)))
        if self.weights["byol"] > 0:
            q = self.byol_pred(torch.cat([self.byol_proj(emb), self.byol_proj(emb2)]))
            with torch.no_grad():
                z = self.byol_target(torch.cat([batch["image_view2"][rows], batch["image"][rows]]))
            out.update(self.byol(q, z))

    def _table_terms(self, batch: Dict[str, Tensor], emb: Tensor, rows: Tensor, out: Dict[str, Tensor]) -> None:
        if int(rows.sum()) < 2:
            return
        tab = {k: batch[k][rows] for k in TABLE_KEYS}
        if self.weights["scarf"] > 0:
            rate = self.cfg.scarf_corruption
            cor = scarf_corrupt(tab["num"], tab["num_missing"], tab["cat"], tab["cat_missing"], rate,
                                omics=tab["omics"], omics_missing=tab["omics_missing"])
            cor_emb = self.model.encode_table({**tab, **cor})
            out.update(self.scarf(self.scarf_head(emb[rows]), self.scarf_head(cor_emb)))
        if self.weights["masked_features"] > 0:
            m = mask_features(tab["num"], tab["num_missing"], tab["cat"], tab["cat_missing"], self.cfg.mask_ratio)
            tokens = self.model.table_encoder.forward_tokens(m["num"], m["num_missing"], m["cat"], m["cat_missing"],
                                                             tab["omics"], tab["omics_missing"])
            out.update(self.masked(tokens, tab["num"], tab["cat"], m["mask_num"], m["mask_cat"]))

    def _fusion_terms(self, batch: Dict[str, Tensor], emb: Dict[str, Tensor], present: Tensor,
                      fusion_mask: Tensor, out: Dict[str, Tensor]) -> None:
        if self.weights["itm"] > 0:
            group = patient_codes(batch["patient"], present.device) if "patient" in batch else None
            out.update(self.itm(self.model.fusion, emb["image_emb"], emb["table_emb"], emb["image_proj"],
                                emb["table_proj"], present.all(dim=1), group))
        if self.weights["masked_fused"] > 0:
            m = mask_features(batch["num"], batch["num_missing"], batch["cat"], batch["cat_missing"],
                              self.cfg.fused_mask_ratio)
            tab = self.model.encode_table_tensors(m["num"], m["num_missing"], m["cat"], m["cat_missing"],
                                                  batch["omics"], batch["omics_missing"])
            fused = self.model.fusion(emb["image_emb"], tab, fusion_mask)
            # rows without a record have nothing observed, hence nothing masked: no row filter needed
            out.update(self.masked_fused(fused, batch["num"], batch["cat"], m["mask_num"], m["mask_cat"]))

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Batch dict -> ``{"loss": [], "<name>_loss": [] ..., "itm_acc": []}`` (terms that are on)."""
        present = batch["modality_mask"].to(torch.bool)
        fusion_mask = self.modality_dropout(present)
        emb = self.model.forward_tensors(batch["image"], *(batch[k] for k in TABLE_KEYS), fusion_mask)
        out: Dict[str, Tensor] = {}
        if self.weights["clip"] > 0:
            out.update(self.clip(emb["image_proj"], emb["table_proj"], self.model.logit_scale(), present.all(dim=1)))
        if self.weights["itm"] > 0 or self.weights["masked_fused"] > 0:
            self._fusion_terms(batch, emb, present, fusion_mask, out)
        if self.weights["mae"] > 0:
            rows = self._rows(present[:, IMAGE])
            if int(rows.sum()) > 0:
                out.update(self.mae(self.model.image_encoder, batch["image"][rows]))
        if self.weights["simclr"] > 0 or self.weights["byol"] > 0:
            self._image_terms(batch, emb["image_emb"], self._rows(present[:, IMAGE]), out)
        if self.weights["scarf"] > 0 or self.weights["masked_features"] > 0:
            self._table_terms(batch, emb["table_emb"], self._rows(present[:, TABLE]), out)
        loss = sum(self.weights[k[: -len("_loss")]] * v for k, v in out.items() if k.endswith("_loss"))
        if not out:  # no term could be computed on this batch: a zero that still depends on the model
            loss = emb["fused"].sum() * 0.0
        out["loss"] = loss + emb["fused"].sum() * 0.0  # fusion in the graph: DDP sees every parameter used
        return out

    @torch.no_grad()
    def after_step(self) -> None:
        """Called by the trainer after each optimizer step (BYOL target EMA update)."""
        if self.weights["byol"] > 0:
            self.byol_target.update(self._online[0])
