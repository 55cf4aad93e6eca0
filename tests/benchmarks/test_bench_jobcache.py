"""benchmarks._jobcache: a long benchmark killed part-way and started again runs only the jobs
that had not finished; an entry is reused only for the same code and the same job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import _jobcache, quality


def test_a_value_is_computed_once_and_a_rejected_one_is_not_kept(tmp_path):
    calls = []

    def job(x):
        calls.append(x)
        return {"x": x}

    path = _jobcache.job_path(tmp_path, "bench", "code1", ("job", 1))
    assert _jobcache.run_cached(path, job, 1) == {"x": 1}
    assert _jobcache.run_cached(path, job, 1) == {"x": 1} and calls == [1]  # the second call read the file
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    other = _jobcache.job_path(tmp_path, "bench", "code2", ("job", 1))  # other code: computed again
    assert other != path and _jobcache.run_cached(other, job, 1) == {"x": 1} and calls == [1, 1]
    failed = _jobcache.job_path(tmp_path, "bench", "code1", ("job", 2))
    _jobcache.run_cached(failed, job, 2, keep=lambda v: False)
    assert not failed.exists()
    assert _jobcache.run_cached(None, job, 3) == {"x": 3} and calls == [1, 1, 2, 3]  # no cache: always computed


def test_a_run_notes_the_jobs_it_read_back(tmp_path):
    from types import SimpleNamespace

    off = _jobcache.JobCache(SimpleNamespace(tiny=False, no_cache=True, cache_dir=tmp_path), "bench")
    assert off.path(("job", 1), "one") is None and off.note() == ""
    cache = _jobcache.JobCache(SimpleNamespace(tiny=False, no_cache=False, cache_dir=tmp_path), "bench")
    first = cache.path(("job", 1), "one")
    _jobcache.run_cached(first, lambda: 1)
    assert cache.note() == ""  # nothing was there when the path was asked for
    again = _jobcache.JobCache(SimpleNamespace(tiny=False, no_cache=False, cache_dir=tmp_path), "bench")
    assert again.path(("job", 1), "one") == first and again.path(("job", 2), "two") != first
    assert again.note() == f" (one: read from the job cache {again.code}, computed by an earlier run of the same code)"


def test_the_code_hash_follows_library_and_benchmark_files_only(tmp_path):
    for rel, text in {"clinfusion/a.py": "x = 1", "configs/c.yaml": "a: 1", "pyproject.toml": "[p]",
                      "benchmarks/b.py": "y = 2", "benchmarks/results/r.json": "{}", "README.md": "r"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    first = _jobcache.code_hash(tmp_path)
    (tmp_path / "README.md").write_text("other")
    (tmp_path / "benchmarks/results/r.json").write_text('{"a": 1}')  # results and docs: same code
    assert _jobcache.code_hash(tmp_path) == first
    for rel in ("clinfusion/a.py", "configs/c.yaml", "pyproject.toml", "benchmarks/b.py"):
        before = _jobcache.code_hash(tmp_path)
        (tmp_path / rel).write_text((tmp_path / rel).read_text() + " ")
        assert _jobcache.code_hash(tmp_path) != before, rel


def test_quality_killed_after_its_first_part_runs_only_the_second_when_started_again(tmp_path, monkeypatch):
    calls, kill = [], {"fb": True}

    def fake(name):
        def run(b, budget, work, device, plots):
            calls.append(name)
            if kill.get(name):
                raise KeyboardInterrupt  # the run is killed inside the second part
            (plots / f"{name}.png").write_bytes(name.encode())
            return [{"title": f"part {name}", "columns": ["v"], "rows": [{"v": len(calls)}], "plot": f"plots/{name}.png"}]
        return run

    monkeypatch.setattr(quality, "tasks", lambda budget, parts: [("A", "nih", "fa"), ("B", "nih", "fb")])
    monkeypatch.setattr(quality, "TASKS", {"fa": fake("fa"), "fb": fake("fb")})
    results, cache = tmp_path / "results", tmp_path / "cache"
    argv = ["--budget", "tiny", "--results-dir", str(results), "--cache-dir", str(cache)]
    with pytest.raises(KeyboardInterrupt):
        quality.main(argv)
    assert calls == ["fa", "fb"] and not (results / "quality.json").exists()
    kill["fb"] = False
    (tmp_path / "plots" / "fa.png").unlink()  # the plot of the finished part is restored from the cache
    quality.main(argv)
    assert calls == ["fa", "fb", "fb"]
    data = json.loads((results / "quality.json").read_text())
    assert [s["rows"] for s in data["sections"]] == [[{"v": 1}], [{"v": 3}]]  # fa's row from its first run
    assert (tmp_path / "plots" / "fa.png").read_bytes() == b"fa"
    assert "fa: read from the job cache" in data["summary"]
    quality.main(argv + ["--no-cache"])  # --no-cache computes every part again
    assert calls == ["fa", "fb", "fb", "fa", "fb"]


def test_a_failed_part_is_not_kept(tmp_path, monkeypatch):
    calls = []

    def broken(b, budget, work, device, plots):
        calls.append(1)
        raise RuntimeError("boom")

    monkeypatch.setattr(quality, "tasks", lambda budget, parts: [("A", "nih", "fa")])
    monkeypatch.setattr(quality, "TASKS", {"fa": broken})
    argv = ["--budget", "tiny", "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")]
    quality.main(argv)
    quality.main(argv)
    assert len(calls) == 2
    data = json.loads((tmp_path / "r" / "quality.json").read_text())
    assert data["sections"][0]["rows"] == [{"status": "not measured"}] and "boom" in data["sections"][0]["note"]


def test_label_efficiency_started_again_skips_the_finished_cohort_draws(tmp_path, monkeypatch):
    from benchmarks import label_efficiency as le

    seen = []

    def first_then_killed(b, dims, seed, work, device, threads=None):
        seen.append((dims, seed))
        if len(seen) > 1:
            raise KeyboardInterrupt  # killed in the second draw
        return f"frame {dims} {seed}"

    monkeypatch.setattr(le, "cell", first_then_killed)
    argv = ["--budget", "tiny", "--dims", "2", "3", "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")]
    with pytest.raises(KeyboardInterrupt):
        le.main(argv)
    assert len(list((tmp_path / "c").rglob("*.pkl"))) == 1
    done, seen[:] = seen[0], [None]  # from now on every computed draw is killed at once
    with pytest.raises(KeyboardInterrupt):  # started again: the first draw computed is the one not finished
        le.main(argv)
    assert len(seen) == 2 and seen[1] != done


def _killed_after_first(seen):
    """A job that finishes once and is killed on every later call (records each call's first argument)."""
    def job(first, *rest):
        seen.append(first)
        if len(seen) > 1:
            raise KeyboardInterrupt
        return job.value
    return job


def test_federated_started_again_skips_the_finished_part(tmp_path, monkeypatch):
    from benchmarks import federated

    seen = []
    job = _killed_after_first(seen)
    job.value = {"title": "t", "columns": ["v"], "rows": [{"v": 1}], "verdict": {"text": "ok"}}
    monkeypatch.setattr(federated, "compare", job)
    argv = ["--budget", "tiny", "--parts", "synthetic", "nih", "--results-dir", str(tmp_path / "r"),
            "--cache-dir", str(tmp_path / "c")]
    with pytest.raises(KeyboardInterrupt):
        federated.main(argv)
    with pytest.raises(KeyboardInterrupt):
        federated.main(argv)
    assert len(seen) == 3 and seen[0] != seen[1] == seen[2]  # the second run went straight to the second part


def test_explain_quality_started_again_skips_the_finished_dimension(tmp_path, monkeypatch):
    from benchmarks import explain_quality

    seen = []
    job = _killed_after_first(seen)
    methods = {"integrated_gradients": 1.0}
    job.value = {"pointing": {**methods, "input image (baseline)": 0.3}, "deletion_minus_random": {"integrated_gradients": -0.1},
                 "randomization_rho": {"integrated_gradients": 0.1}, "samples_per_s": {"integrated_gradients": 5.0},
                 "auroc": {"all": 0.9, "no image": 0.7, "no table": 0.8}, "oracle": {"both": 0.95, "image": 0.8, "table": 0.8},
                 "n_positive_test": 10, "marker_rank": 1, "top_feature": "marker"}
    monkeypatch.setattr(explain_quality, "_measure", lambda root, dims, sz, device: job(dims))
    argv = ["--dims", "2", "3", "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")]
    with pytest.raises(KeyboardInterrupt):
        explain_quality.main(argv)
    with pytest.raises(KeyboardInterrupt):
        explain_quality.main(argv)
    assert seen == [2, 3, 3]


