"""The Flower apps: ``client_app`` (runs at each site) and ``server_app`` + :func:`serve` (the server).

Both runtimes run this same code: the simulation runtime hands :func:`serve` an in-process
grid (:mod:`clinfusion.federated.runtime`); the deployment runtime runs ``server_app`` in the
SuperLink's ``flwr-serverapp`` process and ``client_app`` in each SuperNode.

Protocol (Flower Message API, ``flwr`` >= 1.22):

1. ``query`` -> each site answers its name and the sufficient statistics of its training rows
   (:mod:`clinfusion.federated.stats`); the server merges them into ``preprocessing.json``.
2. per round ``r``: the strategy (FedAvg / FedProx / FedAdam, optionally wrapped in Flower's
   ``DifferentialPrivacyClientSideFixedClipping``) samples sites and sends them the global
   weights (``train``); each trains locally (:func:`clinfusion.federated.local.local_round`)
   and answers its weights, its example count and losses; the strategy aggregates; the server
   writes ``metrics.csv`` rows and an atomic checkpoint, so ``--resume`` continues after the
   last finished round.

A site's problem (no rows, other columns) comes back as one line and stops the run; a site
that does not answer within ``federated.round_timeout_s`` or fails mid-round stops it too
(one line naming the site; ``checkpoints/last`` keeps the last finished round).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import yaml
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import (DifferentialPrivacyClientSideFixedClipping, FedAdam, FedAvg, FedProx,
                                     Strategy)

from clinfusion.config.schema import FederatedConfig, RunConfig
from clinfusion.errors import ClinfusionError, ConfigError, DataError, TrainingError
from clinfusion.registry import Registry

STRATEGIES = Registry("federated strategy")
LOSS_TERMS = ("clip_loss", "simclr_loss", "byol_loss", "scarf_loss", "masked_features_loss")
COLUMNS = ("round", "site", "examples", "loss") + LOSS_TERMS + ("bytes_up", "bytes_down", "seconds")


# --------------------------------------------------------------------------- strategies
@STRATEGIES.register("fedavg")
def _fedavg(fed: FederatedConfig, n: int) -> Strategy:
    return FedAvg(**_sampling(fed, n))


@STRATEGIES.register("fedprox")
def _fedprox(fed: FederatedConfig, n: int) -> Strategy:
    return FedProx(**_sampling(fed, n), proximal_mu=fed.mu)


@STRATEGIES.register("fedadam")
def _fedadam(fed: FederatedConfig, n: int) -> Strategy:
    return FedAdam(**_sampling(fed, n), eta=fed.server_lr)


def _sampling(fed: FederatedConfig, n: int) -> Dict[str, Any]:
    need = min(fed.min_sites, n)
    return {"fraction_train": fed.fraction_sites, "fraction_evaluate": 0.0, "min_train_nodes": need,
            "min_available_nodes": need}


def make_strategy(fed: FederatedConfig, n_sites: int) -> Strategy:
    """The configured Flower strategy; wrapped in client-side fixed-clipping DP when
    ``dp_noise_multiplier > 0``."""
    strategy = STRATEGIES.create(fed.strategy, fed, n_sites)
    if fed.dp_noise_multiplier > 0:
        sampled = max(int(n_sites * fed.fraction_sites), min(fed.min_sites, n_sites))
        strategy = DifferentialPrivacyClientSideFixedClipping(strategy, fed.dp_noise_multiplier, fed.dp_clipping_norm,
                                                              sampled)
    return strategy


def _inner(strategy: Strategy) -> Strategy:
    return getattr(strategy, "strategy", strategy)


def strategy_state(strategy: Strategy) -> Dict[str, Any]:
    """Server-optimizer state to checkpoint (FedAdam moments); empty for FedAvg/FedProx."""
    s = _inner(strategy)
    out: Dict[str, Any] = {}
    for name in ("m_t", "v_t"):
        if getattr(s, name, None):
            out[name] = {k: torch.from_numpy(np.asarray(v).copy()) for k, v in getattr(s, name).items()}
    return out


def load_strategy_state(strategy: Strategy, state: Dict[str, Any]) -> None:
    s = _inner(strategy)
    for name, arrays in state.items():
        setattr(s, name, {k: v.numpy() for k, v in arrays.items()})


# --------------------------------------------------------------------------- client side
_SITES: Dict[Tuple[str, str, str], Any] = {}  # (site, table, config hash) -> SiteData (one per process)
_DATASETS: Dict[Tuple[str, str], Any] = {}  # (site key, preprocessing hash) -> CohortDataset


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _config_from(record: ConfigRecord) -> RunConfig:
    from clinfusion.config.loader import validate_config

    return validate_config(yaml.safe_load(str(record["run-config"])), "federated run config")


def _site_of(context: Context, cfg: RunConfig, cfg_text: str) -> Any:
    from clinfusion.federated.sites import load_site

    name = str(context.node_config.get("site", ""))
    if not name:
        raise ConfigError("this SuperNode has no site name: start it with --node-config \"site='NAME' table='FILE'\"")
    table = str(context.node_config.get("table") or cfg.cohort.table)
    key = (name, table, _digest(cfg_text))
    if key not in _SITES:
        _SITES[key] = load_site(cfg, name, table)
    return _SITES[key]


def _preprocessor(text: str) -> Any:
    """The merged preprocessing sent by the server (read through the one JSON loader)."""
    import tempfile

    from clinfusion.datasets.preprocess import TabularPreprocessor

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "preprocessing.json").write_text(text)
        return TabularPreprocessor.load(Path(tmp) / "preprocessing.json")


def _reply(msg: Message, name: str, error: Optional[str] = None, **records: Any) -> Message:
    site = ConfigRecord({"name": name, **({"error": error} if error else {})})
    return Message(RecordDict({**records, "site": site}), reply_to=msg)


def _dp_mod(msg: Message, ctx: Context, call_next: Any) -> Message:
    """Flower's ``fixedclipping_mod`` when the server's DP wrapper asked for clipping."""
    records = msg.content.config_records
    if msg.metadata.message_type == MessageType.TRAIN and any("clipping_norm" in r for r in records.values()):
        return fixedclipping_mod(msg, ctx, call_next)
    return call_next(msg, ctx)


client_app = ClientApp(mods=[_dp_mod])


@client_app.query()
def site_statistics(msg: Message, context: Context) -> Message:
    """Answer the site's name and preprocessing statistics (no row leaves the site)."""
    from clinfusion.federated.stats import site_stats

    name = str(context.node_config.get("site", "?"))
    try:
        record = msg.content["config"]
        cfg = _config_from(record)
        site = _site_of(context, cfg, str(record["run-config"]))
        stats = site_stats(site.cohort, site.train_rows, cfg.federated.min_category_count)
    except ClinfusionError as exc:
        return _reply(msg, name, error=str(exc))
    return _reply(msg, site.name, stats=ConfigRecord({"json": json.dumps(stats)}))


