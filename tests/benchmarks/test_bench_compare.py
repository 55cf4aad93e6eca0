"""benchmarks._compare: the check behind RESULT_NEUTRAL flags a changed number and skips timings."""

import json

from benchmarks._compare import compare, main


def _result(auroc, seconds, note_seconds, slope):
    return {"name": "x", "meta": {"date": "then", "commit": "abc"},
            "sections": [{"note": f"Planted cohort; {note_seconds} s of cell time in all; epoch time about linear "
                                  f"(slope {slope}).",
                          "rows": [{"model": "fused", "auroc": auroc, "rho": float("nan"), "seconds": seconds,
                                    "pretrain_s": seconds, "peak MB": seconds * 10}]}]}


def test_a_changed_auroc_is_flagged_and_timings_are_not():
    n, diff = compare(_result(0.812, 3.0, 16, 1.07), _result(0.812, 4.5, 15, 1.05))
    assert diff == [] and n == 5  # name, note, model, auroc, rho (NaN = NaN); no timing cell
    n, diff = compare(_result(0.812, 3.0, 16, 1.07), _result(0.813, 3.0, 16, 1.07))
    assert diff == ["sections/0/rows/0/auroc"]


def test_a_cell_on_one_side_only_is_flagged():
    before, after = _result(0.8, 1.0, 1, 1.0), _result(0.8, 1.0, 1, 1.0)
    after["sections"][0]["rows"][0]["ci_low"] = 0.7
    assert compare(before, after)[1] == ["sections/0/rows/0/ci_low"]


def test_cli_exit_status(tmp_path, capsys):
    for name, auroc in (("a", 0.8), ("b", 0.8), ("c", 0.9)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "quality.json").write_text(json.dumps(_result(auroc, 1.0, 1, 1.0)))
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert main([str(tmp_path / "a"), str(tmp_path / "c")]) == 1
    assert "1 differ" in capsys.readouterr().out


def test_results_from_different_cpus_are_compared_with_a_warning(tmp_path, capsys):
    for name, cpu in (("a", "Intel(R) Xeon(R) Processor"), ("b", "AMD EPYC"), ("c", "AMD EPYC")):
        (tmp_path / name).mkdir()
        result = _result(0.8, 1.0, 1, 1.0)
        result["meta"]["machine"] = {"cpu": cpu}
        (tmp_path / name / "quality.json").write_text(json.dumps(result))
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "different CPUs ('Intel(R) Xeon(R) Processor' vs 'AMD EPYC')" in capsys.readouterr().out
    assert main([str(tmp_path / "b"), str(tmp_path / "c")]) == 0
    assert "different CPUs" not in capsys.readouterr().out
