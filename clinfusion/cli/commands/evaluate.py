"""``clinfusion evaluate RUN --cohort TABLE --out DIR``: external validation."""

from __future__ import annotations

from clinfusion.cli.base import COMMANDS, add_run_arguments, load_run_config, print_config


@COMMANDS.register("evaluate")
class Evaluate:
    help = "evaluate a fine-tuned run on a (external) labelled cohort: metrics.json + predictions.csv"

    @staticmethod
    def add_arguments(parser):
        add_run_arguments(parser, "output directory")

    @staticmethod
    def run(args) -> int:
        if args.print_config:
            return print_config(load_run_config(args.run, args.overrides))
        from clinfusion.downstream.evaluate import run_evaluate

        out = run_evaluate(args.run, args.cohort, args.out, overwrite=args.overwrite, overrides=args.overrides)
        print(f"evaluation: {out}")
        return 0
