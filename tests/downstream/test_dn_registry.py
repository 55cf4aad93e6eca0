"""One registry of heads and baselines with a kind; config names checked against it."""

import pytest

from clinfusion.config import load_config
from clinfusion.errors import ConfigError


def test_unknown_or_wrong_kind_name_is_one_line_listing_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["finetune.heads=[linear, lineer]"])
    msg = str(err.value)
    assert "\n" not in msg and "'finetune.heads' got 'lineer'" in msg and "did you mean 'linear'" in msg
    assert "linear_concat" in msg and "tabular_lgbm" not in msg  # the heads only
    with pytest.raises(ConfigError, match="'finetune.heads' got 'tabular_lgbm': not a registered fine-tuning head"):
        load_config(None, ["finetune.heads=[tabular_lgbm]"])  # a baseline is not a head
    with pytest.raises(ConfigError, match="'finetune.baselines' got 'full'"):
        load_config(None, ["finetune.baselines=[full]"])


def test_a_user_registered_head_is_accepted():
    from clinfusion.downstream.models import HEADS, MODELS, register_model

    @register_model("my_head", "head")
    def my_head(ctx):  # a plug-in: fit(ctx) -> Predictor
        raise NotImplementedError

    try:
        cfg = load_config(None, ["finetune.heads=[my_head, linear]"])
        assert cfg.finetune.heads == ["my_head", "linear"] and "my_head" in HEADS
    finally:
        MODELS._items.pop("my_head")
    with pytest.raises(ValueError, match="kind must be one of"):
        register_model("x", "probe")
    with pytest.raises(ValueError, match="reads must be a non-empty subset"):
        register_model("x", "head", reads=("genes",))


def test_models_that_read_only_an_input_the_cohort_lacks_are_skipped(synth, tmp_path, capsys):
    """No image in any row: linear_image and image_only would be constant predictors (validation
    AUROC 0.5 exactly, enough to be chosen when the real heads score below 0.5 on a small
    validation set); they are skipped with one line. Only such heads left: one-line ConfigError."""
    from clinfusion.cli.main import main
    from clinfusion.downstream.finetune import run_finetune
    from tests.downstream.conftest import make_cfg

    cfg = make_cfg(synth, "cohort.image_column=null", "finetune.heads=[linear_image, linear]",
                   "finetune.baselines=[image_only, tabular_lgbm]", "finetune.label_fractions=[1.0]")
    run = run_finetune(cfg, None, tmp_path / "ft", show=True)
    out = capsys.readouterr().out
    assert "finetune: skipping linear_image, image_only: no row of" in out and "has an image" in out
    import pandas as pd

    assert list(pd.read_csv(run / "comparison.csv")["model"]) == ["linear", "tabular_lgbm"]
    assert load_config(run / "config.yaml").finetune.heads == ["linear"]  # the run says what it ran
    assert cfg.finetune.heads == ["linear_image", "linear"]  # the caller's config is untouched
    with pytest.raises(ConfigError, match="linear_image read.s. only inputs no row of .* has .no row has an image."):
        run_finetune(make_cfg(synth, "cohort.image_column=null", "finetune.heads=[linear_image]"), None,
                     tmp_path / "ft2", show=False)
    assert not (tmp_path / "ft2").exists()  # stopped before any run folder was made
    from clinfusion.config import save_config

    save_config(cfg, tmp_path / "cfg.yaml")  # the same through the CLI: exit 2, one line on stderr
    assert main(["finetune", str(tmp_path / "cfg.yaml"), "finetune.heads=[linear_image]", "--out",
                 str(tmp_path / "ft3")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no row has an image" in err[0]


def test_validate_warns_of_the_heads_finetune_would_skip(synth, tmp_path, capsys):
    """`clinfusion validate` says before any training what finetune would skip (and when it would
    stop), as warnings: the same cohort still pretrains (exit 0)."""
    from clinfusion.cli.main import main
    from clinfusion.config import save_config
    from tests.downstream.conftest import make_cfg

    cfg = make_cfg(synth, "cohort.image_column=null", "finetune.heads=[linear_image, linear]",
                   "finetune.baselines=[image_only, tabular_lgbm]", "pretrain.batch_size=8")
    save_config(cfg, tmp_path / "cfg.yaml")
    assert main(["validate", str(tmp_path / "cfg.yaml")]) == 0
    out = capsys.readouterr().out
    assert "finetune: skipping linear_image, image_only: no row of" in out
    assert main(["validate", str(tmp_path / "cfg.yaml"), "finetune.heads=[linear_image]"]) == 0
    out = capsys.readouterr().out
    assert "finetune would stop: finetune.heads: linear_image read(s) only inputs" in out
    assert main(["validate", str(tmp_path / "cfg.yaml"), "cohort.image_column=image"]) == 0
    assert "skipping" not in capsys.readouterr().out  # images present: nothing skipped
