"""run_explain on a real fine-tuned run (synthetic cohort, tiny models, no pretraining)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from clinfusion.errors import ConfigError, DataError, RunDirError
from clinfusion.explain.run import run_explain

TINY = [
    "model.image_encoder.name=cnn_tiny", "model.image_encoder.width=4",
    "model.tabular_encoder.hidden_size=8", "model.tabular_encoder.num_layers=1",
    "model.tabular_encoder.num_heads=2", "model.tabular_encoder.intermediate_size=16",
    "model.fusion.dim=8", "model.projection_dim=8",
    "finetune.epochs=1", "finetune.batch_size=16", "finetune.mlp_hidden=8",
    "finetune.heads=[lightgbm, full]", "finetune.baselines=[]", "finetune.label_fractions=[1.0]",
    "finetune.lightgbm.n_estimators=10", "finetune.lightgbm.min_child_samples=3", "finetune.lightgbm.num_threads=1",
    "split.val_fraction=0.25", "split.test_fraction=0.3", "evaluation.bootstrap=0",
    "explain.ig_steps=4", "explain.faithfulness_steps=3", "explain.max_samples=3", "explain.batch_size=2",
    "device=cpu",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A fine-tuned run whose primary head is LightGBM (+ a neural 'full' head), and variants of it."""
    from clinfusion.config import load_config
    from clinfusion.datasets.synthetic import make_synthetic_cohort
    from clinfusion.downstream.finetune import run_finetune

    root = tmp_path_factory.mktemp("xp_e2e")
    synth = make_synthetic_cohort(root / "cohort", n_patients=16, images_per_patient=2, size=16, seed=2,
                                  missing_value_rate=0.15)
    cfg = load_config(None, list(synth.overrides) + TINY)
    lgbm = run_finetune(cfg, None, root / "ft", show=False)
    meta = json.loads((lgbm / "classifier" / "meta.json").read_text())
    meta["primary"] = "lightgbm"  # finetune picks the primary head on validation; these tests need LightGBM
    (lgbm / "classifier" / "meta.json").write_text(json.dumps(meta))
    neural = root / "ft_full"
    shutil.copytree(lgbm, neural)
    (neural / "classifier" / "meta.json").write_text(json.dumps(dict(meta, primary="full")))
    only = root / "ft_lgbm_only"
    shutil.copytree(lgbm, only)
    (only / "classifier" / "meta.json").write_text(json.dumps(dict(meta, heads=["lightgbm"])))
    return {"lgbm": lgbm, "neural": neural, "only": only, "root": root, "synth": synth}


def test_neural_head_outputs(runs, tmp_path):
    out = run_explain(runs["neural"], None, tmp_path / "xp")
    splits = pd.read_csv(runs["neural"] / "splits.csv", dtype=str)
    expected = splits.loc[splits["split"] == "test", "id"].tolist()[:3]
    tab = pd.read_csv(out / "tabular.csv")
    assert list(tab["id"]) == expected
    assert {"marker", "age", "sex", "site", "marker__missing"} <= set(tab.columns)
    cohort = pd.read_csv(runs["synth"].table).set_index("id")
    for _, row in tab.iterrows():  # a value missing in the input is reported as missing
        assert np.isnan(row["marker"]) == bool(row["marker__missing"]) == bool(pd.isna(cohort.loc[row["id"], "marker"]))
    for sid in expected:
        assert np.load(out / "maps" / f"{sid}.npy").shape == (16, 16)
        assert np.load(out / "maps" / f"{sid}_original.npy").shape == (16, 16)
        assert (out / "overlays" / f"{sid}.png").exists() and (out / "maps" / f"{sid}__gradcam.npy").exists()
    share = pd.read_csv(out / "modality_share.csv")
    assert list(share["id"]) == expected
    faith = json.loads((out / "faithfulness.json").read_text())
    assert {"image/integrated_gradients", "image/occlusion", "image/gradcam", "table",
            "model_randomization"} <= set(faith)
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) == {"integrated_gradients", "occlusion", "gradcam", "tabular_ig", "feature_ablation"}
    assert "report.html" in {p.name for p in out.iterdir()}
    for name in ("global_features.csv", "global_features.png", "modality_summary.json", "tabular_feature_ablation.csv"):
        assert (out / name).exists(), name


def test_lightgbm_head_uses_treeshap_and_neural_maps(runs, tmp_path):
    out = run_explain(runs["lgbm"], None, tmp_path / "xp", ids=None, methods=["integrated_gradients", "tabular_ig"])
    tab = pd.read_csv(out / "tabular.csv")
    assert "fused_embedding" in tab.columns and "marker" in tab.columns
    html = (out / "report.html").read_text()
    assert "TreeSHAP" in html and "image maps come from the run&#x27;s neural head" in html
    assert len(list((out / "maps").glob("*.npy"))) >= 3


