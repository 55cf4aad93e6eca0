"""Run directories: never clobbered silently."""

from __future__ import annotations

import pytest

from clinfusion.errors import RunDirError
from clinfusion.training.rundir import prepare_run_dir


def test_new_and_empty_folders_are_used(tmp_path):
    assert prepare_run_dir(tmp_path / "a" / "b", overwrite=False).is_dir()
    (tmp_path / "empty").mkdir()
    assert prepare_run_dir(tmp_path / "empty", overwrite=False) == tmp_path / "empty"


def test_existing_run_needs_a_flag(tmp_path):
    run = prepare_run_dir(tmp_path / "run", overwrite=False)
    (run / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(RunDirError) as err:
        prepare_run_dir(run, overwrite=False)
    assert str(err.value) == (f"run directory {str(run)!r} exists: pass --overwrite to replace it or --resume to continue")
    assert (run / "config.yaml").is_file()  # untouched
    with pytest.raises(RunDirError) as err:  # a command without --resume (evaluate) does not offer it
        prepare_run_dir(run, overwrite=False, resumable=False)
    assert "--resume" not in str(err.value) and "pass --overwrite to replace it or choose another --out" in str(err.value)
    assert prepare_run_dir(run, overwrite=False, resume=True) == run and (run / "config.yaml").is_file()
    assert prepare_run_dir(run, overwrite=True) == run and [f.name for f in run.iterdir()] == [".clinfusion-run"]


def test_overwrite_accepts_any_folder_it_created(tmp_path):
    out = prepare_run_dir(tmp_path / "eval", overwrite=False)
    (out / "metrics.json").write_text("{}")  # e.g. an evaluate output: no config.yaml
    assert prepare_run_dir(out, overwrite=True) == out and not (out / "metrics.json").exists()


def test_overwrite_refuses_foreign_folders_and_both_flags(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not a clinfusion run"):
        prepare_run_dir(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(RunDirError, match="either --overwrite or --resume"):
        prepare_run_dir(tmp_path / "x", overwrite=True, resume=True)
    with pytest.raises(RunDirError, match="is a file"):
        prepare_run_dir(tmp_path / "notes.txt", overwrite=False)


def test_overwrite_never_deletes_a_user_folder_that_merely_has_a_config(tmp_path):
    (tmp_path / "config.yaml").write_text("cohort: {}\n")  # e.g. a project folder passed as --out
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(RunDirError, match="not a clinfusion run"):
        prepare_run_dir(tmp_path, overwrite=True)
    assert (tmp_path / "data.csv").is_file() and (tmp_path / "config.yaml").is_file()


def test_check_run_dir_says_what_prepare_would_do_and_touches_nothing(tmp_path):
    from clinfusion.training.rundir import check_run_dir

    new = tmp_path / "new"
    assert check_run_dir(new, overwrite=False) == "new" and not new.exists()
    run = prepare_run_dir(tmp_path / "run", overwrite=False)
    (run / "metrics.csv").write_text("x")
    assert check_run_dir(run, overwrite=False, resume=True) == "resume"
    assert check_run_dir(run, overwrite=True) == "overwrite" and (run / "metrics.csv").read_text() == "x"
    with pytest.raises(RunDirError, match="exists: pass --overwrite to replace it or --resume to continue"):
        check_run_dir(run, overwrite=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(RunDirError, match="is not a clinfusion run"):
        check_run_dir(mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep"


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    """A config/data problem found after the folder was made: the corrected command must not need --overwrite."""
    from clinfusion.errors import ConfigError
    from clinfusion.training.rundir import discard_if_unresumable

    run = prepare_run_dir(tmp_path / "run", overwrite=False)
    with pytest.raises(ConfigError), discard_if_unresumable(run):
        (run / "config.yaml").write_text("seed: 0\n")
        raise ConfigError("pretrain.losses: every weight is 0")
    assert not run.exists()
    for keep, ckpt, exc in ((True, False, ConfigError), (False, True, ConfigError), (False, False, KeyboardInterrupt)):
        run = prepare_run_dir(tmp_path / f"run_{keep}_{ckpt}_{exc.__name__}", overwrite=False)
        if ckpt:  # a finished checkpoint: --resume can continue from it
            (run / "checkpoints" / "last").mkdir(parents=True)
            (run / "checkpoints" / "last" / "model.safetensors").write_bytes(b"x")
        with pytest.raises(exc), discard_if_unresumable(run, keep=keep):
            raise exc("stop")
        assert run.is_dir()  # --resume, a checkpoint, or an interruption (not a ClinfusionError): kept