@client_app.train()
def site_train(msg: Message, context: Context) -> Message:
    """One local round on the site's training rows; answers weights, example count, losses."""
    from clinfusion.datasets.builder import build_dataset
    from clinfusion.federated.local import local_round, norm_keys

    name = str(context.node_config.get("site", "?"))
    t0 = time.perf_counter()
    try:
        record = msg.content["config"]
        cfg = _config_from(record)
        site = _site_of(context, cfg, str(record["run-config"]))
        pre_text = str(record["preprocessing"])
        key = ((site.name, str(context.node_config.get("table", ""))), _digest(pre_text))
        pre = _preprocessor(pre_text)
        if key not in _DATASETS:
            views = cfg.pretrain.losses.simclr > 0 or cfg.pretrain.losses.byol > 0
            _DATASETS[key] = build_dataset(site.cohort, pre, site.train_rows, cfg.image, views=views,
                                           micle=cfg.pretrain.micle, seed=cfg.seed)
        received = msg.content["arrays"]
        keep = cfg.federated.keep_local_norm and "local_norm" in context.state.array_records
        local_norm = context.state["local_norm"].to_torch_state_dict() if keep else None
        state, losses = local_round(cfg, site, _DATASETS[key], pre.schema, received.to_torch_state_dict(),
                                    int(record["server-round"]), local_norm)
    except ClinfusionError as exc:
        return _reply(msg, name, error=str(exc))
    if cfg.federated.keep_local_norm:
        from clinfusion.federated.local import build_task

        keys = norm_keys(build_task(cfg, pre.schema))
        context.state["local_norm"] = ArrayRecord({k: state[k] for k in keys})
    metrics = {"num-examples": int(len(site.train_rows)), "seconds": time.perf_counter() - t0}
    metrics.update({k: float(losses.get(k, float("nan"))) for k in ("loss",) + LOSS_TERMS})
    return _reply(msg, site.name, arrays=ArrayRecord({k: state[k] for k in received.keys()}),
                  metrics=MetricRecord(metrics))


