"""``clinfusion finetune CONFIG [overrides] --pretrained RUN --out DIR [--resume] [--overwrite]``.

Runs under ``torchrun --nproc_per_node N -m clinfusion.cli.main finetune ...`` too (DDP)."""

from __future__ import annotations

import os

from clinfusion.cli.base import COMMANDS, add_config_arguments, default_out, load_cli_config, print_config


@COMMANDS.register("finetune")
class Finetune:
    help = "train classifiers on fused embeddings with baselines, CIs, subgroups and a report"

    @staticmethod
    def add_arguments(parser):
        add_config_arguments(parser)
        parser.add_argument("--pretrained", default=None, help="pretrained run directory (omit: from scratch)")
        parser.add_argument("--resume", action="store_true", help="continue an interrupted fine-tune in --out")

    @staticmethod
    def run(args) -> int:
        cfg = load_cli_config(args)
        if args.print_config:
            return print_config(cfg)
        from clinfusion import api

        out = api.finetune(cfg, pretrained=args.pretrained, out=default_out(args, "finetune"), overwrite=args.overwrite,
                           resume=args.resume)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0 only
            print(f"fine-tuned run: {out}")
        return 0
