import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from clinfusion.config.schema import CohortConfig, OmicsConfig
from clinfusion.datasets.cohort import load_cohort
from clinfusion.errors import ConfigError, DataError


def _write(tmp_path, frame, name="c.csv"):
    p = tmp_path / name
    frame.to_csv(p, index=False)
    return p


def test_tiny_cohort_fields(tiny_cfg, tiny_table):
    before = hashlib.sha256(tiny_table.read_bytes()).hexdigest()
    snapshot = tiny_cfg.model_dump()
    c = load_cohort(tiny_cfg, require_labels=True)
    assert c.ids[:3] == ["s00", "s01", "s02"] and c.patients[:3] == ["p0", "p0", "p1"]
    assert c.image_paths[5] == str((tiny_table.parent / "img" / "5.png").resolve())
    assert c.root == tiny_table.parent.resolve()
    # id/patient/image/label/exclude are never features; sex is text -> categorical
    assert c.numeric == ["age"] and c.categorical == ["sex"]
    assert c.labels.task == "binary" and c.labels.classes == ["0", "1"] and c.labels.columns == ["label"]
    assert c.label_matrix.shape == (12, 1)
    np.testing.assert_array_equal(c.label_index, [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0])
    assert c.has_table.all() and c.omics is None
    assert tiny_cfg.model_dump() == snapshot  # config untouched
    assert hashlib.sha256(tiny_table.read_bytes()).hexdigest() == before  # file untouched


def test_defaults_empty_image_cells_and_explicit_features_drop_labels(tmp_path, frame12):
    frame12.loc[3, "image"] = ""
    frame12.loc[4, "image"] = np.nan
    p = _write(tmp_path, frame12)
    cfg = CohortConfig(table=str(p), image_column="image", label_column="label", features=["age", "label", "sex"])
    c = load_cohort(cfg)
    assert c.ids == [str(i) for i in range(12)] and c.patients == c.ids  # row index, one patient per row
    assert c.image_paths[3] is None and c.image_paths[4] is None and c.image_paths[0] is not None
    assert c.numeric == ["age"] and c.categorical == ["sex"]  # label never a feature


def test_multiclass_and_multilabel(tmp_path, frame12):
    frame12["grade"] = ["a", "b", "c"] * 4
    frame12.loc[0, "grade"] = np.nan
    frame12["f1"] = [0, 1] * 6
    frame12["f2"] = [1, 1, 0, 0] * 3
    p = _write(tmp_path, frame12)
    mc = load_cohort(CohortConfig(table=str(p), label_column="grade", exclude=["findings", "f1", "f2"]))
    assert mc.labels.task == "multiclass" and mc.labels.classes == ["a", "b", "c"]
    assert mc.label_index[:4].tolist() == [-1, 1, 2, 0]
    assert np.isnan(mc.label_matrix[0]).all() and mc.label_matrix[1].tolist() == [0, 1, 0]
    ml = load_cohort(CohortConfig(table=str(p), label_column=["f1", "f2"], exclude=["grade"]))
    assert ml.labels.task == "multilabel" and ml.labels.classes == ["f1", "f2"]
    assert ml.label_matrix[:2].tolist() == [[0, 1], [1, 1]] and (ml.label_index == -1).all()
    assert "f1" not in ml.numeric and "f2" not in ml.numeric and "label" in ml.numeric


def test_absent_column_names_it_file_and_close_matches(tiny_table):
    cfg = CohortConfig(table=str(tiny_table), patient_column="patients")
    with pytest.raises(DataError, match=r"cohort\.csv: column 'patients' \(cohort\.patient_column\) not found\. "
                                        r"Close matches: 'patient'"):
        load_cohort(cfg)


def test_missing_table_and_empty_path(tmp_path):
    with pytest.raises(DataError, match=r"missing\.csv.*not found"):
        load_cohort(CohortConfig(table=str(tmp_path / "missing.csv")))
    with pytest.raises(ConfigError, match="cohort.table is empty"):
        load_cohort(CohortConfig())


