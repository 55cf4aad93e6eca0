"""The omics store: a wide omics table written once as a float32 file, read per row.

A 100k-sample x 20k-gene panel is 8 GB as float32, more as pandas float64. So the omics
table is never held whole in memory: the first use reads it in chunks (CSV: pandas
pyarrow's streaming CSV reader; Parquet: pyarrow record batches) and appends each chunk's values to
``values.f32`` (row-major ``[R, G]`` float32, the source's row order) in a cache folder;
``meta.json`` beside it holds the keys, the columns and the shape. Later uses (any
command, any run) find the folder by a key of the source's absolute path, mtime, size,
key column and column selection, so a changed file gets a new store; the user's file is
never written. Writing goes to a temporary folder renamed into place (two processes
building the same store at once both end with a complete one).

:class:`OmicsMatrix` is the cohort-aligned view ``[N, G]`` float32 (NaN rows where a
sample has no omics row). Rows are read with positional reads (``os.pread``) of
``G * 4`` contiguous bytes each, so a process holds only the rows it asked for (the OS
page cache, which the kernel may evict, holds the rest): resident memory is O(batch),
not O(cohort x genes). ``matrix[rows]`` / ``matrix[rows, cols]`` / ``np.asarray(matrix)``
work like an array (the last reads everything: small cohorts and tests only).

Cache folder: ``cohort.omics.cache_dir``, else ``$CLINFUSION_CACHE/omics``, else
``$XDG_CACHE_HOME/clinfusion/omics`` (``~/.cache/clinfusion/omics``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from clinfusion.datasets.table import mostly_numbers, row_number
from clinfusion.errors import DataError

STORE_VERSION = 2  # 2: CSV keys read as text (leading zeros kept)
CHUNK_CELLS = 1 << 20  # values per chunk read (4 MB as float32)


def cache_root(configured: Optional[str] = None, kind: str = "omics") -> Path:
    """The cache folder for ``kind`` (see the module docstring for the order of choices)."""
    if configured:
        return Path(configured).expanduser()
    if os.environ.get("CLINFUSION_CACHE"):
        return Path(os.environ["CLINFUSION_CACHE"]).expanduser() / kind
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clinfusion" / kind


def store_key(source: Path, key_column: str, columns: Any) -> str:
    """Hash of what fixes the store's content: the file (path, mtime, size) and the selection."""
    st = source.stat()
    spec = {"v": STORE_VERSION, "path": str(source.resolve()), "mtime": st.st_mtime_ns, "size": st.st_size,
            "key": key_column, "columns": columns}
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


# --------------------------------------------------------------------------- reading the source in chunks
def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _csv_reader(path: Path, columns: Optional[Sequence[str]], block_bytes: int, text: Sequence[str] = ()) -> Any:
    """A pyarrow streaming CSV reader (bounded memory, types inferred from the first block; the
    ``text`` columns, e.g. the key, read as text so ``000123`` keeps its zeros)."""
    import pyarrow as pa
    from pyarrow import csv

    parse = csv.ParseOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    read = csv.ReadOptions(block_size=block_bytes, use_threads=False)  # no read-ahead: one block in memory
    convert = csv.ConvertOptions(include_columns=list(columns) if columns is not None else None,
                                 column_types={c: pa.string() for c in text})
    return csv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)


def _one_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _header(path: Path, name: str) -> List[str]:
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            return [str(c) for c in pq.ParquetFile(path).schema_arrow.names]
        return [str(c) for c in _csv_reader(path, None, 1 << 20).schema.names]
    except Exception as exc:  # pandas / pyarrow raise many types; the user needs one line
        raise DataError(f"table {name!r} could not be read ({_one_line(exc)}): check the file") from None


def _text_error(path: Path, columns: Sequence[str], name: str, exc: BaseException) -> DataError:
    """The one-line error for text in an omics column, with the row (found by re-reading the column)."""
    import re

    m = re.search(r"CSV column #(\d+)", str(exc))
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    header = [str(c) for c in pd.read_csv(path, nrows=0, sep=sep).columns]
    col = header[int(m.group(1))] if m and int(m.group(1)) < len(header) else None
    if col is not None and col in columns:
        values = _read_column(path, col)
        if _text_cells(values).any():
            return _text_in(values, col, name)
    return DataError(f"table {name!r} could not be read ({_one_line(exc)}): check the file")


