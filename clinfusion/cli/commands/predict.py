"""``clinfusion predict RUN --cohort TABLE --out FILE.csv [--head NAME]``."""

from __future__ import annotations

from clinfusion.cli.base import (COMMANDS, add_head_argument, add_run_arguments, load_run_config, print_config,
                                 refuse_existing_output, run_tables)


@COMMANDS.register("predict")
class Predict:
    help = "predict class probabilities for (unlabelled) rows"

    @staticmethod
    def add_arguments(parser):
        add_run_arguments(parser, "output CSV file")
        add_head_argument(parser)

    @staticmethod
    def run(args) -> int:
        if args.print_config:
            return print_config(load_run_config(args.run, args.overrides))
        refuse_existing_output(args.out, args.overwrite, run_tables(args.run, args.cohort))
        from clinfusion import api

        api.predict(args.run, out=args.out, cohort=args.cohort, overrides=args.overrides, head=args.head)
        print(f"predictions: {args.out}")
        return 0
