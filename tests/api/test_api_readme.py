"""The README's Python API example, executed exactly as written (extracted from README.md),
in a folder whose ``configs/nih_cxr_demo.yaml`` is a tiny synthetic cohort."""

import re
from pathlib import Path

import yaml

import clinfusion
from clinfusion.datasets.synthetic import make_synthetic_cohort

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_api_block() -> str:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_api_is_lazy_and_complete():
    import subprocess
    import sys

    code = "import sys, clinfusion; assert 'torch' not in sys.modules; print(sorted(clinfusion.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    from clinfusion import api

    for job in ("load_cohort", "pretrain", "embed", "finetune", "evaluate", "predict"):
        assert job in out and getattr(clinfusion, job) is getattr(api, job)
    assert callable(api.explain)


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    syn = make_synthetic_cohort(tmp_path / "cohort", n_patients=12, images_per_patient=2, size=16)
    cfg = {
        "device": "cpu",
        "cohort": {"table": str(syn.table), "id_column": "id", "patient_column": "patient", "image_column": "image",
                   "label_column": "label"},
        "image": {"size": [16, 16], "intensity": {"mode": "window", "a_min": 0, "a_max": 255}},
        "model": {"image_encoder": {"name": "cnn_tiny"}, "projection_dim": 16, "fusion": {"dim": 16},
                  "tabular_encoder": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32}},
        "pretrain": {"batch_size": 8, "progress": False},
        "finetune": {"heads": ["linear"], "baselines": [], "batch_size": 8},
        "evaluation": {"bootstrap": 0},
        "explain": {"methods": ["tabular_ig"], "max_samples": 2, "ig_steps": 2},
    }
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "nih_cxr_demo.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_api_block(), "README.md", "exec"), scope)
    assert scope["X"].shape == (24, 16)  # every sample, fusion.dim wide
    assert list(scope["emb"]["id"]) == list(scope["cohort"].ids)
    assert (tmp_path / "runs" / "api-ft" / "classifier").is_dir() and scope["report"].is_file()
    assert "auroc_ci_low" in scope["metrics"] and len(scope["preds"]) == 24
    assert "24 samples of 12 patients" in capsys.readouterr().out
