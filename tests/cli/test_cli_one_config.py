"""One YAML per cohort drives every command: validate, pretrain, embed, finetune, evaluate,
predict, explain, with no override (explain reads the fine-tuned run's explain section)."""

import json

import pandas as pd
import pytest
import yaml

from clinfusion.cli.main import main
from clinfusion.datasets.synthetic import make_synthetic_cohort


def _one_config(syn, path):
    over = dict(o.split("=", 1) for o in syn.overrides)
    cfg = {
        "seed": 0, "device": "cpu",
        "cohort": {"table": yaml.safe_load(over["cohort.table"]), "id_column": "id", "patient_column": "patient",
                   "image_column": "image", "label_column": "label"},
        "image": {"spatial_dims": 2, "channels": 1, "size": [16, 16],
                  "intensity": {"mode": "window", "a_min": 0, "a_max": 255}},
        "model": {"image_encoder": {"name": "cnn_tiny"}, "projection_dim": 16, "fusion": {"dim": 16},
                  "tabular_encoder": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32}},
        "pretrain": {"epochs": 1, "batch_size": 8, "progress": False},
        "finetune": {"heads": ["linear"], "baselines": [], "epochs": 1, "batch_size": 8},
        "evaluation": {"bootstrap": 0},
        "explain": {"methods": ["integrated_gradients", "tabular_ig"], "ig_steps": 2, "max_samples": 3},
    }
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    root = tmp_path_factory.mktemp("one")
    syn = make_synthetic_cohort(root / "cohort", n_patients=14, images_per_patient=2, size=16)
    return root, _one_config(syn, root / "cohort.yaml"), str(syn.table)


def test_one_yaml_through_every_command(one, capsys):
    root, cfg, table = one
    assert main(["validate", cfg]) == 0
    assert main(["pretrain", cfg, "--out", str(root / "pre")]) == 0
    assert main(["embed", str(root / "pre"), "--out", str(root / "emb.parquet")]) == 0
    assert main(["finetune", cfg, "--pretrained", str(root / "pre"), "--out", str(root / "ft")]) == 0
    assert "finetune --pretrained:" not in capsys.readouterr().out  # same file: nothing differs
    capsys.readouterr()
    assert main(["evaluate", str(root / "ft"), "--out", str(root / "ev")]) == 0
    assert "no --cohort given: scoring the run's test split" in capsys.readouterr().out
    splits = pd.read_csv(root / "ft" / "splits.csv", dtype=str)
    scored = pd.read_csv(root / "ev" / "predictions.csv", dtype=str)["id"]
    assert sorted(scored) == sorted(splits.loc[splits["split"] == "test", "id"])  # never a training row
    assert main(["predict", str(root / "ft"), "--out", str(root / "p.csv")]) == 0
    assert main(["explain", str(root / "ft"), "--out", str(root / "xp")]) == 0
    n = len(pd.read_csv(table))
    assert len(pd.read_parquet(root / "emb.parquet")) == n and len(pd.read_csv(root / "p.csv")) == n
    assert "auroc" in json.loads((root / "ev" / "metrics.json").read_text())
    # explain took its settings from the run's config: 3 samples, the two methods of the YAML
    assert len(pd.read_csv(root / "xp" / "tabular.csv")) == 3
    assert (root / "xp" / "tabular_tabular_ig.csv").is_file() and not (root / "xp" / "tabular_feature_ablation.csv").exists()
    # ... and an explain.* override wins over the run's value
    assert main(["explain", str(root / "ft"), "explain.max_samples=1", "--out", str(root / "xp1")]) == 0
    assert len(pd.read_csv(root / "xp1" / "tabular.csv")) == 1


def test_finetune_pretrained_says_which_value_wins(one, capsys):
    root, cfg, _ = one
    if not (root / "pre").exists():
        assert main(["pretrain", cfg, "--out", str(root / "pre")]) == 0
    capsys.readouterr()
    assert main(["finetune", cfg, "model.fusion.dim=8", "image.cache=memory", "--pretrained", str(root / "pre"),
                 "--out", str(root / "ft2")]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("finetune --pretrained:")]
    assert len(lines) == 2, lines
    dim = next(ln for ln in lines if "model.fusion.dim" in ln)
    assert "this config 8, pretrained run 16 -> 16 wins" in dim and "weights" in dim
    cache = next(ln for ln in lines if "image.cache" in ln)
    assert "-> 'memory' wins" in cache
    saved = yaml.safe_load((root / "ft2" / "config.yaml").read_text())
    assert saved["model"]["fusion"]["dim"] == 16 and saved["image"]["cache"] == "memory"
