"""Where the Flower apps run: ``federated.runtime=simulation`` or ``deployment``.

* ``simulation``: every site on this machine, one after another in this process. Flower's
  own simulation engine (``flwr.simulation.run_simulation``) needs Ray (``flwr[simulation]``),
  which is not part of clinfusion's stack; :class:`LocalGrid` is a small implementation of
  Flower's ``Grid`` interface that delivers each ``Message`` to the same ``client_app`` with one
  persistent ``Context`` per site, so the server code (:func:`~clinfusion.federated.apps.serve`,
  Flower's strategies and DP wrapper) and the client code are exactly those of a deployment.
* ``deployment``: the run is submitted with ``flwr run`` to a running SuperLink
  (``federated.superlink``); the SuperLink's ``flwr-serverapp`` runs
  :data:`~clinfusion.federated.apps.server_app`, each site's SuperNode runs
  :data:`~clinfusion.federated.apps.client_app` on the table named in its ``--node-config``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid

from clinfusion.config.schema import RunConfig
from clinfusion.errors import ConfigError, TrainingError


class LocalGrid(Grid):
    """Flower ``Grid`` over in-process sites: node ``i + 1`` runs ``app`` with
    ``node_configs[i]`` (``{"site": name, "table": path}``) and its own persistent state.
    A site raising an exception answers an error reply, as a SuperNode would."""

    def __init__(self, app: ClientApp, node_configs: List[Dict[str, Any]]) -> None:
        self.app = app
        self.contexts = {i + 1: Context(run_id=1, node_id=i + 1, node_config=dict(nc), state=RecordDict(),
                                        run_config={}) for i, nc in enumerate(node_configs)}
        self.replies: Dict[str, Message] = {}
        self._run: Any = None
        from flwr.common.constant import SUPERLINK_NODE_ID
        from flwr.supercore.task_identity import TaskIdentity

        for attr, value in (("_run_id", 1), ("_node_id", SUPERLINK_NODE_ID), ("_task_id", 0)):
            if getattr(TaskIdentity, attr) is None:  # what a SuperLink sets in its ServerApp process
                setattr(TaskIdentity, attr, value)

    def set_run(self, run: Any) -> None:
        self._run = run

    @property
    def run(self) -> Any:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: Optional[float] = None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg_id = uuid.uuid4().hex
            msg.metadata.__dict__["_message_id"] = msg_id  # as Flower's in-memory grid does
            try:
                reply = self.app(msg, self.contexts[msg.metadata.dst_node_id])
            except Exception as exc:  # a failing site: an error reply, like a SuperNode's
                reply = Message(Error(code=1, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)
            self.replies[msg_id] = reply
            ids.append(msg_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self.replies.pop(i) for i in list(message_ids) if i in self.replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: Optional[float] = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


def run_federated(cfg: RunConfig, out_dir: str | os.PathLike, overwrite: bool = False, resume: bool = False,
                  config_path: Optional[str] = None, overrides: Iterable[str] = ()) -> Path:
    """``clinfusion pretrain`` with ``federated.runtime`` set; returns the run directory."""
    if cfg.federated.runtime == "deployment":
        return submit_deployment(cfg, out_dir, overwrite, resume)
    from clinfusion.federated.apps import client_app, serve
    from clinfusion.federated.sites import site_specs
    from clinfusion.training.rundir import discard_if_unresumable, prepare_run_dir

    specs = site_specs(cfg)
    if len(specs) < cfg.federated.min_sites:
        raise ConfigError(f"{len(specs)} site(s) ({', '.join(s.name for s in specs)}) < federated.min_sites="
                          f"{cfg.federated.min_sites}: add sites or lower federated.min_sites")
    run_dir = prepare_run_dir(out_dir, overwrite, resume)
    grid = LocalGrid(client_app, [{"site": s.name, "table": s.table} for s in specs])
    with discard_if_unresumable(run_dir, keep=resume):
        return serve(grid, cfg, run_dir, resume)


# --------------------------------------------------------------------------- deployment
APP_TOML = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "clinfusion-federated"
version = "1.0.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "clinfusion"

[tool.flwr.app.components]
serverapp = "clinfusion.federated.apps:server_app"
clientapp = "clinfusion.federated.apps:client_app"

[tool.flwr.app.config]
config = ""
out = ""
overrides = ""
resume = false
overwrite = false
"""


def write_app(folder: Path) -> Path:
    """A minimal Flower App folder (``pyproject.toml`` naming clinfusion's apps) for ``flwr run``;
    clinfusion itself must be installed where the SuperLink and SuperNodes run."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(APP_TOML)
    return folder


def submit_deployment(cfg: RunConfig, out_dir: str | os.PathLike, overwrite: bool, resume: bool,
                      timeout_s: Optional[float] = None) -> Path:
    """Submit the run to the SuperLink at ``federated.superlink`` with ``flwr run --stream``.

    The resolved config is written next to the run folder (the ServerApp reads it by path) and
    a throw-away ``FLWR_HOME`` names the SuperLink connection (address, TLS), so the user's own
    Flower configuration is neither needed nor touched.

    Raises:
        TrainingError: ``flwr`` missing, the SuperLink unreachable, or the run failing (its
            one-line error, else the last line of the log).
    """
    from clinfusion.config.loader import save_config
    from clinfusion.training.rundir import check_run_dir

    out = Path(out_dir).resolve()
    check_run_dir(out, overwrite, resume)  # the ServerApp would refuse it too, but only in the SuperLink's log
    fed = cfg.federated
    out.parent.mkdir(parents=True, exist_ok=True)
    shared = out.parent / f".{out.name}.federated-config.yaml"
    save_config(cfg, shared)
    with tempfile.TemporaryDirectory(prefix="clinfusion-flwr-") as tmp:
        app = write_app(Path(tmp) / "app")
        home = Path(tmp) / "flwr-home"
        home.mkdir()
        tls = "insecure = true" if fed.insecure else f"root-certificates = '{fed.root_certificates or ''}'"
        (home / "config.toml").write_text(f"[superlink]\ndefault = 'clinfusion'\n\n[superlink.clinfusion]\n"
                                          f"address = '{fed.superlink}'\n{tls}\n")
        run_config = (f"config='{shared}' out='{out}' resume={str(resume).lower()} "
                      f"overwrite={str(overwrite).lower()}")
        flwr = shutil.which("flwr") or str(Path(sys.executable).with_name("flwr"))
        cmd = [flwr, "run", str(app), "clinfusion", "--run-config", run_config, "--stream"]
        limit = timeout_s or fed.round_timeout_s * (fed.rounds + 1) + fed.connect_timeout_s
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit,
                                  env={**os.environ, "FLWR_HOME": str(home)})
        except FileNotFoundError:
            raise TrainingError("the `flwr` command is not on PATH: install flwr in this environment") from None
        except subprocess.TimeoutExpired:
            raise TrainingError(f"the federated run at {fed.superlink} did not finish within {limit:g}s: see the "
                                f"SuperLink log") from None
        finally:
            shared.unlink(missing_ok=True)
    err = out / "error.txt"
    if err.is_file():
        raise TrainingError(err.read_text().strip())
    if proc.returncode != 0 or not (out / "checkpoints" / "last").is_dir():
        lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        raise TrainingError(f"flwr run against the SuperLink at {fed.superlink} failed: "
                            f"{lines[-1] if lines else proc.returncode}")
    return out