def _chunks(path: Path, columns: Sequence[str], rows_per_chunk: int, name: str) -> Iterator[Tuple[Any, np.ndarray]]:
    """``(keys, values [rows, G] float32 or None)`` per chunk of the table (Parquet: record
    batches of ``rows_per_chunk`` rows; CSV: pyarrow blocks of at most 32 MB of text), so
    memory is bounded by the chunk, not the table. ``columns[0]`` is the key column; values
    is None when a column holds text (the caller then names it)."""
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            batches = pq.ParquetFile(path).iter_batches(batch_size=rows_per_chunk, columns=list(columns))
        else:
            batches = _csv_reader(path, columns, 1 << 24, text=columns[:1])
        for batch in batches:
            yield batch.column(0).to_pandas(), _batch_values(batch)
    except DataError:
        raise
    except Exception as exc:
        if "conversion error" in str(exc).lower() and not _is_parquet(path):
            raise _text_error(path, columns[1:], name, exc) from None
        raise DataError(f"table {name!r} could not be read ({_one_line(exc)}): check the file") from None


def _batch_values(batch: Any) -> Optional[np.ndarray]:
    """``[rows, G]`` float32 of an arrow batch's columns after the first (None: a text column)."""
    import pyarrow as pa

    out = np.empty((batch.num_rows, batch.num_columns - 1), dtype=np.float32)
    for j in range(1, batch.num_columns):  # one C-level conversion per column, no pandas frame
        col = batch.column(j)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_null(col.type)):
            return None
        out[:, j - 1] = col.to_numpy(zero_copy_only=False)
    return out


def _read_column(path: Path, col: str) -> pd.Series:
    """One column of the omics table (Parquet, CSV or TSV)."""
    if _is_parquet(path):
        return pd.read_parquet(path, columns=[col])[col]
    return pd.read_csv(path, usecols=[col], sep="\t" if path.suffix.lower() == ".tsv" else ",")[col]


def _text_cells(values: pd.Series) -> np.ndarray:
    """``[N]`` bool: cells of an omics column that hold something other than a number."""
    return (pd.to_numeric(values, errors="coerce").isna() & values.notna()).to_numpy()


def _text_in(values: pd.Series, col: str, name: str) -> DataError:
    """The one-line error for text in omics column ``col`` (read as ``values``), naming its first row."""
    text = _text_cells(values)
    row = int(np.argmax(text)) if text.any() else 0
    return DataError(f"{name}: omics column {col!r} has text {values.iloc[row]!r} in row {row_number(row)}: "
                     f"omics values must be numbers (leave missing cells empty, or leave the column out of "
                     f"cohort.omics.columns)")


def _select_columns(path: Path, header: List[str], key_column: str, columns: Any, name: str,
                    missing_error: Any) -> List[str]:
    if key_column not in header:
        raise missing_error(key_column, "cohort.omics.key_column", name, header)
    if columns != "auto":
        absent = [c for c in columns if c not in header]
        if absent:
            raise missing_error(absent[0], "cohort.omics.columns", name, header)
        return [str(c) for c in columns]
    flags = _numeric_columns(path)
    for c in [c for c, numeric in zip(header, flags) if c != key_column and not numeric]:
        values = _read_column(path, c)
        if mostly_numbers(values)[0]:  # a gene column with a stray "NA?" must not vanish from `auto`
            raise _text_in(values, c, name)
    return [c for c, numeric in zip(header, flags) if c != key_column and numeric]


def _numeric_columns(path: Path) -> List[bool]:
    """Per column: numeric type (Parquet schema; CSV: types pyarrow infers from the first block)."""
    import pyarrow as pa

    if _is_parquet(path):
        import pyarrow.parquet as pq

        schema = pq.ParquetFile(path).schema_arrow
    else:
        schema = _csv_reader(path, None, 1 << 22).schema
    return [pa.types.is_integer(t) or pa.types.is_floating(t) for t in schema.types]


