"""Component names are checked against the live registries: a user's plug-in is accepted,
an unknown name is one line naming the key and the registered names."""

import pytest

from clinfusion.cli.main import main
from clinfusion.config import load_config
from clinfusion.errors import ConfigError
from clinfusion.fusion import FUSIONS
from clinfusion.fusion.concat import ConcatFusion


def test_unknown_fusion_and_encoder_names_one_line():
    with pytest.raises(ConfigError, match=r"'model.fusion.name' got 'gatd'.*did you mean 'gated'.*concat, "
                                          r"cross_attention, gated"):
        load_config(None, ["model.fusion.name=gatd"])
    with pytest.raises(ConfigError, match=r"'model.image_encoder.name' got 'resnet99'.*resnet18"):
        load_config(None, ["model.image_encoder.name=resnet99"])


def test_a_registered_plugin_fusion_is_accepted_and_built(tmp_path, capsys, monkeypatch):
    name = "test_plugin_concat"
    monkeypatch.setattr(FUSIONS, "_items", dict(FUSIONS._items))  # the registry is restored after the test
    FUSIONS.register(name)(ConcatFusion)  # what a user's package does on import
    cfg = load_config(None, [f"model.fusion.name={name}"])
    assert cfg.model.fusion.name == name
    from clinfusion.fusion import create_fusion

    fusion = create_fusion(cfg.model.fusion, 8, 6)
    assert isinstance(fusion, ConcatFusion)
    (tmp_path / "c.yaml").write_text("seed: 0\n")
    assert main(["pretrain", str(tmp_path / "c.yaml"), f"model.fusion.name={name}", "--print-config"]) == 0
    assert f"name: {name}" in capsys.readouterr().out