def test_lightgbm_only_states_maps_unavailable(runs, tmp_path):
    sid = pd.read_csv(runs["synth"].table)["id"][0]
    out = run_explain(runs["only"], None, tmp_path / "xp", ids=[sid])
    assert "image maps are unavailable: no saved neural head reads the image" in (out / "report.html").read_text()
    assert not (out / "maps").exists()
    assert list(pd.read_csv(out / "tabular.csv")["id"]) == [sid]


def test_bad_inputs(runs, tmp_path):
    with pytest.raises(DataError, match=r"sample id\(s\) 'nope' are not in the cohort"):
        run_explain(runs["neural"], None, tmp_path / "a", ids=["nope"])
    with pytest.raises(ConfigError, match="unknown explain method.*'shap'.*valid methods are"):
        run_explain(runs["neural"], None, tmp_path / "b", methods=["shap"])
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.txt").write_text("keep")
    with pytest.raises(RunDirError, match="already exists: pass --overwrite"):
        run_explain(runs["neural"], None, tmp_path / "c")
    assert (tmp_path / "c" / "x.txt").read_text() == "keep"
    bad = tmp_path / "badlayer"
    shutil.copytree(runs["neural"], bad)
    conf = yaml.safe_load((bad / "config.yaml").read_text())
    conf.setdefault("explain", {})["gradcam_layer"] = "layer9"
    (bad / "config.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(ConfigError, match="explain.gradcam_layer='layer9' is not a layer.*features.2"):
        run_explain(bad, None, tmp_path / "d")
    with pytest.raises(ConfigError, match="explain.gradcam_layer='nope' is not a layer"):
        run_explain(runs["neural"], None, tmp_path / "e", overrides=["explain.gradcam_layer=nope"])
    with pytest.raises(ConfigError, match=r"override\(s\) 'seed=3' cannot change a fine-tuned run"):
        run_explain(runs["neural"], None, tmp_path / "f", overrides=["seed=3"])


def test_cli_explain(runs, tmp_path, capsys):
    from clinfusion.cli.main import main

    sid = pd.read_csv(runs["synth"].table)["id"][1]
    rc = main(["explain", str(runs["neural"]), "--out", str(tmp_path / "cli"), "--ids", sid,
               "--methods", "gradcam", "tabular_ig"])
    assert rc == 0 and (tmp_path / "cli" / "report.html").exists()
    assert list(pd.read_csv(tmp_path / "cli" / "tabular.csv")["id"]) == [sid]
    assert main(["explain", str(runs["neural"]), "--out", str(tmp_path / "cli2"), "--ids", "missing_id"]) == 2
    assert "'missing_id' are not in the cohort" in capsys.readouterr().err
    assert main(["explain", str(runs["lgbm"]), "--out", str(tmp_path / "cli3"), "--ids", sid,
                 "--methods", "tabular_ig"]) == 0
    assert "note: the explained head is LightGBM" in capsys.readouterr().out  # explained.json's notes, printed


def test_3d_run_writes_nifti_with_original_affine(tmp_path):
    import nibabel as nib

    from clinfusion.config import load_config
    from clinfusion.datasets.synthetic import make_synthetic_cohort
    from clinfusion.downstream.finetune import run_finetune

    synth = make_synthetic_cohort(tmp_path / "c3", n_patients=10, images_per_patient=2, spatial_dims=3, size=8, seed=1)
    cfg = load_config(None, list(synth.overrides) + TINY + ["finetune.heads=[linear]"])
    run = run_finetune(cfg, None, tmp_path / "ft3", show=False)
    sid = pd.read_csv(synth.table)["id"][0]
    out = run_explain(run, None, tmp_path / "xp3", ids=[sid], methods=["gradcam", "integrated_gradients"])
    nii = nib.load(str(out / "maps" / f"{sid}.nii.gz"))
    src = nib.load(str(synth.table.parent / "images" / f"{sid}.nii.gz"))
    np.testing.assert_allclose(nii.affine, src.affine)
    assert nii.shape == src.shape == (8, 8, 8)
    assert np.load(out / "maps" / f"{sid}.npy").shape == (8, 8, 8)
    assert (out / "overlays" / f"{sid}.png").exists()


def test_lightgbm_head_on_genomic_run_attributes_omics_groups(tmp_path):
    """A LightGBM head sees genes only through the fused embedding, so TreeSHAP lumps them into
    ``fused_embedding``; feature_ablation runs through encoder and trees and names each omics
    group. Each value equals the drop in the head's log-odds when that group is set missing,
    recomputed here by masking the batch by hand."""
    from clinfusion.config import load_config
    from clinfusion.datasets.synthetic import make_synthetic_cohort
    from clinfusion.downstream.finetune import run_finetune
    from clinfusion.downstream.inference import load_finetuned, prepare_external

    synth = make_synthetic_cohort(tmp_path / "cg", n_patients=16, images_per_patient=2, size=16, seed=3,
                                  omics_columns=6)
    cfg = load_config(None, list(synth.overrides) + TINY + ["finetune.heads=[lightgbm]", "explain.batch_size=8",
                                                            "model.tabular_encoder.omics_chunk_size=3",
                                                            # trees on the embedding alone, more rows explained:
                                                            # the guard below must not hinge on one split
                                                            "finetune.lightgbm.with_raw_features=false",
                                                            "explain.max_samples=8"])
    run_dir = run_finetune(cfg, None, tmp_path / "ft", show=False)
    out = run_explain(run_dir, None, tmp_path / "xp", methods=["feature_ablation"])
    tab = pd.read_csv(out / "tabular.csv")
    groups = [c for c in tab.columns if c.startswith("omics") and not c.endswith("__missing")]
    assert len(groups) == 2, tab.columns
    assert "fused_embedding" in pd.read_csv(out / "tabular_treeshap.csv").columns
    assert json.loads((out / "explained.json").read_text())["tabular_method"] == "feature_ablation"

    run = load_finetuned(run_dir)
    data = prepare_external(run, None, labelled=False).data
    index = {i: k for k, i in enumerate(data.ids)}
    batch, _ = next(iter(data.batches(np.asarray([index[str(i)] for i in tab["id"]]))))
    p = run.predict_proba(batch)[:, 0]
    for j, name in enumerate(groups):
        masked = dict(batch, omics=batch["omics"].clone(), omics_missing=batch["omics_missing"].clone())
        genes = slice(3 * j, 3 * j + 3)
        masked["omics"][:, genes], masked["omics_missing"][:, genes] = 0.0, True
        q = run.predict_proba(masked)[:, 0]
        expected = np.log(p / (1 - p)) - np.log(q / (1 - q))
        np.testing.assert_allclose(tab[name], expected, atol=1e-4, err_msg=name)
    assert np.abs(tab[groups].to_numpy()).max() > 1e-3  # the genes do move this head: not 0 == 0


def test_one_input_heads_skip_the_other_inputs_methods(tmp_path):
    """A probe on one input's embedding is explained by that input's methods only: no gradient
    reaches the other input (captum raised on it before), and the note says why. A LightGBM head's
    image maps come through a saved head on the fused embedding (what its trees read), never
    through one that ignores the image."""
    from clinfusion.config import load_config
    from clinfusion.datasets.synthetic import make_synthetic_cohort
    from clinfusion.downstream.finetune import run_finetune
    from clinfusion.explain.run import load_run

    synth = make_synthetic_cohort(tmp_path / "c", n_patients=16, images_per_patient=2, size=16, seed=2)
    cfg = load_config(None, list(synth.overrides) + TINY
                      + ["finetune.heads=[lightgbm, linear_table, linear_image, linear]"])
    base = run_finetune(cfg, None, tmp_path / "ft", show=False)
    meta = json.loads((base / "classifier" / "meta.json").read_text())

    def with_primary(head):
        run = tmp_path / f"ft_{head}"
        shutil.copytree(base, run)
        (run / "classifier" / "meta.json").write_text(json.dumps(dict(meta, primary=head)))
        return run

    out = run_explain(with_primary("linear_table"), None, tmp_path / "x_table")
    info = json.loads((out / "explained.json").read_text())
    assert info["head"] == "linear_table" and info["image_methods"] == [] and not (out / "maps").exists()
    assert any("does not depend on the image" in n for n in info["notes"])
    assert np.abs(pd.read_csv(out / "tabular.csv")[["marker", "age"]].to_numpy()).max() > 1e-6
    assert (pd.read_csv(out / "modality_share.csv")["delta_prob_no_image"] == 0).all()

    out = run_explain(with_primary("linear_image"), None, tmp_path / "x_image")
    info = json.loads((out / "explained.json").read_text())
    assert info["tabular_method"] is None and not (out / "tabular.csv").exists()
    assert any("does not depend on the record" in n for n in info["notes"])
    assert len(list((out / "maps").glob("*__gradcam.npy"))) == 3

    lgbm = with_primary("lightgbm")
    assert load_run(lgbm)[1].features == "fused"  # listed after linear_table and linear_image
    out = run_explain(lgbm, None, tmp_path / "x_lgbm", methods=["integrated_gradients", "tabular_ig"])
    assert len(list((out / "maps").glob("*_original.npy"))) == 3