def test_text_in_a_numeric_feature_names_column_row_id_value(tmp_path, frame12):
    frame12["bmi"] = ["21.5"] * 12
    frame12.loc[7, "bmi"] = "n/a?"
    frame12.loc[9, "bmi"] = "<18"
    p = _write(tmp_path, frame12)
    want = r"feature 'bmi' holds numbers but row 8 \(id 's07'\) has text 'n/a\?' \(2 such row\(s\)\).*cohort.categorical"
    for features in (["age", "bmi"], "auto"):  # listed or inferred: numbers with stray text never become categories
        cfg = CohortConfig(table=str(p), id_column="sid", features=features, label_column="label",
                           exclude=["image", "findings"])
        with pytest.raises(DataError, match=want):
            load_cohort(cfg)
    declared = load_cohort(CohortConfig(table=str(p), id_column="sid", label_column="label", categorical=["bmi"],
                                        exclude=["image", "findings"]))
    assert "bmi" in declared.categorical  # the user's say wins


def test_duplicate_ids_name_id_and_rows(tmp_path, frame12):
    frame12.loc[9, "sid"] = "s03"
    p = _write(tmp_path, frame12)
    with pytest.raises(DataError, match=r"id 's03' in column 'sid' is duplicated in rows 4, 10"):
        load_cohort(CohortConfig(table=str(p), id_column="sid"))


def test_empty_cohort_and_one_class_label(tmp_path, frame12):
    empty = _write(tmp_path, frame12.iloc[:0], "empty.csv")
    with pytest.raises(DataError, match=r"empty\.csv: the cohort is empty"):
        load_cohort(CohortConfig(table=str(empty)))
    unlabelled = frame12.assign(label=np.nan)
    p = _write(tmp_path, unlabelled, "nolabel.csv")
    with pytest.raises(DataError, match=r"label column 'label' has one class only \(no values\)"):
        load_cohort(CohortConfig(table=str(p), label_column="label"), require_labels=True)
    one = _write(tmp_path, frame12.assign(label=1), "one.csv")
    with pytest.raises(DataError, match=r"one\.csv: label column 'label' has one class only \(only '1'\): "
                                        r"fine-tuning needs two classes to learn and evaluation both to measure AUROC"):
        load_cohort(CohortConfig(table=str(one), label_column="label"), require_labels=True)
    assert load_cohort(CohortConfig(table=str(one), label_column="label")).labels is None  # pretraining: fine


def _omics(tmp_path, keys, cols=("g1", "g2", "g3")):
    rng = np.random.default_rng(0)
    om = pd.DataFrame(rng.normal(size=(len(keys), len(cols))), columns=list(cols))
    om.insert(0, "sample", keys)
    p = tmp_path / "omics.csv"
    om.to_csv(p, index=False)
    return p, om


def test_omics_join_and_gene_sets(tiny_table, tmp_path, capsys):
    keys = ["s05", "s00", "s11", "zz"]  # shuffled, one unknown key, most samples without omics
    p, om = _omics(tmp_path, keys)
    gmt = tmp_path / "sets.gmt"
    gmt.write_text("setA\tdesc\tg3\tg1\tnotthere\nsetB\t-\tnotthere\n")
    cfg = CohortConfig(table=str(tiny_table), id_column="sid",
                       omics=OmicsConfig(table=str(p), key_column="sample", gene_sets=str(gmt)))
    c = load_cohort(cfg)
    assert c.omics.shape == (12, 3) and c.omics.dtype == np.float32 and c.omics_columns == ["g1", "g2", "g3"]
    np.testing.assert_allclose(c.omics[0], om.iloc[1, 1:].to_numpy(float), rtol=1e-6)
    np.testing.assert_allclose(c.omics[5], om.iloc[0, 1:].to_numpy(float), rtol=1e-6)
    assert np.isnan(c.omics[1]).all()
    assert c.omics_groups == [[0, 2], [1]] and c.omics_group_names == ["setA", "other"]
    assert "1 of 3 listed genes are not omics columns (first 'notthere'); 1 set(s) with none" in capsys.readouterr().out
    gmt.write_text("setA\tdesc\tENSG01\nsetB\t-\tENSG02\n")  # other identifiers than the table's: groups nothing
    with pytest.raises(DataError, match=r"sets\.gmt: none of its 2 genes is a column of the omics table \(genes like "
                                        r"'ENSG01', columns like 'g1'\)"):
        load_cohort(cfg)
    js = tmp_path / "sets.json"
    js.write_text(json.dumps({"B": ["g2"], "A": ["g1"]}))
    cfg.omics.gene_sets = str(js)
    c = load_cohort(cfg)
    assert c.omics_groups == [[1], [0], [2]] and c.omics_group_names == ["B", "A", "other"]


