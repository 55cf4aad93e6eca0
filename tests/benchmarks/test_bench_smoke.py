"""Every benchmark entry point runs at its ``--tiny`` size into a temporary results folder
(RESULTS.md is not touched) and writes the sections it promises, with finite numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List

import pytest

from benchmarks._common import RESULTS_MD


def _run(module: str, tmp_path: Path, *extra: str) -> Dict[str, Any]:
    import importlib

    results = tmp_path / "results"
    before = RESULTS_MD.stat().st_mtime if RESULTS_MD.exists() else None
    rc = importlib.import_module(f"benchmarks.{module}").main(["--tiny", "--results-dir", str(results), *extra])
    assert rc == 0
    after = RESULTS_MD.stat().st_mtime if RESULTS_MD.exists() else None
    assert before == after, "a --results-dir run must not regenerate benchmarks/RESULTS.md"
    data = json.loads((results / f"{module}.json").read_text())
    assert data["name"] == module and data["meta"]["command"].startswith(f"python -m benchmarks.{module}")
    budget = data.get("budget")  # a name where the benchmark has named budgets (probe_ceiling stores its sizes)
    assert not isinstance(budget, str) or budget == "tiny", "--tiny must select the tiny budget (_cli.setup)"
    return data


def _section(data: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    found = [s for s in data["sections"] if s["title"].startswith(prefix)]
    assert found, f"no section {prefix!r} in {[s['title'] for s in data['sections']]}"
    return found[0]


def _finite(rows: List[Dict[str, Any]], *cols: str) -> None:
    for row in rows:
        for c in cols:
            v = row[c]
            assert isinstance(v, (int, float)) and math.isfinite(v), f"{c} = {v!r} in {row}"


def test_scaling(tmp_path):
    data = _run("scaling", tmp_path)
    for title, x in (("Pretraining vs cohort rows", "cohort rows"), ("Pretraining vs omics width", "omics columns"),
                     ("Pretraining vs image size", "image side (px)")):
        sec = _section(data, title)
        _finite(sec["rows"], x, "ms/step", "s/epoch (extrapolated)", "prepare peak MB", "train peak MB")
        assert [r[x] for r in sec["rows"]] == sorted(r[x] for r in sec["rows"])
        assert (tmp_path / sec["plot"]).is_file() and "slope" in sec["note"]
    assert all(math.isfinite(v) for c in data["slopes"].values() for v in c.values())


def test_speed(tmp_path):
    data = _run("speed", tmp_path)
    step = _section(data, "(a)")["rows"][0]
    _finite([step], "ratio", "trainer ms", "bare ms", "data wait ms")
    assert step["ratio"] > 0
    fusion = _section(data, "(a2)")["rows"][0]  # ITM + masked_fused on
    _finite([fusion], "ratio", "trainer ms", "bare ms")
    mae = _section(data, "(a2b)")["rows"][0]  # MAE + ITM + masked_fused on a ViT
    _finite([mae], "ratio", "trainer ms", "bare ms")
    assert "pretrain.losses.mae=1.0" in mae["config"] and "vit_tiny" in mae["config"]
    speedups = _section(data, "(a4)")["rows"]  # compile / channels_last against the eager step of (a)
    assert [r["setting"] for r in speedups] == ["eager (a)", "channels_last", "compile", "compile + channels_last"]
    _finite(speedups, "trainer ms excl. data", "bare ms", "step/bare", "speed-up vs eager")
    assert speedups[0]["speed-up vs eager"] == 1.0 and speedups[0]["trainer ms excl. data"] == step["trainer ms excl. data"]
    finetune = _section(data, "(a3)")["rows"][0]  # the fine-tuning step on the same engine
    _finite([finetune], "ratio", "trainer ms", "bare ms")
    loader = _section(data, "(b)")
    _finite(loader["rows"], "loader samples/s", "encoder step samples/s", "engine step samples/s", "data-wait share")
    assert sorted({r["num_workers"] for r in loader["rows"]}) == [0, 1, 2] and "data-wait share" in loader["note"]
    dist = _section(data, "(c)")["rows"][0]
    _finite([dist], "ms/step 1 process", "ms/step 2 processes", "max abs loss diff")
    assert dist["equal"] is True
    explain = _section(data, "(d)")["rows"]
    assert {r["method"] for r in explain} >= {"integrated_gradients", "occlusion", "gradcam", "tabular_ig", "treeshap"}
    _finite(explain, "samples/s")


def test_gpu(tmp_path):
    import torch

    data = _run("gpu", tmp_path)
    if not torch.cuda.is_available():
        assert "no GPU" in _section(data, "GPU throughput: not measured")["title"]
        rows = _section(data, "CPU dry run")["rows"]
    else:
        rows = _section(data, "GPU throughput")["rows"]
    _finite(rows, "max batch", "samples/s", "TFLOP/step", "peak GB", "step/bare", "data-wait share", "toolkit samples/s")


def test_quality(tmp_path):
    data = _run("quality", tmp_path, "--parts", "nih", "synthetic")
    nih = _section(data, "NIH chest X-ray")
    assert {r["model"] for r in nih["rows"]} >= {"tabular-only LightGBM", "fused pretrained: linear probe",
                                                 "fused pretrained: full fine-tune", "fused, from scratch"}
    _finite(nih["rows"], "AUROC", "AUPRC")
    assert (tmp_path / nih["plot"]).is_file()
    every = {"fused pretrained: linear probe", "fused pretrained: MLP head", "fused pretrained: LightGBM",
             "fused pretrained: full fine-tune", "tabular-only LightGBM", "image-only, from scratch",
             "fused, from scratch"}
    assert {r["model"] for r in nih["rows"]} >= every  # every model reported, none picked
    for dims in (2, 3):
        rows = _section(data, f"Planted synthetic cohort, {dims}D")["rows"]
        _finite(rows, "AUROC", "AUPRC", "oracle (same inputs)")
        assert {r["model"] for r in rows} >= every
        assert all(0.5 < r["oracle (same inputs)"] <= 1.0 for r in rows)
    for sec in (nih, _section(data, "Planted synthetic cohort, 2D")):  # what finetune's own choice scores
        chosen = {r["model"]: r for r in sec["rows"] if r["model"].startswith("chosen on validation")}
        assert len(chosen) == 3 and all(r["chosen per run"] for r in chosen.values())
        assert {"model", "val_auroc", "auroc"} <= set(sec["runs"][0])
    assert {"nih", "2d", "3d"} <= set(data["verdicts"])
    goals = data["verdicts"]["2d"]["goals"]
    assert any("linear probe" in g["text"] and g["text"].split(": ")[1][:3] in ("yes", "no ") for g in goals)


def test_quality_recipes(tmp_path):
    data = _run("quality", tmp_path, "--parts", "recipes")
    rows = _section(data, "Pretraining recipes, planted cohort 2D")["rows"]
    assert [r["recipe"] for r in rows] == ["clip", "(from scratch)", "clip+unimodal", "clip+unimodal+fusion", "mae+clip"]
    for r in rows:
        for f in ("0.01", "0.1", "1"):
            assert all(0.0 <= float(v) <= 1.0 for v in r[f"AUROC {f} per seed"].split()), r
    assert "recipes 2d" in data["verdicts"]


def test_federated(tmp_path):
    data = _run("federated", tmp_path, "--parts", "synthetic")
    sec = _section(data, "Federated pretraining, planted cohort")
    models = [r["model"] for r in sec["rows"]]
    assert models[:5] == ["centralized", "federated FedAvg", "federated FedProx (mu 0.01)",
                          "federated FedAdam (eta 0.01)", "federated FedAdam (eta 0.003)"]
    assert sum(" alone" in m for m in models) == 6  # 3 sites at 1 and at 3 passes
    assert [r["passes"] for r in sec["rows"] if r["model"].startswith("centralized")] == [1, 3]
    _finite(sec["rows"], "auroc", "pretrain_s", "probe_C")
    _finite([r for r in sec["rows"] if r["model"].startswith("federated")], "rounds_per_s", "mb_per_round")
    fed = ["federated FedAvg", "federated FedProx (mu 0.01)", "federated FedAdam (eta 0.01)",
           "federated FedAdam (eta 0.003)"]
    met = data["verdicts"]["synthetic"]["met"]
    assert set(met) == set(fed) | {f"{m}, 3 local epochs" for m in fed}
    # each verdict follows the goal, recomputed here from the rows (one seed at --tiny): within 0.03 of
    # centralized and above every site alone, among the runs with the same passes over the data
    for passes in (1, 3):
        rows = {r["model"]: r["auroc"] for r in sec["rows"] if r.get("passes", 1) == passes}
        central = next(v for k, v in rows.items() if k.startswith("centralized"))
        alone = max(v for k, v in rows.items() if " alone" in k)
        for name, auroc in rows.items():
            if name.startswith("federated"):
                assert met[name] == (auroc >= central - 0.03 and auroc > alone), (name, rows)


def test_explain_quality(tmp_path):
    data = _run("explain_quality", tmp_path)
    rows = _section(data, "Explanation quality on the planted synthetic cohort")["rows"]
    assert {"integrated_gradients", "occlusion", "gradcam"} <= {r["method"] for r in rows}
    _finite([r for r in rows if r["method"] != "tabular_ig: marker rank"], "pointing / rank")
    _finite(_section(data, "Explained classifier")["rows"], "AUROC")


def test_probe_ceiling(tmp_path):
    """Perfect image evidence: the linear probe reaches the oracle; noisy evidence: it loses more
    than the Bayes combination of the same two inputs."""
    sec = _section(_run("probe_ceiling", tmp_path), "Linear-probe ceiling")
    _finite(sec["rows"], "image s alone", "linear probe (s, t)", "Bayes (s, t)", "oracle both")
    by = {r["sigma"]: r for r in sec["rows"]}
    assert abs(by[0.0]["linear gap"]) < 0.02 and by[0.0]["image loss"] == 0
    assert by[0.5]["image loss"] > 0.02 and by[0.5]["linear gap"] > by[0.5]["Bayes gap"] + 0.02


def test_label_efficiency(tmp_path):
    """Both pretraining settings, every recipe, the recipe chosen on validation and the from-scratch
    reference at every fraction; the pooled setting pretrains on more rows than the cohort alone."""
    from benchmarks.label_efficiency import RECIPES, SETTINGS

    data = _run("label_efficiency", tmp_path)
    rows = _section(data, "Label efficiency with an unlabelled pool, planted cohort 2D")["rows"]
    names = [RECIPES[0], "(from scratch)", *RECIPES[1:], "(chosen on validation)"]
    assert [(r["setting"], r["recipe"]) for r in rows] == [(s, n) for s in SETTINGS for n in names]
    assert rows[len(names)]["pretraining rows"] > rows[0]["pretraining rows"]
    chosen = [r for r in rows if r["recipe"] == "(chosen on validation)"]
    assert all(r["chosen per seed"] in RECIPES for r in chosen)
    assert set(data["verdicts"]["2d"]) == set(SETTINGS)
    assert set(data["verdicts"]["2d"]["cohort + pool"]) == {"declared", "chosen on validation"}


def test_label_count(tmp_path):
    """A row per label fraction with more labelled patients at each; the planted-truth probe reads the
    planted facts of the right rows (near-perfect at 100% even on the tiny cohort; a misaligned join
    would score about 0.5), and the verdict names the 10% gap."""
    from benchmarks.label_count import FRACTIONS

    data = _run("label_count", tmp_path)
    rows = _section(data, "Probe gap by labelled count, planted cohort 2D")["rows"]
    assert [r["label fraction"] for r in rows] == list(FRACTIONS)
    _finite(rows, "gap to 100%", "planted-truth probe AUROC", "sd over draws (mean over seeds)")
    counts = [r["labelled training patients"] for r in rows]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    assert rows[-1]["planted-truth probe AUROC"] > 0.9 and rows[-1]["gap to 100%"] == 0
    assert "at 10%" in data["verdicts"]["2d"]["text"]
    # fused from scratch at 10% only, from its own fine-tuning (not the probe's row: the gain is not 0),
    # and the gain is the probe's per-seed mean minus it
    assert [r["fused from scratch AUROC"] == "" for r in rows] == [f != 0.1 for f in FRACTIONS]
    per_seed = [float(v) for v in rows[0]["fused per seed (mean of draws)"].split()]  # rounded to 3 digits
    probe = sum(per_seed) / len(per_seed)
    gain = rows[0]["probe gain over scratch"]
    assert gain != 0 and abs(probe - rows[0]["fused from scratch AUROC"] - gain) < 1e-3
    assert data["verdicts"]["2d"]["gain"] == gain and "fused from scratch" in data["verdicts"]["2d"]["text"]


def test_chosen_on_validation_uses_validation_auroc_only():
    """The pick follows validation AUROC at 10% per seed and setting, never test AUROC, and keeps the
    chosen recipe's own 100% row."""
    import pandas as pd

    from benchmarks._recipes import CHOSEN, chosen_on_validation

    rows = []
    for seed, (val_a, val_b) in {0: (0.9, 0.6), 1: (0.5, 0.7)}.items():
        for recipe, val, test in (("a", val_a, 0.55), ("b", val_b, 0.95)):
            for f in (0.1, 1.0):
                rows.append(dict(setting="x", seed=seed, recipe=recipe, label_fraction=f, auroc=test + f / 10,
                                 val_auroc=val))
    got = chosen_on_validation(pd.DataFrame(rows), ["a", "b"])
    assert got.groupby("seed")["chosen"].first().to_dict() == {0: "a", 1: "b"}
    assert set(got["recipe"]) == {CHOSEN} and len(got) == 4
    assert got.loc[(got["seed"] == 0) & (got["label_fraction"] == 1.0), "auroc"].item() == 0.65


