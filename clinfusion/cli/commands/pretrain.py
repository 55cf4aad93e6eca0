"""``clinfusion pretrain CONFIG [overrides] --out DIR [--resume] [--overwrite]``."""

from __future__ import annotations

import os

from clinfusion.cli.base import COMMANDS, add_config_arguments, default_out, load_cli_config, print_config


@COMMANDS.register("pretrain")
class Pretrain:
    help = "self-supervised joint pretraining of the image and tabular encoders (CLIP-style alignment)"

    @staticmethod
    def add_arguments(parser):
        add_config_arguments(parser)
        parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")

    @staticmethod
    def run(args) -> int:
        cfg = load_cli_config(args)
        if args.print_config:
            return print_config(cfg)
        from clinfusion import api

        out = api.pretrain(cfg, default_out(args, "pretrain"), overwrite=args.overwrite, resume=args.resume)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0 only
            print(f"pretrained run: {out}")
        return 0
