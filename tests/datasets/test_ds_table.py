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


def test_semicolon_csv_and_latin1_csv_say_how_to_save_the_file(tmp_path, frame12):
    """Two ways a spreadsheet export goes wrong: ';' as separator (European locales) and Latin-1 text."""
    semi = tmp_path / "semi.csv"
    frame12.to_csv(semi, index=False, sep=";")
    with pytest.raises(DataError, match=r"semi\.csv.*one column.*separated by ';'.*save it with commas") as info:
        read_table(semi)
    assert "\n" not in str(info.value)
    latin = tmp_path / "latin.csv"
    frame = frame12.astype({"sex": object}).copy()
    frame.loc[0, "sex"] = "féminin"
    frame.to_csv(latin, index=False, encoding="latin-1")
    with pytest.raises(DataError, match=r"latin\.csv.*not UTF-8.*save it as UTF-8"):
        read_table(latin)
    one = tmp_path / "one.csv"  # a real one-column table is still a table
    pd.DataFrame({"sid": ["a", "b"]}).to_csv(one, index=False)
    assert list(read_table(one).columns) == ["sid"]