def test_label_efficiency_tables_hold_no_label_and_no_test_patient(tmp_path):
    import pandas as pd

    from benchmarks.label_efficiency import BUDGETS, SETTINGS, cohorts

    tables, _, counts = cohorts(tmp_path, BUDGETS["tiny"], 2, seed=3)
    lab = pd.read_csv(tables["labelled"])
    test = set(lab.loc[lab["split"] == "test", "patient"])
    assert test and lab["patient"].nunique() == BUDGETS["tiny"]["patients"]
    for setting in SETTINGS[:2]:  # the third setting fine-tunes the second's pretrained runs
        pre = pd.read_csv(tables[setting])
        assert "label" not in pre.columns and not test & set(pre["patient"])
        assert counts[setting] == len(pre)
    pool = pd.read_csv(tables["cohort + pool"])
    assert pool["patient"].nunique() == BUDGETS["tiny"]["patients"] - len(test) + BUDGETS["tiny"]["pool"]


def test_longer_recipe_doubles_the_pretraining_epochs_and_keeps_its_losses():
    """``clip+unimodal+fusion, 2x epochs`` trains the same terms as ``clip+unimodal+fusion`` for twice the
    epochs the run sets (a budget's override, else the demo config's own)."""
    import yaml

    from benchmarks._quality_runs import NIH_PRETRAIN
    from benchmarks._recipes import _losses

    longer = _losses("clip+unimodal+fusion, 2x epochs", ["pretrain.epochs=3"])
    assert longer[:-1] == _losses("clip+unimodal+fusion") and longer[-1] == "pretrain.epochs=6"
    demo = yaml.safe_load(NIH_PRETRAIN.read_text())["pretrain"]["epochs"]
    assert _losses("clip+unimodal+fusion, 2x epochs")[-1] == f"pretrain.epochs={2 * demo}"
    assert not any(o.startswith("pretrain.epochs=") for o in _losses("clip+unimodal+fusion", ["pretrain.epochs=3"]))


