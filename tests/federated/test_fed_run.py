"""Federated runs end to end (simulation runtime): resume, one-line errors, an ordinary run folder."""

import pandas as pd
import pytest
import torch

from clinfusion.cli.main import main
from clinfusion.errors import DataError, TrainingError
from clinfusion.federated import apps
from clinfusion.training.pretrain import run_pretrain
from fed_helpers import TINY, fed_config, load_task, site_tables

SITES = ["cohort.site_column=site"]


def test_run_killed_after_round_2_and_resumed_equals_uninterrupted(fed_cohort, tmp_path, monkeypatch):
    cfg = fed_config(fed_cohort, SITES + ["federated.rounds=3", "federated.strategy=fedadam"])
    full = run_pretrain(cfg, tmp_path / "full")
    save = apps._save_round

    def killed_after_2(run_dir, task, rnd, cfg_, strategy):
        save(run_dir, task, rnd, cfg_, strategy)
        if rnd == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(apps, "_save_round", killed_after_2)
    with pytest.raises(KeyboardInterrupt):
        run_pretrain(cfg, tmp_path / "cut")
    monkeypatch.setattr(apps, "_save_round", save)
    assert load_task(tmp_path / "cut", cfg)[1]["extra"]["round"] == 2
    resumed = run_pretrain(cfg, tmp_path / "cut", resume=True)
    a, _ = load_task(full, cfg)
    b, state = load_task(resumed, cfg)
    assert state["extra"]["round"] == 3
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    m_full, m_res = pd.read_csv(full / "metrics.csv"), pd.read_csv(resumed / "metrics.csv")
    assert m_res["round"].tolist() == m_full["round"].tolist()  # rows of round 3 once, none lost
    assert sorted(set(m_full["site"])) == ["A", "B", "C", "all"]
    pd.testing.assert_series_equal(m_full["loss"], m_res["loss"])
    assert (m_full["bytes_up"] > 0).all()


def _cfg(folder):
    path = folder / "cfg.yaml"
    path.write_text("seed: 0\n")
    return str(path)


def _one_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_site_without_rows_is_one_line(fed_cohort, tmp_path, capsys):
    tables = site_tables(fed_cohort, tmp_path, 8, edit={"b": lambda f: f.iloc[:0]})
    args = list(fed_cohort.overrides) + TINY + tables
    line = _one_line(capsys, ["pretrain", _cfg(tmp_path), *args, "--out", str(tmp_path / "run")])
    assert "site 'b'" in line and "empty" in line


def test_site_with_other_columns_is_one_line(fed_cohort, tmp_path, capsys):
    tables = site_tables(fed_cohort, tmp_path, 8, edit={"b": lambda f: f.drop(columns=["age"])})
    args = list(fed_cohort.overrides) + TINY + tables
    line = _one_line(capsys, ["pretrain", _cfg(tmp_path), *args, "--out", str(tmp_path / "run")])
    assert "site 'b'" in line and "'age'" in line


def test_site_dropping_out_mid_round_is_one_line(fed_cohort, tmp_path, monkeypatch, capsys):
    from clinfusion.federated import local

    train = local.local_round

    def flaky(cfg, site, *a, **k):
        if site.name == "B" and a[3] == 2:  # rnd
            raise ConnectionResetError("connection to the SuperLink lost")
        return train(cfg, site, *a, **k)

    monkeypatch.setattr(local, "local_round", flaky)
    args = list(fed_cohort.overrides) + TINY + SITES + ["federated.rounds=3"]
    line = _one_line(capsys, ["pretrain", _cfg(tmp_path), *args, "--out", str(tmp_path / "run")])
    assert "site 'B' failed in round 2" in line and "ConnectionResetError" in line and "--resume" in line
    assert load_task(tmp_path / "run", fed_config(fed_cohort, SITES))[1]["extra"]["round"] == 1


def test_silent_site_is_one_line_not_a_hang():
    from flwr.app import ConfigRecord, Message, MessageType, RecordDict

    from clinfusion.config.schema import FederatedConfig
    from clinfusion.federated.runtime import LocalGrid

    LocalGrid(apps.client_app, [])  # sets the process's Flower task identity
    sent = [Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=n, message_type=MessageType.TRAIN)
            for n in (1, 2)]
    with pytest.raises(TrainingError) as e:
        apps._check_replies(sent, [], {1: "north", 2: "south"}, "round 4", FederatedConfig(round_timeout_s=30), 3)
    msg = str(e.value)
    assert "'north', 'south' did not answer round 4" in msg and "round_timeout_s=30" in msg and "round 3" in msg
    with pytest.raises(TrainingError):  # too few SuperNodes: bounded wait, then one line
        apps.wait_for_nodes(LocalGrid(apps.client_app, [{"site": "x"}]), 2, 0.3)


def test_a_node_the_superlink_reports_unavailable_is_named_by_its_site():
    """The SuperLink answers for a SuperNode whose heartbeat stopped, with its own node id as the
    source: the line must still name the site the message went to."""
    from flwr.app import ConfigRecord, Message, MessageType, RecordDict
    from flwr.server.superlink.linkstate.utils import create_message_error_unavailable_res_message

    from clinfusion.config.schema import FederatedConfig
    from clinfusion.federated.runtime import LocalGrid

    LocalGrid(apps.client_app, [])  # sets the process's Flower task identity
    sent = [Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=n, message_type=MessageType.TRAIN)
            for n in (7, 9)]
    for m in sent:
        m.metadata.__dict__["_message_id"] = m.object_id  # as a Grid does when it pushes them
    reply = create_message_error_unavailable_res_message(sent[1].metadata, "node_unavail")
    assert reply.metadata.src_node_id not in (7, 9)  # the SuperLink's own id
    with pytest.raises(TrainingError) as e:
        apps._check_replies(sent, [reply], {7: "north", 9: "south"}, "round 2", FederatedConfig(round_timeout_s=30), 1)
    msg = str(e.value)
    assert msg.startswith("site 'south' failed in round 2: Error: Node Unavailable") and "holds round 1" in msg


