"""Scaling of a CLIP training step with the global batch, and of the tabular encoder with
the omics width.

1. **Batch**: samples/s and peak memory of one CLIP step (image encoder + tabular
   encoder + projections + :class:`~clinfusion.objectives.ClipLoss`, forward + backward +
   AdamW) at 64 -> 1024 global negatives. The logits are ``[B, B]`` (quadratic), the
   encoders linear in ``B``; the fitted log-log slope of time says which dominates.
2. **Omics width**: the :class:`~clinfusion.encoders.tabular.TabularEncoder` (chunk
   grouping, 256 columns per token) at 100 -> 20,000 omics columns, forward + backward +
   AdamW: time and memory must grow near-linearly with width (log-log slope ~1, not 2).

Sizes are measured interleaved (one step of each size per round, after warm-up) so load
from other processes hits every size alike. ``--tiny`` runs a seconds-long smoke version.

    python -m benchmarks.scaling [--tiny] [--device auto|cpu|cuda] [--results-dir DIR]
"""

from __future__ import annotations

import math
from typing import Any, Dict, List

import torch

from benchmarks import _cli
from benchmarks._clip_model import ClipPair, image_batch, table_batch, table_schema, train_step
from benchmarks._device import pick_device, precision
from benchmarks._memory import PeakMemory
from benchmarks._plots import loglog_plot, loglog_slope
from benchmarks._timing import best, interleave, median
from clinfusion.config.schema import ImageEncoderConfig, TabularEncoderConfig

NAME = "scaling"
LINEAR_SLOPE_MAX = 1.2  # a fitted width slope above this is called super-linear


def sizes(tiny: bool, device: torch.device) -> Dict[str, Any]:
    """Measured sizes: a tiny image on CPU so a 1024 batch fits in seconds, 128 px on CUDA."""
    if tiny:
        return dict(batches=[8, 16, 32], image=16, encoder="cnn_tiny", width=4, rounds=2,
                    widths=[100, 500, 1000], omics_batch=4)
    if device.type == "cuda":
        return dict(batches=[64, 128, 256, 512, 1024], image=128, encoder="resnet18", width=None, rounds=15,
                    widths=[100, 1000, 5000, 20000], omics_batch=256)
    return dict(batches=[64, 128, 256, 512, 1024], image=32, encoder="cnn_tiny", width=16, rounds=7,
                widths=[100, 1000, 5000, 20000], omics_batch=64)


def _measure(steps: Dict[Any, Any], rounds: int, device: torch.device) -> Dict[Any, Dict[str, float]]:
    """Warm up every step, read each one's peak memory over one step, then time them interleaved."""
    for fn in steps.values():
        fn()
    out: Dict[Any, Dict[str, float]] = {}
    for key, fn in steps.items():  # increasing sizes: the allocator only ever grows
        pm = PeakMemory(device).start()
        fn()
        pm.stop()
        out[key] = {"peak_mb": pm.peak_mb, "step_mb": pm.delta_mb}
    times = interleave(steps, rounds=rounds, warmup=0, device=device)
    for key, ts in times.items():
        out[key]["ms"] = 1000.0 * best(ts)
        out[key]["ms_median"] = 1000.0 * median(ts)
    return out


def batch_scaling(sz: Dict[str, Any], device: torch.device, plots) -> Dict[str, Any]:
    """CLIP step vs global batch."""
    size = [sz["image"]] * 2
    schema = table_schema(n_num=8, cards=(3, 5))
    torch.manual_seed(0)
    model = ClipPair(ImageEncoderConfig(name=sz["encoder"], width=sz["width"]), TabularEncoderConfig(dropout=0.0),
                     schema, 2, 1, size).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    steps = {b: train_step(model, opt, {"image": image_batch(b, 1, size, device), **table_batch(schema, b, device)},
                           device) for b in sz["batches"]}
    res = _measure(steps, sz["rounds"], device)
    rows = [{"global batch": b, "ms/step": r["ms"], "median ms": r["ms_median"], "samples/s": 1000.0 * b / r["ms"], "peak MB": r["peak_mb"],
             "step MB": r["step_mb"], "logits MB": 2 * b * b * 4 / 2 ** 20} for b, r in res.items()]
    bs = list(res)
    t_slope = loglog_slope(bs, [r["ms"] for r in res.values()])
    m_slope = loglog_slope(bs, [max(r["step_mb"], 1e-3) for r in res.values()])
    plot = loglog_plot(plots / "scaling_batch.png", bs, {"ms/step": [r["ms/step"] for r in rows],
                                                          "step MB": [max(r["step MB"], 1e-3) for r in rows]},
                       "global batch (negatives)", f"CLIP step ({sz['encoder']} {sz['image']}px + tabular) vs batch")
    note = (f"One process, {precision(device)}, {sz['encoder']} at 1x{sz['image']}x{sz['image']} + tabular encoder "
            f"(8 numeric, 2 categorical; hidden 64, 2 layers) + ClipLoss, AdamW; 'ms/step' = fastest of {sz['rounds']} "
            f"interleaved steps (least disturbed by other jobs; the median is beside it), samples/s from it. 'step MB' = peak minus memory in use before the step ({PeakMemory(device).kind}); "
            f"'logits MB' = the two [B, B] fp32 logit matrices. Fitted log-log slope vs batch: time "
            f"{t_slope:.2f}, step memory {m_slope:.2f} (1 = linear).")
    return {"title": "CLIP step vs global batch", "columns": list(rows[0]), "rows": rows, "note": note,
            "plot": f"plots/{plot.name}", "slopes": {"time": t_slope, "memory": m_slope}}