# --------------------------------------------------------------------------- server side
def wait_for_nodes(grid: Grid, need: int, timeout_s: float) -> List[int]:
    """Node ids once ``need`` are connected; TrainingError after ``timeout_s`` (never hangs)."""
    end = time.monotonic() + timeout_s
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= need:
            return nodes
        if time.monotonic() > end:
            raise TrainingError(f"only {len(nodes)} of federated.min_sites={need} sites connected within "
                                f"federated.connect_timeout_s={timeout_s:g}s: start the missing SuperNodes or "
                                f"lower federated.min_sites")
        time.sleep(0.2)


def _site_error(reply: Message) -> Optional[str]:
    site = reply.content.config_records.get("site") if not reply.has_error() else None
    if site is None or "error" not in site:
        return None
    err, name = str(site["error"]), str(site["name"])
    return err if err.startswith("site ") else f"site {name!r}: {err}"


def _check_replies(sent: List[Message], replies: List[Message], names: Dict[int, str], what: str,
                   fed: FederatedConfig, done: int) -> None:
    """One line for the first problem: a site's own error, a failed site, a silent site.

    A reply is matched to its site through the message it answers: when a SuperNode stops
    sending heartbeats, the SuperLink itself answers for it ("Node Unavailable") with its own
    node id as the source."""
    for reply in replies:
        err = _site_error(reply)
        if err:
            raise DataError(err)
    later = f"; checkpoints/last holds round {done}: restart the site and continue with --resume" if done else ""
    to = {m.metadata.message_id: m.metadata.dst_node_id for m in sent}

    def site_of(reply: Message) -> int:
        return to.get(reply.metadata.reply_to_message_id, reply.metadata.src_node_id)

    for reply in replies:
        if reply.has_error():
            node = site_of(reply)
            reason = str(reply.error.reason).strip().splitlines()
            raise TrainingError(f"site {names.get(node, node)!r} failed in {what}: {reason[-1] if reason else '?'}"
                                f"{later}")
    answered = {site_of(r) for r in replies}
    silent = [names.get(m.metadata.dst_node_id, str(m.metadata.dst_node_id)) for m in sent
              if m.metadata.dst_node_id not in answered]
    if silent:
        raise TrainingError(f"site(s) {', '.join(map(repr, silent))} did not answer {what} within "
                            f"federated.round_timeout_s={fed.round_timeout_s:g}s (dropped out){later}")


def query_statistics(grid: Grid, nodes: List[int], cfg_text: str, fed: FederatedConfig) -> Dict[int, Dict[str, Any]]:
    """``{node: {"site": name, "stats": site_stats}}`` from every connected site."""
    sent = [Message(RecordDict({"config": ConfigRecord({"run-config": cfg_text})}), dst_node_id=n,
                    message_type=MessageType.QUERY) for n in nodes]
    replies = list(grid.send_and_receive(sent, timeout=fed.round_timeout_s))
    _check_replies(sent, replies, {}, "the statistics query", fed, 0)
    out = {}
    for r in replies:
        name = str(r.content["site"]["name"])
        out[r.metadata.src_node_id] = {"site": name, "stats": json.loads(str(r.content["stats"]["json"]))}
    names = [v["site"] for v in out.values()]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"two SuperNodes call themselves site {dup[0]!r}: give each --node-config a distinct site")
    return out


