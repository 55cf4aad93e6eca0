"""Typed configs: suggestions for typos, type errors naming key/value, overrides, paths."""

from pathlib import Path

import pytest

from clinfusion.config import dump_config, load_config
from clinfusion.errors import ConfigError
from clinfusion.registry import Registry


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_validate():
    cfg = load_config(None)
    assert cfg.pretrain.epochs == 10 and cfg.image.spatial_dims == 2


def test_misspelled_key_names_path_and_suggests(tmp_path):
    p = write(tmp_path, "pretrain:\n  epocs: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "pretrain.epocs" in msg and "pretrain.epochs" in msg and str(p) in msg
    assert "\n" not in msg


def test_misspelled_nested_section(tmp_path):
    p = write(tmp_path, "model:\n  image_encodr:\n    name: resnet18\n")
    with pytest.raises(ConfigError, match=r"model\.image_encodr.*model\.image_encoder"):
        load_config(p)


def test_wrong_type_names_key_value_and_expected(tmp_path):
    p = write(tmp_path, "pretrain:\n  epochs: many\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "pretrain.epochs" in msg and "'many'" in msg and "integer" in msg


def test_yaml_not_a_mapping(tmp_path):
    p = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping.*got a list"):
        load_config(p)


def test_invalid_yaml_syntax_names_line(tmp_path):
    p = write(tmp_path, "cohort:\n  table: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(p)


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/cfg.yaml")


def test_dotted_overrides_are_typed_and_win(tmp_path):
    p = write(tmp_path, "pretrain:\n  epochs: 3\n")
    cfg = load_config(p, ["pretrain.epochs=2", "cohort.label_column=[a, b]", "cohort.id_column=null"])
    assert cfg.pretrain.epochs == 2
    assert cfg.cohort.label_column == ["a", "b"]
    assert cfg.cohort.id_column is None


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(None, ["pretrain.epochs"])
    with pytest.raises(ConfigError, match="unknown config key 'pretrain.epoch'"):
        load_config(None, ["pretrain.epoch=1"])


def test_an_error_in_an_override_names_the_command_line_not_the_file(tmp_path):
    """A run's stored config.yaml is fine; the typo came with the command: the line says so."""
    p = write(tmp_path, "pretrain:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"^command-line override: unknown config key 'explain.n_samples'; did you "
                                          r"mean 'explain.max_samples'\?"):
        load_config(p, ["explain.n_samples=3"])
    bad = write(tmp_path, "pretrain:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: unknown config key 'pretrain.epoch'"):
        load_config(bad, ["pretrain.lr=0.1"])  # the file's own typo is the file's


def test_relative_table_resolves_against_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "c.yaml"
    p.write_text("cohort:\n  table: data/cohort.csv\n")
    cfg = load_config(p)
    assert Path(cfg.cohort.table) == (tmp_path / "sub" / "data" / "cohort.csv").resolve()


def test_package_paths_are_kept():
    cfg = load_config(None, ["cohort.table=pkg://nih_cxr_1k/clinical.csv"])
    assert cfg.cohort.table == "pkg://nih_cxr_1k/clinical.csv"


def test_dump_round_trips(tmp_path):
    cfg = load_config(None, ["pretrain.epochs=4", "finetune.label_fractions=[0.1, 1.0]"])
    p = tmp_path / "resolved.yaml"
    p.write_text(dump_config(cfg))
    again = load_config(p)
    assert again == cfg


def test_label_fraction_out_of_range():
    with pytest.raises(ConfigError, match="finetune.label_fractions"):
        load_config(None, ["finetune.label_fractions=[0.0, 1.0]"])


def test_registry_unknown_name_lists_valid_and_closest():
    reg = Registry("widget")
    reg.register("resnet18")(object)
    reg.register("vit_small")(object)
    with pytest.raises(ConfigError) as e:
        reg.get("resnet81")
    msg = str(e.value)
    assert "resnet18" in msg and "vit_small" in msg and "Did you mean 'resnet18'" in msg


def test_cv_folds_below_three_is_rejected():
    # k-fold CV uses one fold to test and the next to validate: k = 2 leaves nothing to train on
    with pytest.raises(ConfigError, match=r"finetune\.cv_folds.*greater than or equal to 3"):
        load_config(None, ["finetune.cv_folds=2"])