def build_store(source: Path, name: str, key_column: str, columns: Any, cache_dir: Optional[str],
                missing_error: Any) -> Path:
    """The store folder for ``source`` (built on first use; see the module docstring).

    Raises:
        DataError: missing key column / configured column, text in an omics column, no numeric
            column, duplicate keys (each naming the file and the column / row).
    """
    folder = cache_root(cache_dir) / store_key(source, key_column, columns)
    if (folder / "meta.json").is_file():
        return folder
    header = _header(source, name)
    cols = _select_columns(source, header, key_column, columns, name, missing_error)
    if not cols:
        raise DataError(f"{name}: no numeric omics columns besides {key_column!r}: check the table")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        keys: List[str] = []
        rows_per_chunk = max(256, 8 * CHUNK_CELLS // len(cols))  # Parquet batches of <= 32 MB float32
        with open(tmp / "values.f32", "wb") as out:
            for chunk_keys, values in _chunks(source, [key_column] + cols, rows_per_chunk, name):
                if values is None:
                    bad = [c for c, ok in zip(header, _numeric_columns(source)) if c in cols and not ok]
                    col = bad[0] if bad else cols[0]
                    raise _text_in(_read_column(source, col), col, name)
                values.tofile(out)
                keys.extend(chunk_keys.astype(str).str.strip().tolist())
        _check_unique(keys, key_column, name)
        meta = {"version": STORE_VERSION, "source": str(source.resolve()), "rows": len(keys),
                "columns": cols, "keys": keys}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same store first: keep theirs
            if not (folder / "meta.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _check_unique(keys: List[str], key_column: str, name: str) -> None:
    key = pd.Series(keys)
    dup = key.duplicated(keep=False)
    if dup.any():
        first = key[dup].iloc[0]
        rows = np.flatnonzero((key == first).to_numpy()).tolist()
        raise DataError(f"{name}: omics key {first!r} in column {key_column!r} appears in rows "
                        f"{', '.join(str(row_number(r)) for r in rows[:10])}: keep one omics row per sample")


def read_store_meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


# --------------------------------------------------------------------------- the cohort-aligned view
class OmicsMatrix:
    """Read-only ``[N, G]`` float32 view of a store, aligned to the cohort's rows.

    Args:
        folder: the store folder (``values.f32`` + ``meta.json``).
        pos: ``[N]`` int64, the store row of each cohort row (-1 = no omics row: NaN).
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, folder: Path, pos: np.ndarray) -> None:
        meta = read_store_meta(folder)
        self.folder = Path(folder)
        self.columns: List[str] = list(meta["columns"])
        self.store_rows = int(meta["rows"])
        self.pos = np.asarray(pos, dtype=np.int64)
        self._fd: Optional[int] = None
        self._pid = -1

    @property
    def shape(self) -> Tuple[int, int]:
        return (len(self.pos), len(self.columns))

    def __len__(self) -> int:
        return len(self.pos)

    def __getstate__(self) -> dict:  # loader workers reopen the file, never copy the values
        state = dict(self.__dict__)
        state["_fd"], state["_pid"] = None, -1
        return state

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.folder / "values.f32", os.O_RDONLY)
            self._pid = os.getpid()
        return self._fd

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass

    def store_block(self, start: int, stop: int) -> np.ndarray:
        """Store rows ``start:stop`` (source order) as ``[stop - start, G]`` float32, one read."""
        g = len(self.columns)
        raw = os.pread(self._file(), (stop - start) * g * 4, start * g * 4)
        return np.frombuffer(raw, dtype=np.float32).reshape(stop - start, g).copy()

    def take(self, rows: Any) -> np.ndarray:
        """Cohort ``rows`` (int array) -> ``[len(rows), G]`` float32, NaN rows without omics."""
        rows = np.atleast_1d(np.arange(len(self.pos))[rows] if isinstance(rows, slice) else np.asarray(rows))
        g = len(self.columns)
        out = np.full((len(rows), g), np.nan, dtype=np.float32)
        fd = self._file()
        for i, p in enumerate(self.pos[rows.astype(np.int64)]):
            if p >= 0:
                out[i] = np.frombuffer(os.pread(fd, g * 4, int(p) * g * 4), dtype=np.float32)
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            out = self.take([int(key)])[0]
        else:
            if isinstance(key, np.ndarray) and key.dtype == bool:
                key = np.flatnonzero(key)
            out = self.take(key)
            rest = ((slice(None),) + rest) if rest else ()
        return out[rest] if rest else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.take(np.arange(len(self.pos)))
        return out if dtype is None else out.astype(dtype)

    def iter_rows(self, rows: np.ndarray, chunk: int = 0) -> Iterator[np.ndarray]:
        """``[<=chunk, G]`` blocks of ``rows`` in order (bounded memory for whole-cohort passes)."""
        chunk = chunk or max(1, CHUNK_CELLS // max(len(self.columns), 1))
        for i in range(0, len(rows), chunk):
            yield self.take(rows[i:i + chunk])

    def subset(self, rows: Any) -> "OmicsMatrix":
        """The view of cohort ``rows`` (in that order), still read from the store (no copy)."""
        out = OmicsMatrix.__new__(OmicsMatrix)
        out.__dict__.update(self.__getstate__())
        out.pos = self.pos[np.asarray(rows, dtype=np.int64)]
        return out

    def present(self) -> np.ndarray:
        """``[N]`` bool: the row has at least one omics value (read in chunks)."""
        has = np.zeros(len(self.pos), bool)
        linked = np.flatnonzero(self.pos >= 0)
        if linked.size:
            start = 0
            for block in self.iter_rows(linked):
                has[linked[start:start + len(block)]] = ~np.isnan(block).all(axis=1)
                start += len(block)
        return has


def subset_rows(omics: Any, rows: Any) -> Any:
    """``omics`` restricted to ``rows``: an :class:`OmicsMatrix` stays lazy, an array is indexed."""
    return omics.subset(rows) if isinstance(omics, OmicsMatrix) else omics[rows]


def omics_present(omics: Any) -> np.ndarray:
    """``[N]`` bool: the row has any omics value (an array or an :class:`OmicsMatrix`)."""
    if isinstance(omics, OmicsMatrix):
        return omics.present()
    return ~np.isnan(np.asarray(omics)).all(axis=1)
