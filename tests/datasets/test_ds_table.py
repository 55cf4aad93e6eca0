import hashlib

import pandas as pd
import pytest

from clinfusion.datasets.table import read_table, resolve_table_path
from clinfusion.errors import DataError


def test_csv_and_parquet_read_the_same_values(tmp_path, frame12):
    csv, pq = tmp_path / "t.csv", tmp_path / "t.parquet"
    frame12.to_csv(csv, index=False)
    frame12.to_parquet(pq)
    before = hashlib.sha256(csv.read_bytes()).hexdigest()
    a, b = read_table(csv), read_table(pq)
    assert list(a.columns) == list(frame12.columns)
    assert a.shape == (12, 7)
    pd.testing.assert_frame_equal(a[["sid", "age", "label"]], b[["sid", "age", "label"]])
    a.loc[0, "age"] = -1  # the returned frame is the caller's; the file never changes
    assert hashlib.sha256(csv.read_bytes()).hexdigest() == before


def test_pkg_path_resolves_to_bundled_data():
    p = resolve_table_path("pkg://nih_cxr_1k/clinical.csv")
    assert p.is_file() and p.parent.name == "nih_cxr_1k"
    frame = read_table("pkg://nih_cxr_1k/clinical.csv")
    assert len(frame) == 760 and "abnormal" in frame.columns


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv.*not found"):
        read_table(tmp_path / "nope.csv")


def test_unknown_extension_lists_valid_ones(tmp_path):
    p = tmp_path / "table.xlsx"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"table\.xlsx.*unknown extension '\.xlsx'.*\.csv.*\.parquet"):
        read_table(p)


def test_unreadable_parquet_and_empty_csv_name_the_file(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"\x00\x01not a parquet file" * 10)
    with pytest.raises(DataError, match=r"bad\.parquet.*could not be read as parquet"):
        read_table(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv.*could not be read as csv") as info:
        read_table(empty)
    assert "\n" not in str(info.value)