def test_finetune_on_a_federated_run(fed_cohort, tmp_path):
    args = list(fed_cohort.overrides) + TINY + SITES
    assert main(["pretrain", _cfg(tmp_path), *args, "--out", str(tmp_path / "fed")]) == 0
    for name in ("config.yaml", "preprocessing.json", "metrics.csv", "checkpoints/last/model.safetensors",
                 "checkpoints/best/model.safetensors"):
        assert (tmp_path / "fed" / name).is_file(), name
    ft = ["finetune.heads=[linear]", "finetune.baselines=[]", "finetune.epochs=1", "finetune.batch_size=4",
          "evaluation.bootstrap=0", "split.val_fraction=0.2", "split.test_fraction=0.2"]
    assert main(["finetune", _cfg(tmp_path), *args, *ft, "--pretrained", str(tmp_path / "fed"), "--out", str(tmp_path / "ft")]) == 0
    assert (tmp_path / "ft" / "metrics.json").is_file()
    # the probe reads the federated weights, unchanged: compare with the checkpoint file itself
    from safetensors.torch import load_file

    from clinfusion.downstream.inference import load_finetuned

    saved = load_file(str(tmp_path / "fed" / "checkpoints" / "best" / "model.safetensors"))
    saved = {k.removeprefix("model."): v for k, v in saved.items()}
    got = load_finetuned(tmp_path / "ft", head="linear").classifier.model.state_dict()
    assert got and all(torch.equal(got[k], saved[k]) for k in got)
    emb = tmp_path / "emb.parquet"
    assert main(["embed", str(tmp_path / "fed"), "--cohort", str(fed_cohort.table), "--out", str(emb)]) == 0
    assert len(pd.read_parquet(emb)) == len(pd.read_csv(fed_cohort.table))


def test_client_side_dp_clips_each_update_and_is_recorded(fed_cohort, tmp_path):
    from clinfusion.datasets.preprocess import TabularPreprocessor
    from clinfusion.federated.local import build_task
    from clinfusion.seed import seed_everything

    def update_norm(extra):
        # FedAvg: the global change is the mean of the (clipped) site updates
        cfg = fed_config(fed_cohort, SITES + ["federated.rounds=1", "federated.strategy=fedavg", *extra])
        run = run_pretrain(cfg, tmp_path / f"run{len(extra)}")
        seed_everything(cfg.seed)  # the server's initial weights, rebuilt
        init = build_task(cfg, TabularPreprocessor.load(run / "preprocessing.json").schema).state_dict()
        task, state = load_task(run, cfg)
        delta = [(v.double() - init[k].double()).flatten() for k, v in task.state_dict().items()
                 if v.is_floating_point()]  # weights and statistics; BatchNorm's step counters are not
        return float(torch.cat(delta).norm()), state["extra"], cfg

    plain, _, _ = update_norm([])
    clipped, extra, cfg = update_norm(["federated.dp_noise_multiplier=0.000001", "federated.dp_clipping_norm=0.05"])
    assert plain > 0.5 and clipped <= 0.05 + 1e-3  # every site's update clipped to 0.05: so is their mean
    # a bound that never binds (noise std 1e-9 x 1000): the DP path passes every site's update on whole
    loose, _, _ = update_norm(["federated.dp_noise_multiplier=0.000000001", "federated.dp_clipping_norm=1000",
                               "federated.rounds=1"])
    assert loose == pytest.approx(plain, rel=1e-3)
    assert extra["dp_noise_multiplier"] == 1e-6 and extra["dp_clipping_norm"] == 0.05
    assert cfg.federated.dp_clipping_norm == 0.05


def test_fedbn_keeps_each_sites_normalisation_layers(fed_cohort, tmp_path):
    from clinfusion.federated.runtime import LocalGrid
    from clinfusion.federated.sites import site_specs
    from clinfusion.training.rundir import prepare_run_dir

    cfg = fed_config(fed_cohort, SITES + ["federated.keep_local_norm=true", "federated.strategy=fedprox"])
    grid = LocalGrid(apps.client_app, [{"site": s.name, "table": s.table} for s in site_specs(cfg)])
    run = apps.serve(grid, cfg, prepare_run_dir(tmp_path / "run", False))
    task, _ = load_task(run, cfg)
    local = {ctx.node_config["site"]: ctx.state["local_norm"].to_torch_state_dict() for ctx in grid.contexts.values()}
    # FedAvg weights: each site's training rows, counted here from the table (no validation split in TINY)
    rows = pd.read_csv(fed_cohort.table)["site"].astype(str).value_counts()
    assert rows.nunique() > 1  # unequal sites, or any weights would do
    logged = pd.read_csv(run / "metrics.csv").query("round == 2 and site != 'all'").set_index("site")["examples"]
    assert logged.to_dict() == {s: rows[s] for s in logged.index}
    local = [local[s] for s in rows.index]
    weights = rows.to_numpy().astype(float)
    key = next(k for k in local[0] if k.endswith("N.weight"))  # a BatchNorm scale of the image encoder
    assert not torch.allclose(local[0][key], local[1][key])  # each site kept its own
    mean = sum(w * loc[key] for w, loc in zip(weights / weights.sum(), local))
    torch.testing.assert_close(task.state_dict()[key], mean.float())  # the saved model: their average