def test_omics_key_errors(tiny_table, tmp_path):
    p, _ = _omics(tmp_path, ["a", "b", "c"])
    cfg = CohortConfig(table=str(tiny_table), id_column="sid", omics=OmicsConfig(table=str(p), key_column="sample"))
    with pytest.raises(DataError, match=r"omics\.csv: no omics key in 'sample' matches cohort column 'sid'"):
        load_cohort(cfg)
    p, _ = _omics(tmp_path, ["s01", "s02", "s01"])
    with pytest.raises(DataError, match=r"omics key 's01' in column 'sample' appears in rows 1, 3"):
        load_cohort(cfg)
    cfg.omics.key_column = "sampel"
    with pytest.raises(DataError, match=r"column 'sampel' \(cohort\.omics\.key_column\) not found.*'sample'"):
        load_cohort(cfg)


def test_label_config_errors(tmp_path, frame12):
    frame12["f1"] = [0, 1, 2] * 4
    p = _write(tmp_path, frame12)
    with pytest.raises(ConfigError, match="cohort.label_column is not set"):
        load_cohort(CohortConfig(table=str(p)), require_labels=True)
    with pytest.raises(DataError, match=r"multi-label column 'f1' must hold 0/1, row 3 has 2"):
        load_cohort(CohortConfig(table=str(p), label_column=["label", "f1"]))


def test_text_in_omics_column(tiny_table, tmp_path):
    p, om = _omics(tmp_path, ["s00", "s01"])
    om["g2"] = om["g2"].astype(object)
    om.loc[1, "g2"] = "high"
    om.to_csv(p, index=False)
    cfg = CohortConfig(table=str(tiny_table), id_column="sid",
                       omics=OmicsConfig(table=str(p), key_column="sample", columns=["g1", "g2"]))
    with pytest.raises(DataError, match=r"omics column 'g2' has text 'high' in row 2"):
        load_cohort(cfg)


def test_text_in_an_auto_omics_column_is_an_error_and_a_text_column_is_left_out(tiny_table, tmp_path):
    """columns: auto takes the numeric columns; a gene column with a stray word must not vanish silently."""
    p, om = _omics(tmp_path, [f"s{i:02d}" for i in range(6)])
    om["platform"] = "array"  # all text: metadata, not a gene; left out
    om.to_csv(p, index=False)
    cfg = CohortConfig(table=str(tiny_table), id_column="sid", omics=OmicsConfig(table=str(p), key_column="sample"))
    assert load_cohort(cfg).omics_columns == ["g1", "g2", "g3"]
    om["g2"] = om["g2"].astype(object)
    om.loc[3, "g2"] = "NA?"
    om.to_csv(p, index=False)
    with pytest.raises(DataError, match=r"omics column 'g2' has text 'NA\?' in row 4: omics values must be numbers"):
        load_cohort(cfg)


def test_empty_patient_cell_names_row(tmp_path, frame12):
    frame12.loc[6, "patient"] = None
    p = _write(tmp_path, frame12)
    with pytest.raises(DataError, match=r"c\.csv: patient column 'patient' is empty in row 7: "):
        load_cohort(CohortConfig(table=str(p), patient_column="patient"))
    frame12.loc[[7, 9], "patient"] = " "
    p = _write(tmp_path, frame12)
    with pytest.raises(DataError, match=r"is empty in row 7 \(and 2 more row\(s\)\): fill it in"):
        load_cohort(CohortConfig(table=str(p), patient_column="patient"))


def test_gene_set_file_errors(tiny_table, tmp_path):
    p, _ = _omics(tmp_path, ["s00", "s01"])
    bad = tmp_path / "sets.json"
    bad.write_text('["g1", "g2"]')
    cfg = CohortConfig(table=str(tiny_table), id_column="sid",
                       omics=OmicsConfig(table=str(p), key_column="sample", gene_sets=str(bad)))
    with pytest.raises(DataError, match=r"gene-set file .*sets\.json' could not be read \(expected a mapping"):
        load_cohort(cfg)
    cfg.omics.gene_sets = str(tmp_path / "sets.xml")
    with pytest.raises(DataError, match=r"gene-set file .*sets\.xml' not found"):
        load_cohort(cfg)