def test_label_count_large_budget_is_small_with_three_times_the_labelled_patients():
    """``--budget large`` keeps label_efficiency's small cohort draw (pool, image size, seeds, epochs)
    and changes only the labelled-patient count."""
    from benchmarks import label_efficiency as le
    from benchmarks.label_count import BUDGETS, cohort_budget

    large, small = cohort_budget(BUDGETS["large"]), cohort_budget(BUDGETS["small"])
    assert small == le.BUDGETS["small"] and large["patients"] == 3 * small["patients"] == 900
    assert {k: v for k, v in large.items() if k != "patients"} == {k: v for k, v in small.items() if k != "patients"}


def test_label_count_large_budget_writes_its_own_file_and_titles(tmp_path, monkeypatch):
    """``--budget large`` writes label_count_large.json (never over label_count.json), its tables titled
    with the labelled-patient count."""
    import pandas as pd

    from benchmarks import label_count

    class _Cache:
        def note(self):
            return ""

    monkeypatch.setattr(label_count._jobcache, "run_draws",
                        lambda args, name, cell, b, todo, key: ([pd.DataFrame({"v": [1]}) for _ in todo], _Cache()))
    monkeypatch.setattr(label_count, "section", lambda b, dims, df: {
        "title": f"Label count {dims}D", "columns": ["v"], "rows": [{"v": 1}], "verdict": {"text": "ok"}})
    label_count.main(["--budget", "large", "--dims", "2", "--results-dir", str(tmp_path), "--no-cache"])
    assert [p.name for p in tmp_path.glob("*.json")] == ["label_count_large.json"]
    data = json.loads((tmp_path / "label_count_large.json").read_text())
    assert data["sections"][0]["title"] == "Label count 2D, 900 labelled patients"
