"""Read a cohort / omics table (CSV, TSV or Parquet) with one-line errors naming the file.

``pkg://<dataset>/<file>`` (e.g. ``pkg://nih_cxr_1k/clinical.csv``) resolves to the data
bundled in :mod:`clinfusion.datasets.data`. Readers are looked up by extension in
:data:`TABLE_READERS`; the user's file is only ever read.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from clinfusion.errors import DataError
from clinfusion.registry import Registry

PKG_PREFIX = "pkg://"

TABLE_READERS = Registry("table format")


# A reader is ``(path, text_columns) -> DataFrame``: ``text_columns`` (ids, patients, splits, sites) are
# read as text where the format stores text, so ``000123`` stays ``000123`` (not the number 123, which
# would also merge patients ``0123`` and ``123``); columns absent from the file are ignored.
@TABLE_READERS.register(".csv")
def _read_csv(path: Path, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    return pd.read_csv(path, dtype={c: str for c in text_columns})


@TABLE_READERS.register(".tsv")
def _read_tsv(path: Path, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={c: str for c in text_columns})


@TABLE_READERS.register(".parquet")
def _read_parquet(path: Path, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    return pd.read_parquet(path)  # typed columns: an integer id has no leading zeros to lose


@TABLE_READERS.register(".pq")
def _read_pq(path: Path, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    return pd.read_parquet(path)


def row_number(i: int) -> int:
    """How messages name the table row at position ``i`` (0-based): counted from 1, the first row under
    the header (as R and a spreadsheet's data rows count), so ``row 1`` is the first patient row."""
    return int(i) + 1


def resolve_table_path(path: str | os.PathLike) -> Path:
    """The file behind ``path``; ``pkg://name/file`` points into the bundled package data."""
    text = str(path)
    if text.startswith(PKG_PREFIX):
        rel = text[len(PKG_PREFIX):].strip("/")
        if not rel or ".." in Path(rel).parts:
            raise DataError(f"table {text!r}: a bundled path looks like pkg://nih_cxr_1k/clinical.csv")
        return Path(str(resources.files("clinfusion.datasets.data").joinpath(rel)))
    return Path(text).expanduser()


def read_table(path: str | os.PathLike, text_columns: Sequence[Optional[str]] = ()) -> pd.DataFrame:
    """Read a CSV / TSV / Parquet table into a new DataFrame.

    Args:
        path: file path, or ``pkg://nih_cxr_1k/clinical.csv`` for bundled data.
        text_columns: key columns (id, patient, split, site) read as text, not numbers (None skipped).

    Raises:
        DataError: the file is missing, has an unknown extension, cannot be parsed,
            or holds no columns. The message names the file.
    """
    p = resolve_table_path(path)
    if not str(path).strip():
        raise DataError("table path is empty: set cohort.table to a CSV or Parquet file")
    if not p.is_file():
        what = "is a folder, not a file" if p.is_dir() else "not found"
        raise DataError(f"table {str(path)!r} {what}: check the path (a relative path in a config file resolves "
                        f"from that file's folder; on the command line, from the current folder)")
    ext = p.suffix.lower()
    if ext not in TABLE_READERS:
        raise DataError(
            f"table {str(path)!r} has unknown extension {ext or '(none)'!r}: "
            f"use one of {', '.join(TABLE_READERS.names())}"
        )
    reader: Callable[..., pd.DataFrame] = TABLE_READERS.get(ext)
    try:
        frame = reader(p, [c for c in text_columns if c])
    except UnicodeDecodeError:
        raise DataError(f"table {str(path)!r} is not UTF-8 text (e.g. Latin-1 accents): save it as UTF-8 "
                        f"(spreadsheet programs: 'CSV UTF-8')") from None
    except Exception as exc:  # pandas/pyarrow raise many types; the user needs one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"table {str(path)!r} could not be read as {ext[1:]} ({reason}): check the file") from None
    if frame.shape[1] == 0:
        raise DataError(f"table {str(path)!r} has no columns: is it an empty or non-table file?")
    if frame.shape[1] == 1 and ext in (".csv", ".tsv"):
        only = str(frame.columns[0])
        sep = next((c for c in (";", "\t", ",", "|") if c in only and c != {".csv": ",", ".tsv": "\t"}[ext]), None)
        if sep is not None:
            raise DataError(f"table {str(path)!r} reads as one column {only[:60]!r}: its cells are separated by "
                            f"{sep!r}; save it with commas as .csv (or tabs as .tsv)")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def mostly_numbers(values: pd.Series) -> Tuple[bool, np.ndarray]:
    """``(more than half of the non-empty cells are numbers, text mask [N])`` of one text column: a
    numeric column with stray text (``<18``, ``NA?``) rather than a categorical one."""
    parsed = pd.to_numeric(values, errors="coerce")
    present = values.notna() & (values.astype(str).str.strip() != "")
    text = (present & parsed.isna()).to_numpy()
    return bool(parsed.notna().sum() > 0.5 * max(int(present.sum()), 1)), text
