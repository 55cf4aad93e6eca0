"""The real CLI ``main(argv)``: validate, print-config, overrides, one-line errors, run-dir safety."""

from pathlib import Path

import pytest

from clinfusion.cli.main import main
from clinfusion.datasets.synthetic import make_synthetic_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_synthetic_cohort(tmp_path_factory.mktemp("syn"), n_patients=12, images_per_patient=2, size=16)


def write_config(tmp_path: Path, cohort, extra: str = "") -> Path:
    lines = ["cohort:"]
    for o in cohort.overrides:
        key, value = o.split("=", 1)
        if key.startswith("cohort."):
            lines.append(f"  {key[len('cohort.'):]}: {value}")
    lines.append("image:\n  spatial_dims: 2\n  channels: 1\n  size: [16, 16]")
    p = tmp_path / "cfg.yaml"
    p.write_text("\n".join(lines) + "\n" + extra)
    return p


SMALL_BATCH = "pretrain:\n  batch_size: 8\n"  # 12 patients: the default batch of 64 is more than the training rows


def test_validate_ok_prints_report(tmp_path, cohort, capsys):
    cfg = write_config(tmp_path, cohort, SMALL_BATCH)
    assert main(["validate", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "24" in out  # rows
    assert "marker" in out and "label" in out.lower()


def test_validate_out_never_replaces_a_file_without_overwrite_nor_the_cohort_table(tmp_path, cohort, capsys):
    """--out of an existing file needs --overwrite; the cohort table itself, or a folder, is refused
    even with it (one line each), and the table's bytes are unchanged."""
    import hashlib

    cfg = write_config(tmp_path, cohort, SMALL_BATCH)
    table = Path(cohort.table)
    before = hashlib.md5(table.read_bytes()).hexdigest()
    report = tmp_path / "report.txt"
    report.write_text("mine")
    assert main(["validate", str(cfg), "--out", str(report)]) == 2
    assert "exists: pass --overwrite" in capsys.readouterr().err and report.read_text() == "mine"
    assert main(["validate", str(cfg), "--out", str(report), "--overwrite"]) == 0
    assert "status: OK" in report.read_text()
    for out in (str(table), str(tmp_path) + "/"):
        assert main(["validate", str(cfg), "--out", out, "--overwrite"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ("is the table this command reads" in err[0] or "is a folder" in err[0]), err
    assert hashlib.md5(table.read_bytes()).hexdigest() == before


def test_validate_stops_on_the_settings_pretraining_would_stop_on(tmp_path, cohort, capsys):
    """Checked without training: the batch size against the training rows, the loss weights, a weights file."""
    cfg = write_config(tmp_path, cohort)
    assert main(["validate", str(cfg)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pretrain.batch_size=64 is larger than the training set" in err[0]
    zero = [f"pretrain.losses.{t}=0" for t in ("clip", "simclr", "scarf")]
    for extra, says in ((zero, "pretrain.losses: every weight is 0"),
                        ([f"model.image_encoder.weights={tmp_path / 'none.safetensors'}"], "none.safetensors' not found")):
        assert main(["validate", str(cfg), "pretrain.batch_size=8", *extra]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0]


def test_misspelled_key_suggests_and_exits_2(tmp_path, cohort, capsys):
    cfg = write_config(tmp_path, cohort, "pretrain:\n  epcohs: 2\n")
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pretrain.epcohs" in err[0] and "did you mean 'pretrain.epochs'" in err[0]


def test_print_config_shows_overrides_without_running(tmp_path, cohort, capsys):
    cfg = write_config(tmp_path, cohort)
    out_dir = tmp_path / "never"
    assert main(["pretrain", str(cfg), "pretrain.epochs=3", "--out", str(out_dir), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 3" in out
    assert not out_dir.exists()


def test_validate_missing_table_one_line(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("cohort:\n  table: nowhere.csv\n")
    assert main(["validate", str(p)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert "nowhere.csv" in err[0]


def test_yaml_not_mapping_via_cli(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("just a string\n")
    assert main(["validate", str(p)]) == 2
    assert "must be a YAML mapping" in capsys.readouterr().err


def test_pretrain_refuses_existing_run_dir(tmp_path, cohort, capsys):
    cfg = write_config(tmp_path, cohort)
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("user file")
    assert main(["pretrain", str(cfg), "--out", str(out_dir)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out_dir / "keep.txt").read_text() == "user file"


def test_evaluate_on_missing_run_dir(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err


def test_overrides_are_taken_after_options_too(tmp_path, cohort, capsys):
    """The README's `pretrain CFG --out DIR key=value` order works; a stray word is still a usage error."""
    cfg = write_config(tmp_path, cohort)
    out_dir = tmp_path / "never"
    assert main(["pretrain", str(cfg), "pretrain.lr=0.002", "--out", str(out_dir), "pretrain.epochs=3",
                 "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 3" in out and "lr: 0.002" in out and not out_dir.exists()
    with pytest.raises(SystemExit) as e:
        main(["pretrain", str(cfg), "--out", str(out_dir), "--bogus", "stray"])
    assert e.value.code == 2 and "unrecognized arguments: --bogus stray" in capsys.readouterr().err


def test_overrides_after_a_list_option_are_overrides_not_its_values():
    """`explain RUN --ids a b explain.max_samples=1`: --ids takes a and b; the override stays one."""
    from clinfusion.cli.main import build_parser, parse

    args = parse(build_parser(), ["explain", "run", "--out", "x", "--ids", "a", "b,c", "explain.max_samples=1",
                                  "--methods", "occlusion", "explain.ig_steps=4"])
    assert args.ids == ["a", "b,c"] and args.methods == ["occlusion"]
    assert args.overrides == ["explain.max_samples=1", "explain.ig_steps=4"]
    args = parse(build_parser(), ["explain", "run", "--out", "x", "--ids", "explain.ig_steps=4"])
    assert args.ids is None and args.overrides == ["explain.ig_steps=4"]


def test_config_errors_name_every_bad_key(tmp_path, cohort, capsys):
    cfg = write_config(tmp_path, cohort, "pretrain:\n  epochs: -1\n  lr: fast\n")
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pretrain.epochs" in err[0] and "(also: pretrain.lr)" in err[0]


def test_validate_names_the_positive_class(tmp_path, cohort, capsys):
    cfg = write_config(tmp_path, cohort, SMALL_BATCH)
    assert main(["validate", str(cfg)]) == 0
    assert "positive class: '1'" in capsys.readouterr().out
    assert main(["validate", str(cfg), "cohort.positive_label=0"]) == 0
    assert "positive class: '0'" in capsys.readouterr().out


def test_no_codec_chatter_and_warnings_in_one_line(capfd):
    """MONAI's GPU DICOM codec probe stays quiet once clinfusion is imported (CLI or API); the CLI shows
    Python warnings as one `warning:` line."""
    import warnings

    import clinfusion  # noqa: F401
    from clinfusion.cli.main import one_line_warning
    from monai.data import nvimgcodec_pydicom_plugin as plugin

    plugin.register_as_decoder_plugin()
    assert "nvImageCodec" not in capfd.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = one_line_warning
        warnings.warn("multi-label metrics skip label(s) with one class", UserWarning)
    assert capfd.readouterr().err == "warning: multi-label metrics skip label(s) with one class\n"


def test_evaluate_headline_gives_the_row_count_as_a_whole_number():
    """metrics.json read back gives ``n`` as 184.0; the headline says ``n 184``."""
    from clinfusion.cli.commands.evaluate import headline

    line = headline({"auroc": 0.8123, "auroc_ci_low": 0.74, "auroc_ci_high": 0.88, "n": 184.0})
    assert line == "AUROC 0.812 [0.740, 0.880]; n 184"
