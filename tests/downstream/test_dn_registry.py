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