def width_scaling(sz: Dict[str, Any], device: torch.device, plots) -> Dict[str, Any]:
    """TabularEncoder forward + backward vs omics width (chunk grouping)."""
    cfg = TabularEncoderConfig(dropout=0.0, omics_grouping="chunk", omics_chunk_size=256)
    b = sz["omics_batch"]
    steps, meta = {}, {}
    for g in sz["widths"]:
        torch.manual_seed(0)
        schema = table_schema(n_num=8, cards=(3, 5), n_omics=g)
        from clinfusion.encoders.tabular import TabularEncoder

        enc = TabularEncoder(cfg, schema).to(device).train()
        opt = torch.optim.AdamW(enc.parameters(), lr=1e-4)
        steps[g] = train_step(enc, opt, table_batch(schema, b, device), device,
                              loss_fn=lambda m, **kw: m(**kw).float().pow(2).mean())
        meta[g] = {"tokens": 1 + len(enc.token_names), "params": sum(p.numel() for p in enc.parameters())}
    res = _measure(steps, sz["rounds"], device)
    rows = [{"omics columns": g, "tokens": meta[g]["tokens"], "params (M)": meta[g]["params"] / 1e6,
             "ms/step": r["ms"], "median ms": r["ms_median"], "samples/s": 1000.0 * b / r["ms"], "peak MB": r["peak_mb"], "step MB": r["step_mb"]}
            for g, r in res.items()]
    ws = list(res)
    t_all = loglog_slope(ws, [r["ms"] for r in res.values()])
    t_wide = loglog_slope(ws[1:], [r["ms"] for r in list(res.values())[1:]]) if len(ws) > 2 else t_all
    t_last = loglog_slope(ws[-2:], [r["ms"] for r in list(res.values())[-2:]])
    m_all = loglog_slope(ws, [max(r["step_mb"], 1e-3) for r in res.values()])
    p_all = loglog_slope(ws, [meta[g]["params"] for g in ws])
    verdict = "near-linear" if max(t_wide, t_last, m_all) <= LINEAR_SLOPE_MAX else "SUPER-LINEAR (check the tokenizer)"
    plot = loglog_plot(plots / "scaling_omics.png", ws, {"ms/step": [r["ms/step"] for r in rows],
                                                          "step MB": [max(r["step MB"], 1e-3) for r in rows]},
                       "omics columns", f"TabularEncoder (chunk 256) vs omics width, batch {b}")
    note = (f"TabularEncoder (hidden 64, 2 layers, chunk grouping of 256 columns per token, 10% values missing), "
            f"batch {b}, forward + backward + AdamW, {precision(device)}, fastest of {sz['rounds']} interleaved steps (median beside it). "
            f"Fitted log-log slopes vs width: time {t_all:.2f} over all widths, {t_wide:.2f} from "
            f"{ws[1]:,} columns on (where the omics tokens dominate), {t_last:.2f} between the two widest; step memory {m_all:.2f}; parameters "
            f"{p_all:.2f}. Verdict: {verdict} (threshold {LINEAR_SLOPE_MAX}).")
    return {"title": "TabularEncoder vs omics width", "columns": list(rows[0]), "rows": rows, "note": note,
            "plot": f"plots/{plot.name}",
            "slopes": {"time": t_all, "time_wide": t_wide, "time_widest_pair": t_last, "memory": m_all,
                       "params": p_all}}


def main(argv: List[str] | None = None) -> int:
    p = _cli.parser(NAME, __doc__)
    args = p.parse_args(argv)
    _cli.setup(args)
    device = pick_device(args.device)
    sz = sizes(args.tiny, device)
    plots = _cli.plots_dir(args)
    batch = batch_scaling(sz, device, plots)
    width = width_scaling(sz, device, plots)
    slopes = {"batch": batch.pop("slopes"), "omics_width": width.pop("slopes")}
    summary = (f"CLIP step time grows with log-log slope {slopes['batch']['time']:.2f} in the global batch "
               f"({sz['batches'][0]} -> {sz['batches'][-1]}); the tabular encoder's time grows with slope "
               f"{slopes['omics_width']['time_wide']:.2f} ({slopes['omics_width']['time_widest_pair']:.2f} between the two "
               f"widest) and its memory {slopes['omics_width']['memory']:.2f} in the "
               f"omics width ({sz['widths'][0]:,} -> {sz['widths'][-1]:,} columns): linear, not quadratic."
               if not any(math.isnan(v) for v in slopes["omics_width"].values()) else "")
    _cli.write(NAME, args, [batch, width], argv, extra={"summary": summary, "slopes": slopes,
                                                         "device": str(device), "tiny": args.tiny})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
