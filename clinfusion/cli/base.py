"""What every command shares: the command registry, config arguments, run-dir helpers.

A command is a small class registered with ``@COMMANDS.register(name)`` that has
``help``, ``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports (torch,
pandas) happen inside ``run`` so ``clinfusion --help`` is instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Sequence

from clinfusion.registry import Registry

COMMANDS = Registry("command")


def add_config_arguments(parser: argparse.ArgumentParser, out_help: str = "run directory") -> None:
    """``CONFIG [key.path=value ...] [--out DIR] [--overwrite] [--print-config]``."""
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value",
                        help="dotted overrides, e.g. pretrain.epochs=2 cohort.table=/data/c.csv")
    parser.add_argument("--out", default=None, help=f"{out_help} (default: runs/<config name>-<command>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def add_run_arguments(parser: argparse.ArgumentParser, out_help: str,
                      overrides_help: str = "dotted overrides applied to the run's stored config") -> None:
    """``RUN [key.path=value ...] --cohort TABLE --out PATH [--overwrite] [--print-config]``."""
    parser.add_argument("run", help="a run directory written by clinfusion")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value", help=overrides_help)
    parser.add_argument("--cohort", default=None, help="cohort table (CSV/Parquet); default: the run's cohort")
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def add_head_argument(parser: argparse.ArgumentParser) -> None:
    """``--head NAME``: a saved head of a fine-tuned run other than the one chosen on validation."""
    parser.add_argument("--head", default=None,
                        help="a saved head of the run (a folder of its classifier/) instead of the one chosen "
                             "on validation")


def load_cli_config(args: argparse.Namespace):
    """The validated config from ``args.config`` + overrides, with seeds set."""
    from clinfusion.config import load_config
    from clinfusion.seed import seed_everything

    cfg = load_config(args.config, args.overrides)
    seed_everything(cfg.seed)
    return cfg


def load_run_config(run: str, overrides: List[str]):
    """The config stored in a run directory, with dotted overrides applied."""
    from clinfusion.config import load_config
    from clinfusion.errors import RunDirError

    path = Path(run) / "config.yaml"
    if not Path(run).is_dir():
        raise RunDirError(f"run directory {run!r} not found: pass a directory written by clinfusion")
    if not path.is_file():
        raise RunDirError(f"run directory {run!r} has no config.yaml: is it a clinfusion run?")
    from clinfusion.seed import seed_everything

    cfg = load_config(path, overrides)
    seed_everything(cfg.seed)
    return cfg


def default_out(args: argparse.Namespace, command: str) -> str:
    if args.out:
        return args.out
    return str(Path("runs") / f"{Path(args.config).stem}-{command}")


def print_config(cfg) -> int:
    from clinfusion.config import dump_config

    print(dump_config(cfg), end="")
    return 0


def refuse_existing_output(path: str, overwrite: bool, inputs: Sequence[Optional[str]] = ()) -> None:
    """The one-file ``--out`` of validate / embed / predict: an existing file is kept unless
    ``--overwrite`` was given; a folder (or a path ending in a separator) and any of ``inputs`` (the
    tables the command reads; user data) are refused even with it."""
    import os

    from clinfusion.datasets.table import resolve_table_path
    from clinfusion.errors import RunDirError

    out = Path(path)
    if path.endswith(("/", os.sep)) or out.is_dir():
        raise RunDirError(f"--out {path!r} is a folder: this command writes one file; give a file path inside it")
    for table in inputs:
        if table and str(table).strip() and out.resolve() == resolve_table_path(table).resolve():
            raise RunDirError(f"--out {path!r} is the table this command reads ({table}): choose another --out "
                              f"(your data are never overwritten)")
    if out.exists() and not overwrite:
        raise RunDirError(f"output {path!r} exists: pass --overwrite to replace it")


def run_tables(run: str, cohort: Optional[str]) -> List[Optional[str]]:
    """The tables embed / predict read from ``run``: ``--cohort`` or the run's own cohort table, and
    its omics table ([] entries that cannot be known are None; the run's errors come later)."""
    try:
        cfg = load_run_config(run, [])
    except Exception:  # a broken run is reported by the command itself, with its own line
        return [cohort]
    return input_tables(cfg.cohort, cohort)


def input_tables(cohort_cfg, table: Optional[str] = None) -> List[Optional[str]]:
    """``[cohort table, omics table or None]`` a command reads with ``cohort_cfg`` (``table`` replacing
    the cohort table when given): the paths ``--out`` must never be."""
    return [table or cohort_cfg.table, cohort_cfg.omics.table if cohort_cfg.omics is not None else None]


def optional_list(values: Optional[List[str]]) -> Optional[List[str]]:
    """``--ids a b,c`` -> ['a', 'b', 'c']; None stays None."""
    if not values:
        return None
    out: List[str] = []
    for v in values:
        out.extend(x for x in v.split(",") if x)
    return out
