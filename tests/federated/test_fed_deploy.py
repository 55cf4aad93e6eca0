"""The deployment runtime on loopback: one SuperLink, two SuperNodes (each told its own site and
table), ``clinfusion pretrain ... federated.runtime=deployment`` finishes one round; a SuperNode
that stops answering mid-run gives one line within the round timeout (not a hang), and the run
then continues with ``--resume``.

Everything listens on 127.0.0.1 on free ports; every process is started in its own process
group and killed in teardown; waits are bounded."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from clinfusion.cli.main import main
from fed_helpers import TINY
from tests.torchrun_helpers import free_port

REPO = Path(__file__).resolve().parents[2]


def _wait_listening(port: int, procs, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a Flower process exited early")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture
def federation(tmp_path, fed_cohort):
    """SuperLink + SuperNodes A and B (tables: the cohort's site-A and site-B rows only):
    ``.port`` of the SuperLink, ``.nodes[site]`` the SuperNode processes."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr-home"), "PYTHONPATH": str(REPO),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    frame = pd.read_csv(fed_cohort.table)
    link = free_port()
    procs, nodes, log = [], {}, open(tmp_path / "flower.log", "w")

    def start(cmd):
        procs.append(subprocess.Popen([str(bin_dir / cmd[0]), *cmd[1:]], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))
        return procs[-1]

    try:
        start(["flower-superlink", "--insecure", "--isolation", "subprocess", "--host", "127.0.0.1", "--port",
               str(link), "--disable-runtime-dependency-installation"])
        for site in ("A", "B"):
            table = Path(fed_cohort.table).parent / f"deploy_site_{site}.csv"  # next to the images it names
            frame[frame["site"] == site].to_csv(table, index=False)
            nodes[site] = start(["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link}", "--node-config",
                   f"site='{site}' table='{table}'", "--host", "127.0.0.1", "--port", str(free_port())])
        _wait_listening(link, procs)
        yield SimpleNamespace(port=link, nodes=nodes)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                os.killpg(p.pid, signal.SIGCONT)  # a stopped SuperNode handles its SIGTERM only once resumed
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        log.close()


@pytest.mark.timeout(480)
def test_deployment_runtime_on_loopback_finishes_one_round(federation, fed_cohort, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("seed: 0\n")
    args = [*fed_cohort.overrides, *TINY, "cohort.site_column=site", "federated.runtime=deployment",
            "federated.rounds=1", f"federated.superlink=127.0.0.1:{federation.port}", "federated.connect_timeout_s=60",
            "federated.round_timeout_s=300"]
    assert main(["pretrain", str(cfg), *args, "--out", str(tmp_path / "run")]) == 0
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert sorted(metrics["site"]) == ["A", "B", "all"] and set(metrics["round"]) == {1}
    assert (metrics["bytes_up"] > 0).all()
    assert (tmp_path / "run" / "checkpoints" / "last" / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".run.federated-config.yaml"))
    capsys.readouterr()
    # the same command again: one line before anything is submitted, and the finished run is untouched
    files = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert main(["pretrain", str(cfg), *args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: run directory {str(tmp_path / 'run')!r} exists: pass --overwrite to replace it or "
                   "--resume to continue"]
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == files


def _stop_after_round(proc, metrics: Path, rnd: int, timeout: float = 300.0) -> threading.Thread:
    """Freeze ``proc``'s process group (SIGSTOP: no reply, no heartbeat, like a site whose machine
    hangs or loses its network) as soon as ``metrics`` holds round ``rnd``'s summary row; the
    thread's ``stopped_at`` is then that ``time.monotonic()``."""
    def watch():
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                done = metrics.is_file() and any(line.startswith(f"{rnd},all,") for line in metrics.read_text().splitlines())
            except OSError:
                done = False
            if done:
                os.killpg(proc.pid, signal.SIGSTOP)
                thread.stopped_at = time.monotonic()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(600)
def test_supernode_silent_mid_run_is_one_line_then_the_run_resumes(federation, fed_cohort, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("seed: 0\n")
    run, timeout = tmp_path / "run", 40
    args = [*fed_cohort.overrides, *TINY, "cohort.site_column=site", "federated.runtime=deployment",
            "federated.rounds=2", f"federated.superlink=127.0.0.1:{federation.port}", "federated.connect_timeout_s=60",
            f"federated.round_timeout_s={timeout}"]
    watcher = _stop_after_round(federation.nodes["B"], run / "metrics.csv", 1)
    t0 = time.monotonic()
    assert main(["pretrain", str(cfg), *args, "--out", str(run)]) == 2
    waited = time.monotonic() - t0
    watcher.join(timeout=1)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    first = err[0]  # B froze once round 1 was written: it misses round 2; A is never blamed
    assert hasattr(watcher, "stopped_at"), f"site B was never frozen: the run ended first, with {first!r}"
    after = waited - (watcher.stopped_at - t0)
    later = "; checkpoints/last holds round 1: restart the site and continue with --resume"
    if "Node Unavailable" in first:  # the SuperLink saw B's heartbeat stop before the round timeout
        assert first.startswith("error: site 'B' failed in round 2: Error: Node Unavailable") and first.endswith(later)
        assert after < timeout + 20
    else:  # the round timeout came first
        assert first == (f"error: site(s) 'B' did not answer round 2 within federated.round_timeout_s={timeout}s "
                         f"(dropped out){later}")
        # not a hang, and prompt: the line comes once the round timeout has passed (the run ends at once,
        # not when Flower's task heartbeat expires a minute later)
        assert timeout <= after < timeout + 20
    metrics = pd.read_csv(run / "metrics.csv")
    assert set(metrics["round"]) == {1}

    os.killpg(federation.nodes["B"].pid, signal.SIGCONT)  # the site is back: the run continues where it stopped
    rc = main(["pretrain", str(cfg), *args, "--out", str(run), "--resume"])
    err = capsys.readouterr().err.strip()
    metrics = pd.read_csv(run / "metrics.csv")
    assert sorted(metrics.loc[metrics["site"] == "all", "round"]) == [1, 2]  # round 2 ran, with both sites
    assert sorted(metrics.loc[metrics["round"] == 2, "site"]) == ["A", "B", "all"]
    assert rc == 0, err  # and the first run's error does not outlive it
    assert not (run / "error.txt").exists()
