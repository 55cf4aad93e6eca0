"""``clinfusion validate CONFIG``: read the whole cohort and report what is wrong with it."""

from __future__ import annotations

import sys

from clinfusion.cli.base import COMMANDS, input_tables, load_cli_config, print_config, refuse_existing_output


@COMMANDS.register("validate")
class Validate:
    help = "check a cohort against its config: images, features, labels, splits, leakage"

    @staticmethod
    def add_arguments(parser):
        parser.add_argument("config", help="YAML config file")
        parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="dotted overrides")
        parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        parser.add_argument("--out", default=None, help="also write the report to this text file")
        parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    @staticmethod
    def run(args) -> int:
        cfg = load_cli_config(args)
        if args.print_config:
            return print_config(cfg)
        if args.out:
            refuse_existing_output(args.out, args.overwrite, input_tables(cfg.cohort))
        from clinfusion import api

        report = api.validate(cfg)
        text = report.render()
        if report.fatal:
            print(f"error: {report.fatal[0]}", file=sys.stderr)
        print(text)
        if args.out:
            from pathlib import Path

            Path(args.out).write_text(text + "\n")
        return 1 if report.fatal else 0
