"""``extends:``: the one inheritance key of a config file."""

import pytest

from clinfusion.config import load_config
from clinfusion.errors import ConfigError


def test_child_overrides_base_key_by_key_and_paths_resolve_per_file(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "base.yaml").write_text(
        "seed: 3\ncohort: {table: data.csv, id_column: sid}\nimage: {size: [32, 32], channels: 1}\n"
        "pretrain: {epochs: 5, lr: 0.01}\n")
    (tmp_path / "child.yaml").write_text("extends: base/base.yaml\nimage: {size: [16, 16]}\npretrain: {epochs: 2}\n")
    (tmp_path / "grandchild.yaml").write_text("extends: child.yaml\nseed: 7\n")
    cfg = load_config(tmp_path / "grandchild.yaml", ["pretrain.lr=0.5"])
    assert cfg.seed == 7 and cfg.pretrain.epochs == 2 and cfg.pretrain.lr == 0.5  # child, then override
    assert cfg.image.size == [16, 16] and cfg.cohort.id_column == "sid"  # nested sections merge
    assert cfg.cohort.table == str((tmp_path / "base" / "data.csv").resolve())  # relative to the base file


def test_missing_base_and_cycles_are_one_line_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: nope.yaml\n")
    with pytest.raises(ConfigError, match=r"'extends: nope.yaml' not found"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("extends: c.yaml\n")
    (tmp_path / "c.yaml").write_text("extends: b.yaml\n")
    with pytest.raises(ConfigError, match=r"'extends' makes a cycle"):
        load_config(tmp_path / "b.yaml")
