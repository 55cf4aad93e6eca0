"""``clinfusion`` entry point: parse, dispatch to a registered command, report errors in one line.

User-caused problems (:class:`~clinfusion.errors.ClinfusionError`) print
``error: <one line>`` on stderr and exit 2; Ctrl-C exits 130 with a resume hint.
Set ``CLINFUSION_DEBUG=1`` to see the full traceback instead.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from typing import List, Optional

from clinfusion import __version__
from clinfusion.cli import commands  # noqa: F401  (registers the commands)
from clinfusion.cli.base import COMMANDS
from clinfusion.errors import ClinfusionError
from clinfusion.training.distributed import shutdown_distributed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clinfusion",
        description="Multimodal medical AI: pretrain image + tabular encoders, fine-tune, explain.",
    )
    parser.add_argument("--version", action="version", version=f"clinfusion {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS.names():
        cmd = COMMANDS.get(name)
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Optional[List[str]]) -> argparse.Namespace:
    """Parse, taking ``key.path=value`` overrides anywhere on the line (also after ``--out DIR``).

    argparse stops filling ``overrides`` at the first option; the rest come back as unknown
    arguments and join ``args.overrides`` in order. Anything else unknown is the usual usage error.
    """
    args, rest = parser.parse_known_args(argv)
    extra = [a for a in rest if "=" in a and not a.startswith("-")]
    unknown = [a for a in rest if a not in extra]
    if hasattr(args, "overrides"):  # a list option (--ids a b, --methods x) also takes what follows it:
        for name, value in vars(args).items():  # hand the overrides among its values back
            moved = [v for v in value if OVERRIDE.match(v)] if name != "overrides" and isinstance(value, list) else []
            if moved:
                setattr(args, name, [v for v in value if v not in moved] or None)
                extra += moved
    if unknown or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    return args


OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.\w+)+=")  # key.path=value


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings on the command line as ``warning: <message>`` (no source path or code line)."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Optional[List[str]] = None) -> int:
    warnings.showwarning = one_line_warning
    parser = build_parser()
    args = parse(parser, argv)
    cmd = COMMANDS.get(args.command)
    try:
        return int(cmd.run(args) or 0)
    except ClinfusionError as exc:
        if os.environ.get("CLINFUSION_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: continue with --resume (from the last saved checkpoint; a run stopped before its first "
              "starts again)", file=sys.stderr)
        return 130
    finally:
        shutdown_distributed()  # torchrun ranks: join gloo's threads before exit


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
