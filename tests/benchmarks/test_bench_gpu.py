"""benchmarks.gpu: a run killed after its first configuration keeps that configuration's row,
and the summary sentence is computed from the rows (goal verdict, failures)."""

from __future__ import annotations

import json

import pytest

from benchmarks import gpu


def test_a_run_killed_after_one_configuration_keeps_its_row(tmp_path, monkeypatch):
    calls = []

    def measure(name, spec, work, device):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run is killed while measuring the second configuration
        return {"config": name, "samples/s": 123.0}

    monkeypatch.setattr(gpu, "measure_config", measure)
    with pytest.raises(KeyboardInterrupt):
        gpu.main(["--tiny", "--results-dir", str(tmp_path)])
    data = json.loads((tmp_path / "gpu.json").read_text())
    rows = [r for s in data["sections"] if s["title"].startswith("CPU dry run") for r in s["rows"]]
    assert rows == [{"config": calls[0], "samples/s": 123.0}]
    assert data["summary"].startswith("Partial: 1 of 2 configurations")


def test_summary_states_each_configurations_goal_verdict_and_the_failures():
    rows = [{"config": "fast", "samples/s": 2000.0, "max batch": 512, "MFU": 0.31, "trainer batch": 256,
             "step/bare": 1.04, "data-wait share": 0.02},
            {"config": "slow", "samples/s": 90.0, "max batch": 8, "MFU": 0.02, "trainer batch": 4,
             "step/bare": 1.25, "data-wait share": 0.4},
            {"config": "broken", "encoder": "failed: RuntimeError: boom"}]
    text = gpu._summary(rows, "Some GPU")
    assert text.startswith("On Some GPU:")
    assert "fast reaches 2,000 samples/s (bare step, batch 512, MFU 0.31)" in text
    assert "1.04x the bare step (within the 1.10 goal)" in text and "waits for data 2%" in text
    assert "1.25x the bare step (above the 1.10 goal)" in text and "waits for data 40%" in text
    assert text.endswith("Failed: broken (see the table).")


def test_set_adds_overrides_to_every_configuration(tmp_path, monkeypatch):
    seen = {}

    def measure(name, spec, work, device):
        seen[name] = spec["overrides"]
        return {"config": name, "samples/s": 1.0}

    monkeypatch.setattr(gpu, "measure_config", measure)
    gpu.main(["--tiny", "--results-dir", str(tmp_path), "--set", "pretrain.losses.itm=0.5"])
    assert set(seen) == set(gpu.TINY)
    for name, overrides in seen.items():
        assert overrides == list(gpu.TINY[name]["overrides"]) + ["pretrain.losses.itm=0.5"]
    assert "pretrain.losses.itm=0.5" not in gpu.TINY["2d_resnet50"]["overrides"]  # the table itself is untouched


def test_name_writes_its_own_file_and_the_title_names_the_overrides(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "measure_config", lambda name, spec, work, device: {"config": name, "samples/s": 1.0})
    gpu.main(["--tiny", "--results-dir", str(tmp_path), "--name", "gpu_terms", "--set", "pretrain.losses.mae=1.0"])
    assert not (tmp_path / "gpu.json").exists()
    data = json.loads((tmp_path / "gpu_terms.json").read_text())
    assert data["name"] == "gpu_terms"
    assert data["meta"]["command"].startswith("python -m benchmarks.gpu ")  # the module run, not the file name
    assert "--name gpu_terms" in data["meta"]["command"]
    assert [s["title"] for s in data["sections"] if "dry run" in s["title"]] == [
        "CPU dry run of the GPU benchmark (toy sizes; not GPU figures) with pretrain.losses.mae=1.0"]
