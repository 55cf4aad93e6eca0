"""Training logs: ``metrics.csv`` (one row per logged step and per validation) and
TensorBoard (``tensorboard/``), written by rank 0 only.

CSV columns: ``epoch, step, split, loss, <term>_loss..., itm_acc, lr, samples_per_s, data_wait_s,
compute_s, auroc`` (``data_wait_s`` / ``compute_s``: seconds per step spent waiting for the
loader vs. running forward/backward/step, averaged over the logged window; ``auroc`` on the
validation rows of a fine-tuning run).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional

LOSS_TERMS = ("clip_loss", "simclr_loss", "byol_loss", "scarf_loss", "masked_features_loss", "itm_loss",
              "masked_fused_loss", "mae_loss")
ACCURACIES = ("itm_acc",)  # image-table matching accuracy (true pairs vs hard negatives)
METRICS = ("auroc",)  # validation AUROC of a fine-tuned model (clinfusion.downstream.neural)
COLUMNS = ("epoch", "step", "split", "loss") + LOSS_TERMS + ACCURACIES + ("lr", "samples_per_s", "data_wait_s",
                                                                         "compute_s") + METRICS


class MetricsLogger:
    """Append rows to ``run_dir/metrics.csv`` and TensorBoard scalars.

    Args:
        run_dir: the run folder.
        enabled: False on ranks other than 0 (then every call is a no-op).
        resume_step: when resuming, rows with ``step > resume_step`` (written after the
            checkpoint by the interrupted run) are dropped first, so the log matches the
            weights.
        tensorboard: write TensorBoard event files too.
    """

    def __init__(self, run_dir: Path, enabled: bool = True, resume_step: Optional[int] = None,
                 tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.csv"
        self.writer = None
        if not enabled:
            return
        if resume_step is None or not self.path.is_file():
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(COLUMNS)
        else:
            self._truncate(resume_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resume_step)

    def _truncate(self, resume_step: int) -> None:
        with open(self.path, newline="") as f:
            rows: List[Dict[str, str]] = list(csv.DictReader(f))
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= resume_step)

    def log(self, epoch: int, step: int, split: str, values: Dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"epoch": epoch, "step": step, "split": split, **{k: f"{v:.6g}" for k, v in values.items()}}
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, COLUMNS, extrasaction="ignore").writerow(row)
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{split}/{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
