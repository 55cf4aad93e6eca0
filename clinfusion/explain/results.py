"""Collecting batch results and writing every output file of ``clinfusion explain``.

:class:`ResultCollector` exports each sample as its batch arrives (maps, overlays) and
keeps the small per-sample tables; :meth:`ResultCollector.finish` writes the CSVs, global
views, ``faithfulness.json``, ``timings.json`` and ``report.html``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from clinfusion.explain.export import export_sample
from clinfusion.explain.faithfulness import summarise
from clinfusion.explain.global_views import class_mean_maps, rank_features, write_class_maps, write_feature_ranking
from clinfusion.explain.modality import share_summary
from clinfusion.explain.pipeline import BatchResult, Explainer
from clinfusion.explain.report import SampleSection, write_report
from clinfusion.explain.tabular import TabularAttribution

TOP_FEATURES = 8  # features shown per sample in the report


def attribution_frame(ids: Sequence[str], attrs: Sequence[TabularAttribution]) -> pd.DataFrame:
    """One row per id: feature values (NaN = missing in the input) then ``<feature>__missing``."""
    names = attrs[0].names
    values = np.concatenate([a.values for a in attrs])
    missing = np.concatenate([a.missing for a in attrs])
    frame = pd.DataFrame(values, columns=names)
    flags = pd.DataFrame(missing, columns=[f"{n}__missing" for n in names])
    return pd.concat([pd.DataFrame({"id": list(ids)}), frame, flags], axis=1)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


class ResultCollector:
    def __init__(self, out: Path, run: Any, data: Any, explainer: Explainer) -> None:
        self.out, self.run, self.data, self.explainer = out, run, data, explainer
        self.ids: List[str] = []
        self.tabular: Dict[str, List[TabularAttribution]] = {}
        self.shares: List[pd.DataFrame] = []
        self.faith: Dict[str, List[np.ndarray]] = {}
        self.randomization: Dict[str, Dict[str, float]] = {}
        self.samples: List[SampleSection] = []
        self.primary_maps: List[np.ndarray] = []
        self.pred_class: List[str] = []
        self.has_image: List[bool] = []
        self.files: Dict[str, Dict[str, str]] = {}

    def _prediction(self, probs: np.ndarray, target: int) -> Tuple[str, str]:
        """``(text for the report, decided class)`` at the run's operating threshold."""
        from clinfusion.downstream.inference import predicted_labels

        info = self.run.label
        decided = predicted_labels(probs[None], info, self.run.threshold)[0]
        name = info.classes[-1] if info.kind == "binary" else info.classes[target]
        return f"P({name}) = {probs[target]:.3f}; predicted: {decided}", decided

    def add(self, res: BatchResult, batch: Dict[str, Any], rows: np.ndarray) -> None:
        ex = self.explainer
        self.ids += res.ids
        for m, a in res.tabular.items():
            self.tabular.setdefault(m, []).append(a)
        if res.share is not None:
            self.shares.append(res.share)
        for k, v in res.faith.items():
            self.faith.setdefault(k, []).append(v)
        self.randomization.update(res.randomization)
        has_img = batch["modality_mask"][:, 0].bool().cpu().numpy()
        images = batch["image"].float().cpu().numpy()
        primary_tab = res.tabular.get(ex.primary_tabular) if ex.primary_tabular else None
        for i, sid in enumerate(res.ids):
            pred, decided = self._prediction(res.probs[i], int(res.targets[i]))
            self.pred_class.append(decided)
            self.has_image.append(bool(has_img[i]))
            overlay = None
            if res.maps and has_img[i]:
                maps = {m: v[i].numpy() for m, v in res.maps.items()}
                files = export_sample(self.out, sid, maps, ex.primary_image, images[i],
                                      self.data.cohort.image_paths[int(rows[i])], f"{sid} ({ex.primary_image})",
                                      resize_only=not (self.run.cfg.image.orientation or self.run.cfg.image.spacing))
                self.files[sid] = files
                overlay = self.out / files["overlay"]
            if res.maps:
                self.primary_maps.append(res.maps[ex.primary_image][i].numpy())
            share = res.share.iloc[i].drop("id").to_dict() if res.share is not None else {}
            self.samples.append(SampleSection(sid, pred, overlay, self._top(primary_tab, i), share))

    @staticmethod
    def _top(attr: Optional[TabularAttribution], i: int) -> list:
        if attr is None:
            return []
        v, miss = attr.values[i], attr.missing[i]
        present = [j for j in np.argsort(-np.nan_to_num(np.abs(v), nan=-1.0)) if not miss[j]][:TOP_FEATURES]
        absent = [j for j in range(len(v)) if miss[j]][:3]
        return [(attr.names[j], float(v[j]), bool(miss[j])) for j in present + absent]

    def _write_tabular(self) -> List[Path]:
        pngs = []
        ex = self.explainer
        for m, attrs in self.tabular.items():
            attribution_frame(self.ids, attrs).to_csv(self.out / f"tabular_{m}.csv", index=False)
            genes = [a.genes for a in attrs if a.genes is not None]
            if genes and m == "tabular_ig":
                frame = pd.DataFrame(np.concatenate(genes), columns=attrs[0].gene_names)
                frame.insert(0, "id", self.ids)
                frame.to_csv(self.out / "omics_genes.csv", index=False)
        if ex.primary_tabular in self.tabular:
            attrs = self.tabular[ex.primary_tabular]
            attribution_frame(self.ids, attrs).to_csv(self.out / "tabular.csv", index=False)
            ranking = rank_features(np.concatenate([a.values for a in attrs]), attrs[0].names)
            ranking.insert(0, "method", ex.primary_tabular)
            pngs.append(write_feature_ranking(ranking, self.out)[1])
        return pngs

    def _write_maps(self) -> List[Path]:
        if not self.primary_maps:
            return []
        means = class_mean_maps(np.stack(self.primary_maps), self.pred_class, np.asarray(self.has_image))
        return [p for p in write_class_maps(means, self.out) if p.suffix == ".png"]

    def faithfulness(self) -> Dict[str, Any]:
        means = summarise(self.faith)
        out: Dict[str, Any] = {}
        for m in self.explainer.image_methods:
            d = {k.split("/", 1)[1]: v for k, v in means.items() if k.startswith(f"{m}/")}
            if d:
                d["deletion_beats_random"] = bool(d["deletion"] < d["deletion_random"])
                d["insertion_beats_random"] = bool(d["insertion"] > d["insertion_random"])
                d["steps"] = self.explainer.cfg.faithfulness_steps
                out[f"image/{m}"] = d
        if "table/ig_vs_ablation_spearman" in means:
            out["table"] = {"ig_vs_ablation_spearman": means["table/ig_vs_ablation_spearman"]}
        if self.randomization:
            out["model_randomization"] = self.randomization
        return out

    def finish(self, notes: Sequence[str]) -> None:
        ex = self.explainer
        globals_png = self._write_tabular() + self._write_maps()
        summary = None
        if self.shares:
            share = pd.concat(self.shares, ignore_index=True)
            share.to_csv(self.out / "modality_share.csv", index=False)
            summary = share_summary(share)
            (self.out / "modality_summary.json").write_text(json.dumps(_json_safe(summary), indent=2))
        faith = self.faithfulness()
        (self.out / "faithfulness.json").write_text(json.dumps(_json_safe(faith), indent=2))
        timings = {m: {"seconds": s, "samples": ex.samples, "samples_per_s": ex.samples / s if s > 0 else None}
                   for m, s in ex.timings.items()}
        (self.out / "timings.json").write_text(json.dumps(_json_safe(timings), indent=2))
        (self.out / "explained.json").write_text(json.dumps(
            {"ids": self.ids, "files": self.files, "image_methods": ex.image_methods,
             "tabular_method": ex.primary_tabular, "head": self.run.head, "notes": list(notes)}, indent=2))
        write_report(self.out / "report.html", self.samples, ex.primary_tabular or "", globals_png, _json_safe(faith),
                     notes, _json_safe(summary) if summary else None)
