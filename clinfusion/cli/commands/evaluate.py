"""``clinfusion evaluate RUN --cohort TABLE --out DIR [--head NAME]``: external validation."""

from __future__ import annotations

from clinfusion.cli.base import COMMANDS, add_head_argument, add_run_arguments, load_run_config, print_config


@COMMANDS.register("evaluate")
class Evaluate:
    help = "evaluate a fine-tuned run on a (external) labelled cohort: metrics.json + predictions.csv"

    @staticmethod
    def add_arguments(parser):
        add_run_arguments(parser, "output directory")
        add_head_argument(parser)

    @staticmethod
    def run(args) -> int:
        if args.print_config:
            return print_config(load_run_config(args.run, args.overrides))
        from clinfusion import api

        metrics = api.evaluate(args.run, args.out, cohort=args.cohort, overrides=args.overrides,
                               overwrite=args.overwrite, head=args.head)
        print(headline(metrics))
        print(f"evaluation: {args.out}")
        return 0


def headline(m) -> str:
    """``AUROC 0.812 [0.740, 0.880]; AUPRC ...; n 120``: the scalar metrics of ``metrics.json`` users look at first."""
    parts = []
    for key in ("auroc", "auprc", "accuracy", "balanced_accuracy"):
        value = m.get(key)
        if isinstance(value, (int, float)) and value == value:
            lo, hi = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
            ci = f" [{lo:.3f}, {hi:.3f}]" if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) \
                and lo == lo and hi == hi else ""
            parts.append(f"{key.upper() if key.startswith('au') else key.replace('_', ' ')} {value:.3f}{ci}")
    if "n" in m:
        n = m["n"]
        parts.append(f"n {int(n) if isinstance(n, float) and n.is_integer() else n}")  # JSON may give 184.0
    return "; ".join(parts) if parts else "metrics: see metrics.json"
