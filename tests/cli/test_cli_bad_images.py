"""``cohort.on_bad_image`` through EVERY command (the one data path, datasets/builder.py).

A synthetic cohort gets one truncated PNG and one deleted PNG. Under ``skip`` every
command runs, drops exactly those rows and writes ``skipped_images.csv`` (id, path,
reason); under ``error`` (the default) every command stops with one line naming the first
bad file and how many more, before anything is trained or written.
"""

import shutil

import pandas as pd
import pytest
import yaml

from clinfusion.cli.main import main
from clinfusion.datasets.synthetic import make_synthetic_cohort

TINY = [
    "model.image_encoder.name=cnn_tiny", "model.tabular_encoder.hidden_size=16",
    "model.tabular_encoder.num_layers=1", "model.tabular_encoder.num_heads=2",
    "model.tabular_encoder.intermediate_size=32", "model.fusion.dim=16", "model.projection_dim=16",
    "pretrain.epochs=1", "pretrain.batch_size=8", "pretrain.progress=false",
    "finetune.heads=[linear]", "finetune.baselines=[]", "finetune.epochs=1", "finetune.batch_size=8",
    "evaluation.bootstrap=0", "explain.methods=[integrated_gradients, tabular_ig]", "explain.ig_steps=2",
    "explain.max_samples=2",
]


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    root = tmp_path_factory.mktemp("badimg")
    syn = make_synthetic_cohort(root / "cohort", n_patients=14, images_per_patient=2, size=16)
    frame = pd.read_csv(syn.table)
    truncated = (root / "cohort" / frame.loc[3, "image"]).resolve()
    truncated.write_bytes(truncated.read_bytes()[:40])  # a PNG cut off after its header
    missing = (root / "cohort" / frame.loc[10, "image"]).resolve()
    missing.unlink()
    cfg = root / "cfg.yaml"
    cfg.write_text("seed: 0\n")
    expected = {frame.loc[3, "id"]: str(truncated), frame.loc[10, "id"]: str(missing)}
    return {"root": root, "syn": syn, "cfg": cfg, "args": [*syn.overrides, *TINY], "expected": expected,
            "first": str(truncated)}


def _skipped(path):
    frame = pd.read_csv(path, dtype=str)
    assert list(frame.columns) == ["id", "path", "reason"]
    assert frame["reason"].str.len().min() > 10  # a reason, not an empty cell
    return dict(zip(frame["id"], frame["path"]))


def _one_line_error(capsys, first):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert first in err and "and 1 more image(s)" in err and "on_bad_image=skip" in err
    return err


@pytest.fixture(scope="module")
def skip_runs(bad):
    root, args = bad["root"], [*bad["args"], "cohort.on_bad_image=skip"]
    assert main(["pretrain", str(bad["cfg"]), *args, "--out", str(root / "pre")]) == 0
    assert main(["finetune", str(bad["cfg"]), *args, "--pretrained", str(root / "pre"),
                 "--out", str(root / "ft")]) == 0
    return root


def test_skip_through_every_command(bad, skip_runs, capsys):
    root, table, expected = skip_runs, str(bad["syn"].table), bad["expected"]
    n_rows = len(pd.read_csv(table))
    assert main(["validate", str(bad["cfg"]), *bad["args"], "cohort.on_bad_image=skip"]) == 0
    assert "2 row(s) will be skipped" in capsys.readouterr().out
    for run in ("pre", "ft"):
        assert _skipped(root / run / "skipped_images.csv") == expected
        split_ids = set(pd.read_csv(root / run / "splits.csv", dtype=str)["id"])
        assert not split_ids & set(expected) and len(split_ids) == n_rows - 2  # dropped before anything trained
    assert main(["embed", str(root / "pre"), "--cohort", table, "--out", str(root / "emb.parquet")]) == 0
    assert len(pd.read_parquet(root / "emb.parquet")) == n_rows - 2
    assert _skipped(root / "emb_skipped_images.csv") == expected
    assert main(["evaluate", str(root / "ft"), "--cohort", table, "--out", str(root / "ev")]) == 0
    assert _skipped(root / "ev" / "skipped_images.csv") == expected
    assert not set(pd.read_csv(root / "ev" / "predictions.csv", dtype=str)["id"]) & set(expected)
    assert main(["predict", str(root / "ft"), "--cohort", table, "--out", str(root / "p.csv")]) == 0
    assert len(pd.read_csv(root / "p.csv")) == n_rows - 2
    assert _skipped(root / "p_skipped_images.csv") == expected
    assert main(["explain", str(root / "ft"), "--cohort", table, "--out", str(root / "xp")]) == 0
    assert _skipped(root / "xp" / "skipped_images.csv") == expected
    assert "skipped 2 row(s)" in capsys.readouterr().out


def _as_error_run(src, dst):
    """A copy of a run whose stored config has the default cohort.on_bad_image=error."""
    shutil.copytree(src, dst)
    cfg = yaml.safe_load((dst / "config.yaml").read_text())
    cfg["cohort"]["on_bad_image"] = "error"
    (dst / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dst


def test_error_stops_every_command_in_one_line(bad, skip_runs, capsys):
    root, table, first = bad["root"], str(bad["syn"].table), bad["first"]
    capsys.readouterr()
    assert main(["validate", str(bad["cfg"]), *bad["args"]]) == 1
    assert first in capsys.readouterr().err
    for cmd, extra in (("pretrain", []), ("finetune", ["--pretrained", str(skip_runs / "pre")])):
        out = root / f"err_{cmd}"
        assert main([cmd, str(bad["cfg"]), *bad["args"], *extra, "--out", str(out)]) == 2
        _one_line_error(capsys, first)
        assert not out.exists()  # stopped before any training (no run folder, no checkpoint)
    pre, ft = _as_error_run(skip_runs / "pre", root / "pre_err"), _as_error_run(skip_runs / "ft", root / "ft_err")
    for argv, out in ((["embed", str(pre)], root / "e.parquet"), (["evaluate", str(ft)], root / "ev_err"),
                      (["predict", str(ft)], root / "p_err.csv"), (["explain", str(ft)], root / "xp_err")):
        assert main([*argv, "--cohort", table, "--out", str(out)]) == 2, argv[0]
        _one_line_error(capsys, first)
        assert not out.exists(), argv[0]
