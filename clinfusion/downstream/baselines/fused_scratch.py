"""``fused_scratch`` baseline: the fused model randomly initialised, trained end-to-end.

Same architecture and training as the ``full`` head but without pretraining: the gap
between the two is what self-supervised pretraining bought.
"""

from __future__ import annotations

from clinfusion.downstream.heads.base import BASELINES, HeadContext
from clinfusion.downstream.heads.fused import FusedPredictor
from clinfusion.downstream.heads.full import fit_end_to_end


@BASELINES.register("fused_scratch")
def fused_scratch(ctx: HeadContext) -> FusedPredictor:
    model = ctx.new_model()
    pred = fit_end_to_end(ctx, model, "fused_scratch")
    return pred