def test_workers_end_when_the_benchmark_is_killed(tmp_path):
    """``--jobs N`` workers stop once their benchmark process is killed (kill -9: no cleanup runs in it),
    rather than computing on beside whatever runs next."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "sleeper.py").write_text(
        "import os, time\n"
        "def sleep_long(b, dims, seed, work, device, threads=None):\n"
        "    open(os.path.join(b, f'{seed}.pid'), 'w').write(str(os.getpid()))\n"
        "    time.sleep(300)\n")
    script = ("import sys, types; sys.path.insert(0, sys.argv[1])\n"
              "from sleeper import sleep_long\n"
              "from benchmarks._jobcache import run_draws\n"
              "args = types.SimpleNamespace(device='cpu', jobs=2, tiny=True, no_cache=True, cache_dir=None)\n"
              "run_draws(args, 'killed', sleep_long, sys.argv[1], [(2, 0), (2, 1)])\n")
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=root,
                              env={**os.environ, "PYTHONPATH": str(root)})
    pid_files = [tmp_path / "0.pid", tmp_path / "1.pid"]
    deadline = time.time() + 120
    while not all(f.is_file() and f.read_text() for f in pid_files):
        assert parent.poll() is None and time.time() < deadline, "the workers never started"
        time.sleep(0.2)
    workers = [int(f.read_text()) for f in pid_files]
    parent.send_signal(signal.SIGKILL)
    parent.wait()

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as fh:  # a zombie has finished; only its exit status is left
            return fh.read().split(")")[-1].split()[0] != "Z"

    deadline = time.time() + 20
    while any(alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    left = [p for p in workers if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed benchmark"