class RoundLog:
    """``metrics.csv``: one row per (round, site) and a row ``site=all`` per round."""

    def __init__(self, run_dir: Path, resume_round: Optional[int]) -> None:
        self.path = run_dir / "metrics.csv"
        if resume_round is None or not self.path.is_file():
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(COLUMNS)
            return
        with open(self.path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["round"].isdigit() and int(r["round"]) <= resume_round]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS)
            w.writeheader()
            w.writerows(rows)

    def write(self, rows: List[Dict[str, Any]]) -> None:
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
            for r in rows:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _round_rows(rnd: int, replies: List[Message], names: Dict[int, str], down: int, seconds: float) -> List[Dict]:
    rows = []
    for r in sorted(replies, key=lambda m: names.get(m.metadata.src_node_id, "")):
        m = r.content["metrics"]
        row = {"round": rnd, "site": names.get(r.metadata.src_node_id, r.metadata.src_node_id),
               "examples": int(m["num-examples"]), "bytes_up": r.content["arrays"].count_bytes(), "bytes_down": down,
               "seconds": float(m["seconds"])}
        row.update({k: float(m[k]) for k in ("loss",) + LOSS_TERMS if np.isfinite(float(m[k]))})
        rows.append(row)
    n = sum(r["examples"] for r in rows)
    total = {"round": rnd, "site": "all", "examples": n, "bytes_up": sum(r["bytes_up"] for r in rows),
             "bytes_down": down * len(rows), "seconds": seconds}
    for k in ("loss",) + LOSS_TERMS:
        if all(k in r for r in rows):
            total[k] = float(sum(r[k] * r["examples"] for r in rows) / max(n, 1))
    return rows + [total]


def _save_round(run_dir: Path, task: Any, rnd: int, cfg: RunConfig, strategy: Strategy) -> None:
    """Atomic ``checkpoints/last`` and ``checkpoints/best`` (no validation: best = latest)."""
    from clinfusion.training.checkpoint import save_checkpoint

    heads = {k: v for k, v in task.state_dict().items() if not k.startswith("model.")}
    fed = cfg.federated
    extra = {"round": rnd, "seed": cfg.seed, "task_state": heads, "strategy": strategy_state(strategy),
             "dp_noise_multiplier": fed.dp_noise_multiplier,
             "dp_clipping_norm": fed.dp_clipping_norm if fed.dp_noise_multiplier > 0 else 0.0}
    for name in ("last", "best"):
        save_checkpoint(run_dir / "checkpoints" / name, task.model, step=rnd, epoch=rnd, extra=extra)


def _resume_round(run_dir: Path, task: Any, cfg: RunConfig, strategy: Strategy) -> int:
    """Load ``checkpoints/last`` into ``task``/``strategy``; the last finished round (0: none)."""
    from clinfusion.training.checkpoint import load_checkpoint, resolve_checkpoint

    path = resolve_checkpoint(run_dir / "checkpoints" / "last")
    if path is None:
        print(f"resume: no checkpoint in {run_dir / 'checkpoints' / 'last'}; starting from round 1")
        return 0
    state = load_checkpoint(path, task.model)
    extra = state["extra"]
    if int(extra.get("seed", cfg.seed)) != cfg.seed:
        raise ConfigError(f"seed={cfg.seed} differs from the seed {extra['seed']} of {path}: resume with the same "
                          f"seed or start again with --overwrite")
    task.load_state_dict(extra.get("task_state", {}), strict=False)
    load_strategy_state(strategy, extra.get("strategy", {}))
    return int(extra["round"])


