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

        api.evaluate(args.run, args.out, cohort=args.cohort, overrides=args.overrides, overwrite=args.overwrite,
                     head=args.head)
        print(f"evaluation: {args.out}")
        return 0
