"""Multi-node pretraining and fine-tuning through torchrun's c10d rendezvous, on loopback.

Two "nodes" of one process each (``--nnodes 2 --node_rank 0/1 --rdzv_backend c10d
--rdzv_endpoint 127.0.0.1:PORT``, gloo) train the same loss curve, row for row in
``metrics.csv``, as one node running the same two processes (``--standalone
--nproc_per_node 2``): the same global batch, only the rendezvous differs.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clinfusion.config import load_config, save_config
from clinfusion.datasets.synthetic import make_synthetic_cohort
from tests.torchrun_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TINY = ["model.image_encoder.name=cnn_tiny", "model.image_encoder.width=4", "model.tabular_encoder.hidden_size=16",
        "model.tabular_encoder.num_layers=1", "model.tabular_encoder.num_heads=2",
        "model.tabular_encoder.intermediate_size=32", "model.fusion.dim=16", "model.projection_dim=16",
        "pretrain.batch_size=4", "pretrain.epochs=2", "pretrain.log_every=1", "pretrain.progress=false",
        "cohort.exclude=[]", "cohort.categorical=null", "image.size=[16,16]", "device=cpu"]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")


FINETUNE = ["finetune.heads=[full]", "finetune.baselines=[]", "finetune.batch_size=4", "finetune.epochs=2",
            "finetune.log_every=1", "finetune.progress=false", "evaluation.bootstrap=0", "evaluation.subgroups=[]",
            "evaluation.missing_modality=false"]
# where each command's engine writes its metrics.csv inside the run folder
METRICS = {"pretrain": Path("metrics.csv"), "finetune": Path("training") / "holdout_frac1" / "full" / "metrics.csv"}


def _losses(run: Path):
    with open(run, newline="") as f:
        return [(r["step"], r["split"], float(r["loss"])) for r in csv.DictReader(f)]


@pytest.mark.skipif(sys.platform != "linux", reason="loopback gloo rendezvous test runs on Linux")
@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_two_nodes_match_one_node_with_the_same_global_batch(tmp_path, command):
    syn = make_synthetic_cohort(tmp_path / "cohort", n_patients=12, size=16, seed=5)
    cfg_path = tmp_path / "cfg.yaml"
    save_config(load_config(None, list(syn.overrides) + TINY + FINETUNE), cfg_path)
    cli = ["-m", "clinfusion.cli.main", command, str(cfg_path)]
    one = subprocess.run(TORCHRUN + ["--standalone", "--nproc_per_node", "2"] + cli + ["--out", str(tmp_path / "one")],
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    port = free_port()
    nodes = [subprocess.Popen(TORCHRUN + ["--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1",
                                          "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}",
                                          "--rdzv_id", "cf-test"] + cli + ["--out", str(tmp_path / "two")],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    outs = [p.communicate(timeout=600) for p in nodes]
    for p, (_, err) in zip(nodes, outs):
        assert p.returncode == 0, err[-3000:]
    a, b = _losses(tmp_path / "one" / METRICS[command]), _losses(tmp_path / "two" / METRICS[command])
    assert len(a) >= 4 and [r[:2] for r in a] == [r[:2] for r in b]
    for (step, split, la), (_, _, lb) in zip(a, b):
        assert abs(la - lb) <= 1e-5 * max(1.0, abs(la)), (step, split, la, lb)
    assert len({round(r[2], 4) for r in a if r[1] == "train"}) > 1  # the curve moves: not a constant
