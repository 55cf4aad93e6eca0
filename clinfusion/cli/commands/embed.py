"""``clinfusion embed RUN --cohort TABLE --out FILE.parquet``."""

from __future__ import annotations

from clinfusion.cli.base import (COMMANDS, add_run_arguments, load_run_config, print_config, refuse_existing_output,
                                 run_tables)
from clinfusion.errors import ConfigError


@COMMANDS.register("embed")
class Embed:
    help = "write image, tabular and fused embeddings of a cohort to Parquet"

    @staticmethod
    def add_arguments(parser):
        add_run_arguments(parser, "output Parquet file",
                          overrides_help="only with --print-config: embed always uses the run's stored config")

    @staticmethod
    def run(args) -> int:
        if args.print_config:
            return print_config(load_run_config(args.run, args.overrides))
        if args.overrides:
            raise ConfigError(f"embed uses the run's stored config and takes no overrides (got {args.overrides[0]!r}); "
                              f"re-run pretrain to change it")
        refuse_existing_output(args.out, args.overwrite, run_tables(args.run, args.cohort))
        from clinfusion import api

        api.embed(args.run, out=args.out, cohort=args.cohort)
        print(f"embeddings: {args.out}")
        return 0