def test_positive_label_chooses_the_positive_class_and_bad_values_say_so(tmp_path, frame12):
    frame12["dx"] = np.where(frame12["label"] == 1, "abnormal", "normal")
    p = _write(tmp_path, frame12)
    base = dict(table=str(p), label_column="dx", exclude=["label", "findings", "image"])
    plain = load_cohort(CohortConfig(**base))
    assert plain.labels.classes == ["abnormal", "normal"]  # sorted: 'normal' would be the positive class
    chosen = load_cohort(CohortConfig(**base, positive_label="abnormal"))
    assert chosen.labels.classes == ["normal", "abnormal"]
    np.testing.assert_array_equal(chosen.label_matrix[:, 0], frame12["label"].to_numpy(float))  # abnormal = 1
    numeric = load_cohort(CohortConfig(table=str(p), label_column="label", exclude=["dx", "findings", "image"],
                                       positive_label=0))  # a YAML number: matched as the column's text
    assert numeric.labels.classes == ["1", "0"] and numeric.label_matrix[2, 0] == 1.0
    with pytest.raises(DataError, match=r"cohort.positive_label='Abnormal' is not one of its values \(label column 'dx': "
                                        r"'abnormal', 'normal'\)"):
        load_cohort(CohortConfig(**base, positive_label="Abnormal"))
    frame12.loc[0, "dx"] = "borderline"
    with pytest.raises(DataError, match="needs a binary label, it has 3 values"):
        load_cohort(CohortConfig(table=str(_write(tmp_path, frame12)), label_column="dx", positive_label="normal",
                                 exclude=["label", "findings", "image"]))
    with pytest.raises(ConfigError, match="positive_label applies to one binary label column"):
        load_cohort(CohortConfig(table=str(p), label_column=["label"], positive_label="1", exclude=["dx"]))


def test_label_values_differing_only_in_case_are_an_error(tmp_path, frame12):
    frame12["dx"] = np.where(frame12["label"] == 1, "Yes", "no")
    frame12.loc[3, "dx"] = "No "  # case and a trailing space: still the same answer
    p = _write(tmp_path, frame12)
    with pytest.raises(DataError, match=r"label column 'dx' has values that differ only in letter case, 'No' and 'no'"):
        load_cohort(CohortConfig(table=str(p), label_column="dx", exclude=["label", "findings", "image"]))
    frame12.loc[3, "dx"] = "no"
    p = _write(tmp_path, frame12)
    from clinfusion.config import load_config

    cfg = load_config(None, [f"cohort.table={p}", "cohort.label_column=dx", "cohort.exclude=[label,findings,image]",
                             "cohort.positive_label=yes"])  # YAML reads `yes` as True: still the column's 'Yes'
    assert cfg.cohort.positive_label == "True"
    assert load_cohort(cfg.cohort).labels.classes == ["no", "Yes"]  # sorted alone: ['Yes', 'no']


def test_zero_padded_ids_and_patients_stay_text(tmp_path, frame12):
    """Ids and patients like 000123 are names, not numbers: read from CSV they keep their zeros (a
    number would print as 123 and merge patients '0' and '000'); an omics table joins on them too."""
    frame = frame12.drop(columns=["image"])
    frame["sid"] = [f"{i:06d}" for i in range(12)]
    frame["patient"] = ["0", "000", "00", "0000", "1", "01"] * 2  # six patients as a number would be two
    table = tmp_path / "zeros.csv"
    frame.to_csv(table, index=False)
    p, om = _omics(tmp_path, ["000005", "5", "000000"])
    c = load_cohort(CohortConfig(table=str(table), id_column="sid", patient_column="patient", image_column=None,
                                 exclude=["findings"], omics=OmicsConfig(table=str(p), key_column="sample")))
    assert c.ids[:2] == ["000000", "000001"] and len(set(c.patients)) == 6
    np.testing.assert_allclose(c.omics[5], om.iloc[0, 1:].to_numpy(float), rtol=1e-6)  # '000005', not '5'
    np.testing.assert_allclose(c.omics[0], om.iloc[2, 1:].to_numpy(float), rtol=1e-6)
    assert np.isnan(c.omics[1]).all()
