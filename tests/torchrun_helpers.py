"""Launch the real CLI under ``torchrun`` (2 CPU processes, gloo) and kill it mid-run.

Shared by tests/downstream and tests/training (``from tests.torchrun_helpers import ...``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

REPO = Path(__file__).resolve().parents[1]


def torchrun_cmd(args: List[str], nproc: int = 2) -> List[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node N -m clinfusion.cli.main ARGS``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "clinfusion.cli.main", *args]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    env.pop("WORLD_SIZE", None)
    return env


def run_torchrun(args: List[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run to the end; returns the completed process (stdout + stderr in ``.stdout``)."""
    return subprocess.run(torchrun_cmd(args), env=_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


def _descendants(pid: int) -> List[int]:
    """Every live descendant of ``pid`` (from ``/proc``: each process's parent is field 4 of its ``stat``)."""
    children: dict = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` (started with ``start_new_session``) and every process under it. torchrun's
    workers do not stay in its process group, so ``killpg`` alone leaves them running to the end of
    the run; the group is stopped first so that its agent cannot start or reap workers meanwhile."""
    os.killpg(proc.pid, signal.SIGSTOP)
    for pid in _descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_when(args: List[str], ready: Callable[[], bool], timeout: float = 600, poll: float = 0.02) -> bool:
    """Start the run and SIGKILL it and all its processes (:func:`kill_tree`) as soon as ``ready()`` is True.

    Returns True when it was killed, False when it ended first.
    """
    proc = subprocess.Popen(torchrun_cmd(args), env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    try:
        while proc.poll() is None and time.time() - t0 < timeout:
            if ready():
                kill_tree(proc)
                return True
            time.sleep(poll)
        return False
    finally:
        if proc.poll() is None:
            kill_tree(proc)


def checkpoint_step(ckpt: Path) -> Optional[tuple]:
    """``(step, step_in_epoch)`` of ``ckpt/state.pt``, None while absent or being swapped in."""
    import torch

    try:
        state = torch.load(ckpt / "state.pt", weights_only=True)
    except Exception:
        return None
    return int(state["step"]), int(state["extra"].get("step_in_epoch", 0))


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (rendezvous endpoints, SuperLink addresses)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_after_mid_epoch_checkpoint(args: List[str], ckpt: Path) -> tuple:
    """Run the CLI under torchrun, SIGKILL it as soon as ``ckpt`` holds a checkpoint, and return that
    checkpoint's ``(step, step_in_epoch)``, asserting it was taken inside an epoch.

    The trigger is a cheap file test (the first checkpoint); the checkpoint is read once the run is
    dead and can no longer swap a new one in (``<ckpt>.old`` if the kill fell between the two renames
    of a swap)."""
    assert kill_when(args, lambda: (ckpt / "state.pt").is_file()), "the run ended before the kill"
    got = checkpoint_step(ckpt) or checkpoint_step(ckpt.with_name(f"{ckpt.name}.old"))
    assert got is not None and got[1] > 0, f"the checkpoint left by the kill is not inside an epoch: {got}"
    return got


def assert_same_weights(a: Path, b: Path, atol: float = 1e-6) -> None:
    """The two ``model.safetensors`` files hold the same tensors (names and values)."""
    import torch
    from safetensors.torch import load_file

    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=atol), k