def serve(grid: Grid, cfg: RunConfig, run_dir: Path, resume: bool = False) -> Path:
    """The server side of a federated pretraining run into ``run_dir`` (already prepared).

    Raises:
        DataError: a site's data problem (one line naming the site).
        TrainingError: too few sites connected, or a site failed / dropped out mid-round.
    """
    from clinfusion.config.loader import dump_config, save_config
    from clinfusion.datasets.preprocess import TabularPreprocessor
    from clinfusion.federated.local import build_task
    from clinfusion.federated.stats import merge_stats
    from clinfusion.seed import seed_everything

    fed = cfg.federated
    cfg_text = dump_config(cfg)
    nodes = wait_for_nodes(grid, fed.min_sites, fed.connect_timeout_s)
    answers = query_statistics(grid, nodes, cfg_text, fed)
    names = {n: a["site"] for n, a in answers.items()}
    pre_path = run_dir / "preprocessing.json"
    if resume and pre_path.is_file():
        pre = TabularPreprocessor.load(pre_path)
    else:
        pre = merge_stats({a["site"]: a["stats"] for a in answers.values()}, cfg.cohort)
        pre.save(pre_path)
    save_config(cfg, run_dir / "config.yaml")
    seed_everything(cfg.seed)
    task = build_task(cfg, pre.schema)
    strategy = make_strategy(fed, len(nodes))
    done = _resume_round(run_dir, task, cfg, strategy) if resume else 0
    log = RoundLog(run_dir, done if resume else None)
    arrays = ArrayRecord(task.state_dict())
    pre_text = json.dumps(pre.to_dict())
    print(f"federated pretraining: {len(nodes)} sites ({', '.join(sorted(names.values()))}), strategy {fed.strategy}, "
          f"rounds {done + 1}..{fed.rounds}")
    for rnd in range(done + 1, fed.rounds + 1):
        t0 = time.perf_counter()
        random.seed(cfg.seed * 7_919 + rnd)  # site sampling of round r depends only on (seed, r)
        config = ConfigRecord({"run-config": cfg_text, "preprocessing": pre_text})
        sent = list(strategy.configure_train(rnd, arrays, config, grid))
        replies = list(grid.send_and_receive(sent, timeout=fed.round_timeout_s))
        _check_replies(sent, replies, names, f"round {rnd}", fed, rnd - 1)
        new, _ = strategy.aggregate_train(rnd, replies)
        if new is None:
            raise TrainingError(f"round {rnd}: no site update could be aggregated; checkpoints/last holds round {rnd - 1}")
        down = arrays.count_bytes()
        task.load_state_dict(new.to_torch_state_dict())
        arrays = ArrayRecord(task.state_dict())  # the model's dtypes: what a resumed run starts from too
        rows = _round_rows(rnd, replies, names, down, time.perf_counter() - t0)
        log.write(rows)  # before the checkpoint: a resume drops rows of rounds after it
        _save_round(run_dir, task, rnd, cfg, strategy)
        print(f"round {rnd}/{fed.rounds}: loss {rows[-1].get('loss', float('nan')):.4f} over {len(replies)} sites, "
              f"{rows[-1]['bytes_up'] / 2 ** 20:.2f} MiB up, {rows[-1]['seconds']:.1f}s")
    return run_dir


# --------------------------------------------------------------------------- deployment ServerApp
server_app = ServerApp()


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    """Deployment entry point: run config ``config`` (YAML path), ``out`` (run folder),
    ``overrides`` (``;``-separated dotted overrides), ``resume`` / ``overwrite``."""
    from clinfusion.config import load_config
    from clinfusion.training.rundir import prepare_run_dir

    rc = context.run_config
    overrides = [o for o in str(rc.get("overrides", "")).split(";") if o.strip()]
    cfg = load_config(str(rc["config"]), overrides)
    resume, overwrite = bool(rc.get("resume", False)), bool(rc.get("overwrite", False))
    run_dir = prepare_run_dir(str(rc["out"]), overwrite, resume)
    error = run_dir / "error.txt"
    error.unlink(missing_ok=True)  # a failed earlier run's line must not outlive the run that resumes it
    try:
        serve(grid, cfg, run_dir, resume)
    except Exception as exc:  # one line in the run folder (read by submit_deployment) and the SuperLink log
        line = str(exc) if isinstance(exc, ClinfusionError) else \
            f"the ServerApp failed: {type(exc).__name__}: {exc} (see the SuperLink log)"
        error.write_text(f"{line}\n")
        print(f"error: {line}")
        # an Exception (not SystemExit): Flower's ServerApp runner then reports the run FAILED at once;
        # a SystemExit skipped that report and `flwr run` waited for the task's heartbeat to expire (~60 s)
        raise RuntimeError(line) from exc
