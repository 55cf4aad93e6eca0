"""The deployment runtime on loopback: one SuperLink, two SuperNodes (each told its own site and
table), ``clinfusion pretrain ... federated.runtime=deployment`` finishes one round.

Everything listens on 127.0.0.1 on free ports; every process is started in its own process
group and killed in teardown; waits are bounded."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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
    """SuperLink + SuperNodes A and B (tables: the cohort's site-A and site-B rows only)."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr-home"), "PYTHONPATH": str(REPO),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    frame = pd.read_csv(fed_cohort.table)
    link = free_port()
    procs, log = [], open(tmp_path / "flower.log", "w")

    def start(cmd):
        procs.append(subprocess.Popen([str(bin_dir / cmd[0]), *cmd[1:]], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start(["flower-superlink", "--insecure", "--isolation", "subprocess", "--host", "127.0.0.1", "--port",
               str(link), "--disable-runtime-dependency-installation"])
        for site in ("A", "B"):
            table = Path(fed_cohort.table).parent / f"deploy_site_{site}.csv"  # next to the images it names
            frame[frame["site"] == site].to_csv(table, index=False)
            start(["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link}", "--node-config",
                   f"site='{site}' table='{table}'", "--host", "127.0.0.1", "--port", str(free_port())])
        _wait_listening(link, procs)
        yield link
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        log.close()


@pytest.mark.timeout(480)
def test_deployment_runtime_on_loopback_finishes_one_round(federation, fed_cohort, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("seed: 0\n")
    args = [*fed_cohort.overrides, *TINY, "cohort.site_column=site", "federated.runtime=deployment",
            "federated.rounds=1", f"federated.superlink=127.0.0.1:{federation}", "federated.connect_timeout_s=60",
            "federated.round_timeout_s=300"]
    assert main(["pretrain", str(cfg), *args, "--out", str(tmp_path / "run")]) == 0
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert sorted(metrics["site"]) == ["A", "B", "all"] and set(metrics["round"]) == {1}
    assert (metrics["bytes_up"] > 0).all()
    assert (tmp_path / "run" / "checkpoints" / "last" / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".run.federated-config.yaml"))
