"""Fine-tuning from a real (tiny, 1-epoch) pretrained run reuses its preprocessing and encoder."""

import json

import pandas as pd
import pytest
import torch

from clinfusion.errors import ConfigError


def test_finetune_from_pretrained_run(dn_cfg, synth, tmp_path, capsys):
    from clinfusion.downstream.finetune import run_finetune
    from clinfusion.downstream.inference import load_finetuned
    from clinfusion.models.io import load_pretrained
    from clinfusion.training.pretrain import run_pretrain

    pre_cfg = dn_cfg("pretrain.epochs=1", "pretrain.batch_size=16", "pretrain.progress=false",
                     "pretrain.num_workers=0", "pretrain.persistent_workers=false", "pretrain.pin_memory=false")
    pre_dir = run_pretrain(pre_cfg, tmp_path / "pre")
    cfg = dn_cfg("finetune.heads=[linear, lightgbm]", "finetune.baselines=[tabular_lgbm]",
                 "evaluation.bootstrap=10", "model.fusion.dim=8")  # fusion.dim comes from the pretrained run
    run_dir = run_finetune(cfg, str(pre_dir), tmp_path / "ft", show=False)
    assert json.loads((run_dir / "preprocessing.json").read_text()) == \
        json.loads((pre_dir / "preprocessing.json").read_text())
    meta = json.loads((run_dir / "classifier" / "meta.json").read_text())
    assert meta["pretrained"] == str(pre_dir)
    run = load_finetuned(run_dir, head="linear")
    assert run.cfg.model.fusion.dim == 16
    _, _, pretrained = load_pretrained(pre_dir)
    # the linear probe keeps the pretrained encoder unchanged
    ref = pretrained.state_dict()
    got = run.classifier.model.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    comp = pd.read_csv(run_dir / "comparison.csv")
    # the head with the best validation AUROC is the run's primary model and leads the comparison
    heads = comp[comp["kind"] == "head"]
    best = heads["val_auroc"].max()
    chosen = [m for m in ["linear", "lightgbm"] if heads.set_index("model").loc[m, "val_auroc"] == best][0]
    assert meta["primary"] == chosen and load_finetuned(run_dir).head == chosen
    assert list(comp["model"]) == [chosen] + [m for m in ["linear", "lightgbm", "tabular_lgbm"] if m != chosen]
    assert list(comp["selected"]) == [True, False, False]
    # a column the pretrained run never saw is read by no model here, and finetune says so
    frame = pd.read_csv(synth.table)
    frame["image"] = [str(synth.table.parent / p) for p in frame["image"]]
    frame["new_marker"] = range(len(frame))
    frame.to_csv(tmp_path / "more.csv", index=False)
    capsys.readouterr()
    run_finetune(dn_cfg(f"cohort.table={tmp_path / 'more.csv'}", "finetune.heads=[linear]", "finetune.baselines=[]",
                        "evaluation.bootstrap=0"), str(pre_dir), tmp_path / "ft_more", show=True)
    assert "finetune: column(s) 'new_marker' of" in capsys.readouterr().out
    assert "new_marker" not in (tmp_path / "ft_more" / "preprocessing.json").read_text()
    # a 3D config on this 2D pretrained run: one line before any image is read, and no run folder
    with pytest.raises(ConfigError, match=r"image.spatial_dims: this config has 3, but the pretrained run .* was "
                                          r"trained on 2D images .* pretrain on this cohort's 3D images first"):
        run_finetune(dn_cfg("image.spatial_dims=3", "image.size=[16,16,16]"), str(pre_dir), tmp_path / "ft3", show=False)
    assert not (tmp_path / "ft3").exists()
    # the two kinds of run folder swapped: each command names the kind it got and the folder to pass
    from clinfusion.errors import RunDirError
    from clinfusion.explain.run import load_run
    from clinfusion.training.embed import run_embed

    fine_for_pre = f"it is a fine-tuned run: pass the pretrained run it started from, '{pre_dir}'"
    with pytest.raises(RunDirError, match=fine_for_pre):
        run_embed(run_dir, None, tmp_path / "emb.parquet")
    with pytest.raises(RunDirError, match=fine_for_pre):
        run_finetune(cfg, str(run_dir), tmp_path / "ft2", show=False)
    pre_for_fine = f"it is a pretrained run: pass the folder `clinfusion finetune CONFIG --pretrained {pre_dir} --out"
    with pytest.raises(RunDirError, match=pre_for_fine.replace("(", r"\(")):
        load_finetuned(pre_dir)
    with pytest.raises(RunDirError, match=r"has no fine-tuned classifier .*it is a pretrained run"):
        load_run(pre_dir)
    assert not (tmp_path / "emb.parquet").exists() and not (tmp_path / "ft2").exists()
