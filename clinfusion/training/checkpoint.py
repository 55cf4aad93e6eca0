"""Atomic, pickle-free checkpoints: ``model.safetensors`` + ``state.pt``.

``save_checkpoint(dir, model, ...)`` writes both files into a temporary sibling folder,
then swaps it in with renames (``os.replace``), so a process killed mid-write leaves
the previous checkpoint loadable (at worst under ``<dir>.old``, which
:func:`resolve_checkpoint` falls back to). ``state.pt`` holds only tensors, numbers,
strings, lists and dicts and is read with ``torch.load(weights_only=True)``:

* ``optimizer``, ``scheduler``, ``scaler`` state dicts (when given);
* ``rng``: python ``random``, numpy (legacy MT19937 as a tensor), torch CPU and CUDA states;
* ``step``, ``epoch`` and ``extra`` (e.g. ``step_in_epoch`` for mid-epoch resume, the
  state of task-only modules, the best validation loss).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from safetensors.torch import save_model
from torch import nn

from clinfusion.errors import RunDirError

from clinfusion.models.checkpoint_files import (  # noqa: F401  (the file format, re-exported)
    MODEL_FILE,
    STATE_FILE,
    load_weights,
    resolve_checkpoint,
)


# --------------------------------------------------------------------------- RNG
def rng_state() -> Dict[str, Any]:
    """Every random generator's state, as weights_only-loadable values."""
    np_state = np.random.get_state(legacy=True)
    state: Dict[str, Any] = {
        "python": _to_lists(random.getstate()),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


# --------------------------------------------------------------------------- save / load
def save_checkpoint(directory: str | os.PathLike, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                    scheduler: Any = None, scaler: Any = None, step: int = 0, epoch: int = 0,
                    extra: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``model`` weights and the training state to ``directory`` atomically.

    Returns the checkpoint folder. ``extra`` must hold weights_only-safe values (tensors,
    numbers, strings, lists, dicts).
    """
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    old = final.with_name(f"{final.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_model(model, str(tmp / MODEL_FILE))
        state = {
            "step": int(step), "epoch": int(epoch), "rng": rng_state(), "extra": dict(extra or {}),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
        }
        torch.save(state, tmp / STATE_FILE)
        for f in tmp.iterdir():  # data on disk before the rename makes it visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(directory: str | os.PathLike, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                    scheduler: Any = None, scaler: Any = None, map_location: str | torch.device = "cpu",
                    restore_rng: bool = False) -> Dict[str, Any]:
    """Load weights into ``model`` (and the optional optimizer/scheduler/scaler) in place.

    Returns the state dict (``step``, ``epoch``, ``extra``, ``rng``, ...).

    Raises:
        RunDirError: folder or files missing, or a file is corrupt/partial/mismatched
            (names the file).
    """
    path = resolve_checkpoint(directory)
    if path is None:
        raise RunDirError(f"checkpoint {str(directory)!r} not found or incomplete (needs {MODEL_FILE} and {STATE_FILE}): "
                          f"pass a folder written by clinfusion")
    load_weights(path / MODEL_FILE, model, map_location)
    try:
        state = torch.load(path / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt / truncated / not a torch file
        raise RunDirError(f"checkpoint file {str(path / STATE_FILE)!r} is corrupt or incomplete "
                          f"({type(exc).__name__}): resume from another checkpoint or start again with --overwrite") from None
    try:
        if optimizer is not None and state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise RunDirError(f"checkpoint file {str(path / STATE_FILE)!r} does not match this run's optimizer "
                          f"({str(exc).splitlines()[0]}): start again with --overwrite") from None
    if restore_rng:
        set_rng_state(state["rng"])
    return state
