"""``clinfusion explain RUN --cohort TABLE --out DIR [--ids ...] [--methods ...] [--head NAME]``."""

from __future__ import annotations

import json
from pathlib import Path

from clinfusion.cli.base import (COMMANDS, add_head_argument, add_run_arguments, load_run_config, optional_list,
                                 print_config)


@COMMANDS.register("explain")
class Explain:
    help = "export image maps, clinical/genomic attributions, modality share, faithfulness and report.html"

    @staticmethod
    def add_arguments(parser):
        add_run_arguments(parser, "output directory")
        add_head_argument(parser)
        parser.add_argument("--ids", nargs="+", default=None, help="sample ids to explain (space or comma separated)")
        parser.add_argument("--methods", nargs="+", default=None, help="attribution methods (default: config)")

    @staticmethod
    def run(args) -> int:
        if args.print_config:
            return print_config(load_run_config(args.run, args.overrides))
        from clinfusion import api

        out = api.explain(args.run, args.out, cohort=args.cohort, ids=optional_list(args.ids),
                          methods=optional_list(args.methods), overrides=args.overrides, overwrite=args.overwrite,
                          head=args.head)
        for note in json.loads((Path(out) / "explained.json").read_text()).get("notes", []):
            print(f"note: {note}")
        print(f"report: {out}/report.html")
        return 0
