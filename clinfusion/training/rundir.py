"""Run directories: create, refuse to clobber, allow ``--resume``.

Layout (see ``docs/ARCHITECTURE.md``): ``config.yaml``, ``splits.csv``,
``preprocessing.json``, ``checkpoints/{last,best}/``, ``metrics.csv``, ``retrieval.csv``,
``tensorboard/``.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from clinfusion.errors import ClinfusionError, RunDirError

MARKER = ".clinfusion-run"  # written into every folder prepare_run_dir creates
RUN_FILES = (MARKER,)  # only a folder holding the marker is a clinfusion output (safe to replace): a user's
# own folder that merely has a config.yaml is never deleted by --overwrite


def check_run_dir(path: str | os.PathLike, overwrite: bool, resume: bool = False, resumable: bool = True) -> str:
    """What :func:`prepare_run_dir` would do with ``path``, without touching it: ``"new"``
    (absent or empty), ``"resume"`` or ``"overwrite"``; raises its :class:`RunDirError` otherwise.
    Lets a command that hands the run to another process (the federated deployment runtime)
    refuse a bad ``--out`` before anything starts."""
    p = Path(path)
    if overwrite and resume:
        raise RunDirError(f"run directory {str(p)!r}: pass either --overwrite or --resume, not both")
    if p.exists() and not p.is_dir():
        raise RunDirError(f"run directory {str(p)!r} is a file: choose another output folder")
    if not (p.is_dir() and any(p.iterdir())):
        return "new"
    if resume:
        return "resume"
    if not overwrite:
        how = " or --resume to continue" if resumable else " or choose another --out"
        raise RunDirError(f"run directory {str(p)!r} exists: pass --overwrite to replace it{how}")
    if not any((p / f).is_file() for f in RUN_FILES):
        raise RunDirError(f"run directory {str(p)!r} exists and is not a clinfusion run (no {' or '.join(RUN_FILES)}): "
                          f"refusing to delete it with --overwrite; choose another output folder")
    return "overwrite"


def prepare_run_dir(path: str | os.PathLike, overwrite: bool, resume: bool = False, resumable: bool = True) -> Path:
    """Create ``path`` (parents too) for a new run and return it.

    * absent or empty folder: created / used;
    * existing non-empty folder: ``resume=True`` keeps it as is (the caller continues from
      its checkpoint), ``overwrite=True`` deletes it first (only when it is a clinfusion run
      directory, i.e. holds the ``.clinfusion-run`` marker this function writes, so a
      mistyped ``--out`` never wipes other files);
      neither: :class:`RunDirError` (naming ``--resume`` only when the command is ``resumable``).

    Raises:
        RunDirError: exists without ``--overwrite``/``--resume``; both flags given; the path
            is a file; ``--overwrite`` on a folder that is not a run directory.
    """
    p = Path(path)
    mode = check_run_dir(p, overwrite, resume, resumable)
    if mode == "resume":
        return p
    if mode == "overwrite":
        shutil.rmtree(p)
    p.mkdir(parents=True, exist_ok=True)
    (p / MARKER).write_text("written by clinfusion; --overwrite may replace this folder\n")
    return p


@contextmanager
def discard_if_unresumable(run_dir: str | os.PathLike, keep: bool = False) -> Iterator[None]:
    """Around the work a command does in the run folder :func:`prepare_run_dir` just made: when it
    stops on a :class:`ClinfusionError` (a config or data problem found after the folder was made:
    a weights file, the loss weights, a NaN loss at the first step) before any checkpoint
    (``model.safetensors``) is written, the folder is removed, since nothing in it can be resumed,
    so the corrected command may use the same ``--out`` without ``--overwrite``. ``keep``: never
    touch it (a run continued with ``--resume``; a rank that does not own the folder)."""
    from clinfusion.models.checkpoint_files import MODEL_FILE

    try:
        yield
    except ClinfusionError:
        p = Path(run_dir)
        if not keep and (p / MARKER).is_file() and not any(p.rglob(MODEL_FILE)):
            shutil.rmtree(p, ignore_errors=True)
        raise
