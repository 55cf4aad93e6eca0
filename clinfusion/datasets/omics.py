"""The omics block: a second wide table joined to the cohort, and optional gene sets.

``join_omics`` aligns omics rows to cohort rows with one vectorised ``reindex`` (no loop
per column), giving ``omics [N, G]`` float32 with NaN rows where a sample has no omics
row. Gene sets group columns into tokens: GMT (``name<TAB>description<TAB>gene...``),
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
from clinfusion.datasets.table import read_table
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
               ) -> Tuple[np.ndarray, List[str], Optional[List[List[int]]], Optional[List[str]]]:
    """Align the omics table to the cohort.

    Args:
        cfg: the ``cohort.omics`` section.
        keys: ``N`` cohort join keys (``join_on`` column as text, or the sample ids).
        join_name: the cohort column name used, for messages.

    Returns:
        ``omics [N, G]`` float32 (NaN rows without omics), the ``G`` column names,
        ``omics_groups`` (column indices per gene set) and their names, or ``None``.
    """
    table = read_table(cfg.table)
    if cfg.key_column not in table.columns:
        raise missing_column_error(cfg.key_column, "cohort.omics.key_column", cfg.table, list(table.columns))
    key = table[cfg.key_column].astype(str).str.strip()
    dup = key.duplicated(keep=False)
    if dup.any():
        first = key[dup].iloc[0]
        rows = np.flatnonzero((key == first).to_numpy()).tolist()
        raise DataError(f"{cfg.table}: omics key {first!r} in column {cfg.key_column!r} appears in rows "
                        f"{', '.join(map(str, rows[:10]))}: keep one omics row per sample")
    kinds = np.array([d.kind for d in table.dtypes.to_numpy()])  # one pass over dtypes, no per-column Series
    numeric = set(table.columns[np.isin(kinds, list("iuf"))])
    if cfg.columns == "auto":
        cols = [c for c in table.columns if c != cfg.key_column and c in numeric]
    else:
        absent = pd.Index(cfg.columns).difference(table.columns)
        if len(absent):
            raise missing_column_error(absent[0], "cohort.omics.columns", cfg.table, list(table.columns))
        cols = list(cfg.columns)
    bad = [c for c in cols if c not in numeric]
    if bad:
        col = table[bad[0]]
        text = pd.to_numeric(col, errors="coerce").isna() & col.notna()
        row = int(np.argmax(text.to_numpy()))
        raise DataError(f"{cfg.table}: omics column {bad[0]!r} has text {col.iloc[row]!r} in row {row}: "
                        f"omics values must be numbers (leave missing cells empty)")
    if not cols:
        raise DataError(f"{cfg.table}: no numeric omics columns besides {cfg.key_column!r}: check the table")
    keys = pd.Index([str(k).strip() for k in keys])
    pos = pd.Index(key.to_numpy()).get_indexer(keys)  # the reindex: omics row of each cohort row, -1 = none
    if not (pos >= 0).any():
        raise DataError(f"{cfg.table}: no omics key in {cfg.key_column!r} matches cohort column {join_name!r} "
                        f"(omics keys like {key.iloc[0]!r}, cohort keys like {keys[0]!r}): "
                        f"check cohort.omics.key_column / join_on")
    block = table[cols].to_numpy(dtype=np.float32)  # [rows, G] once, then a row take
    omics = np.full((len(keys), len(cols)), np.nan, dtype=np.float32)
    omics[pos >= 0] = block[pos[pos >= 0]]
    groups = names = None
    if cfg.gene_sets:
        groups, names = group_columns(cols, read_gene_sets(cfg.gene_sets))
    return omics, [str(c) for c in cols], groups, names
