"""``make demo``: the whole pipeline on the bundled NIH chest X-ray cohort, through the real CLI.

One config, ``configs/nih_cxr_demo.yaml``, drives every step:
validate -> pretrain (prints the retrieval table) -> embed -> finetune (prints the
comparison table: fused vs tabular-only vs image-only, AUROC with 95% CI) ->
evaluate -> explain (prints the path of report.html; when the head chosen on validation reads
one input only, e.g. the table-embedding probe, the fused linear probe is explained as well).

Data: NIH Clinical Center ChestX-ray14 (Wang et al., CVPR 2017), 760 images of 160
patients, bundled under ``clinfusion/datasets/data/nih_cxr_1k`` with its README and
attribution.

Run: ``python -m clinfusion.demo [--out DIR] [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List

from clinfusion.cli.main import main as cli

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _config(name: str) -> str:
    """A config shipped in the repo's configs/ folder."""
    path = CONFIGS / name
    if not path.is_file():
        sys.exit(f"error: demo config {path} not found (run the demo from a clone of the repository)")
    return str(path)


def step(title: str, argv: List[str]) -> None:
    print(f"\n=== {title}: clinfusion {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    code = cli(argv)
    if code != 0:
        sys.exit(f"demo step '{title}' failed with exit code {code}")
    print(f"--- {title} done in {time.perf_counter() - t0:.1f} s", flush=True)


def _one_input_head(fin: Path) -> str:
    """The fine-tuned run's chosen head when it reads one input's embedding only and the run also
    saved the fused ``linear`` probe; else ''."""
    from clinfusion.downstream.inference import read_head_meta, read_meta
    from clinfusion.models.classifier import FEATURE_INPUTS

    meta = read_meta(fin)
    features = read_head_meta(fin, meta["primary"]).get("features", "fused")
    reads_one = len(FEATURE_INPUTS.get(features, ())) == 1
    return meta["primary"] if reads_one and "linear" in meta["heads"] else ""


def run(out: Path, quick: bool = False) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    pre, fin = out / "pretrain", out / "finetune"
    quick_pre = ["pretrain.epochs=1"] if quick else []
    quick_fin = ["finetune.epochs=2", "evaluation.bootstrap=50"] if quick else []
    config = _config("nih_cxr_demo.yaml")  # one config drives every command
    step("validate", ["validate", config])
    step("pretrain", ["pretrain", config, *quick_pre, "--out", str(pre), "--overwrite"])
    step("embed", ["embed", str(pre), "--out", str(out / "embeddings.parquet"), "--overwrite"])
    step("finetune", ["finetune", config, *quick_fin,
                      "--pretrained", str(pre), "--out", str(fin), "--overwrite"])
    step("evaluate", ["evaluate", str(fin), "--out", str(out / "evaluate"), "--overwrite"])
    step("explain", ["explain", str(fin), "--out", str(out / "explain"), "--overwrite"])
    report = (out / "explain" / "report.html").resolve()
    one_input = _one_input_head(fin)
    if one_input:  # the chosen head ignores one input: show the fused probe's maps and attributions too
        step(f"explain the fused linear probe ({one_input} was chosen and reads one input only)",
             ["explain", str(fin), "--head", "linear", "--out", str(out / "explain_fused"), "--overwrite"])
        print(f"\nExplanation report (fused linear probe): {(out / 'explain_fused' / 'report.html').resolve()}")
    print(f"\nExplanation report: {report}")
    print(f"Model report:       {(fin / 'report.html').resolve()}")
    return report


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_runs", help="where the demo writes its runs")
    parser.add_argument("--quick", action="store_true", help="fewer epochs (smoke test)")
    args = parser.parse_args(argv)
    run(Path(args.out), quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
