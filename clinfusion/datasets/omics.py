"""The omics block: a second wide table joined to the cohort, and optional gene sets.

``join_omics`` stores the omics table once as float32 on disk (read in chunks, see
:mod:`clinfusion.datasets.omics_store`) and aligns its rows to cohort rows with one
vectorised ``get_indexer`` (no loop per column), giving ``omics [N, G]`` float32 (an
:class:`~clinfusion.datasets.omics_store.OmicsMatrix` read per row) with NaN rows where
a sample has no omics row. Gene sets group columns into tokens: GMT (``name<TAB>description<TAB>gene...``),
JSON ``{group: [columns]}`` or CSV (``group,column`` rows); columns in no set form a
final ``other`` group.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from clinfusion.config.schema import OmicsConfig
from clinfusion.datasets.omics_store import OmicsMatrix, build_store, read_store_meta
from clinfusion.datasets.table import resolve_table_path
from clinfusion.errors import DataError
from clinfusion.registry import Registry

GENE_SET_READERS = Registry("gene-set format")


def missing_column_error(column: str, key: str, table: str, columns: Sequence[str]) -> DataError:
    """The one-line error for a configured column absent from a table (with close matches)."""
    close = difflib.get_close_matches(str(column), [str(c) for c in columns], n=3, cutoff=0.5)
    hint = f" Close matches: {', '.join(map(repr, close))}." if close else ""
    few = ", ".join(map(repr, list(columns)[:12])) + (", ..." if len(columns) > 12 else "")
    return DataError(f"{table}: column {column!r} ({key}) not found.{hint} Columns are: {few}")


@GENE_SET_READERS.register(".gmt")
def _read_gmt(path: Path) -> Dict[str, List[str]]:
    sets: Dict[str, List[str]] = {}
    for line in path.read_text().splitlines():
        parts = [p.strip() for p in line.rstrip("\n").split("\t")]
        if len(parts) >= 3 and parts[0]:
            sets[parts[0]] = [g for g in parts[2:] if g]
    return sets


@GENE_SET_READERS.register(".json")
def _read_json(path: Path) -> Dict[str, List[str]]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError("expected a mapping {group: [columns]}")
    return {str(k): [str(g) for g in v] for k, v in data.items()}


@GENE_SET_READERS.register(".csv")
def _read_csv(path: Path) -> Dict[str, List[str]]:
    frame = pd.read_csv(path)
    if frame.shape[1] < 2:
        raise ValueError("expected two columns: group, column")
    sets: Dict[str, List[str]] = {}
    for g, c in zip(frame.iloc[:, 0].astype(str), frame.iloc[:, 1].astype(str)):
        sets.setdefault(g, []).append(c)
    return sets


def read_gene_sets(path: str) -> Dict[str, List[str]]:
    """``{group name: [column names]}`` from a GMT / JSON / CSV file; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"gene-set file {path!r} not found: check cohort.omics.gene_sets")
    ext = p.suffix.lower()
    if ext not in GENE_SET_READERS:
        raise DataError(f"gene-set file {path!r}: unknown extension {ext!r}, use one of "
                        f"{', '.join(GENE_SET_READERS.names())}")
    try:
        return GENE_SET_READERS.get(ext)(p)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"gene-set file {path!r} could not be read ({str(exc).splitlines()[0]}): "
                        f"use GMT lines name<TAB>desc<TAB>gene... or JSON {{group: [columns]}}") from None


def check_gene_sets(path: str, sets: Dict[str, List[str]], columns: Sequence[str], kept: Sequence[str]) -> None:
    """No listed gene among the omics columns: DataError (the file would group nothing); some absent:
    one warning line with the count, the first absent gene and the sets left out."""
    present = set(map(str, columns))
    listed = list(dict.fromkeys(str(g) for genes in sets.values() for g in genes))
    absent = [g for g in listed if g not in present]
    if listed and len(absent) == len(listed):
        raise DataError(f"{path}: none of its {len(listed)} genes is a column of the omics table (genes like "
                        f"{listed[0]!r}, columns like {str(columns[0])!r}): use the table's gene identifiers")
    if absent:
        dropped = [n for n in sets if n not in kept]
        print(f"warning: {path}: {len(absent)} of {len(listed)} listed genes are not omics columns (first "
              f"{absent[0]!r}); {len(dropped)} set(s) with none of their genes are left out", flush=True)


def group_columns(columns: Sequence[str], sets: Dict[str, List[str]]) -> Tuple[List[List[int]], List[str]]:
    """Column indices per gene set (sets with no present column dropped) plus ``other``."""
    pos = {c: i for i, c in enumerate(columns)}
    groups, names, used = [], [], np.zeros(len(columns), bool)
    for name, genes in sets.items():
        idx = sorted({pos[g] for g in genes if g in pos})
        if idx:
            groups.append(idx)
            names.append(name)
            used[idx] = True
    rest = np.flatnonzero(~used).tolist()
    if rest:
        groups.append(rest)
        names.append("other")
    return groups, names


def join_omics(cfg: OmicsConfig, keys: Sequence[str], join_name: str
               ) -> Tuple[OmicsMatrix, List[str], Optional[List[List[int]]], Optional[List[str]]]:
    """Align the omics table to the cohort without loading it whole.

    The table is stored once as float32 in the omics cache (:mod:`clinfusion.datasets.omics_store`,
    built in chunks on first use) and aligned with one vectorised ``get_indexer`` (no loop per
    column or row).

    Args:
        cfg: the ``cohort.omics`` section.
        keys: ``N`` cohort join keys (``join_on`` column as text, or the sample ids).
        join_name: the cohort column name used, for messages.

    Returns:
        ``omics`` (:class:`OmicsMatrix`, ``[N, G]`` float32, NaN rows without omics, read per
        row), the ``G`` column names, ``omics_groups`` (column indices per gene set) and their
        names, or ``None``.
    """
    source = resolve_table_path(cfg.table)
    if not source.is_file():
        what = "is a folder, not a file" if source.is_dir() else "not found"
        raise DataError(f"table {cfg.table!r} {what}: check cohort.omics.table (relative paths resolve from the "
                        f"config file)")
    folder = build_store(source, cfg.table, cfg.key_column, cfg.columns, cfg.cache_dir, missing_column_error)
    meta = read_store_meta(folder)
    cols, store_keys = list(meta["columns"]), pd.Index(meta["keys"])
    keys = pd.Index([str(k).strip() for k in keys])
    pos = store_keys.get_indexer(keys)  # the reindex: store row of each cohort row, -1 = none
    if not (pos >= 0).any():
        first = store_keys[0] if len(store_keys) else "(none)"
        raise DataError(f"{cfg.table}: no omics key in {cfg.key_column!r} matches cohort column {join_name!r} "
                        f"(omics keys like {first!r}, cohort keys like {keys[0]!r}): "
                        f"check cohort.omics.key_column / join_on")
    groups = names = None
    if cfg.gene_sets:
        sets = read_gene_sets(cfg.gene_sets)
        groups, names = group_columns(cols, sets)
        check_gene_sets(cfg.gene_sets, sets, cols, names)
    return OmicsMatrix(folder, pos), [str(c) for c in cols], groups, names
