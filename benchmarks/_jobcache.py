"""Finished jobs of the long benchmarks, kept on disk: a run that is killed (or a session that
ends) loses only the jobs in flight, and the same command started again skips the finished ones.

A job's entry is keyed by the *code* it ran (a hash of every file under ``clinfusion/``,
``configs/``, ``pyproject.toml`` and ``benchmarks/*.py``, as they are on disk) and by its own
arguments, so an entry is reused only for the same code and the same job: any edit of the
library or of a benchmark starts afresh. Entries are pickles written atomically (temporary
file + rename), one file per job::

    <cache dir>/<code hash>/<benchmark>/<job hash>.pkl

The long benchmarks (``quality``, ``label_efficiency``, ``federated``, ``explain_quality``) use
``benchmarks/.cache`` by default (git ignores it; ``--tiny`` runs do not cache; ``--no-cache``
turns it off), through :class:`JobCache`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "benchmarks" / ".cache"
CODE_PATHS = ("clinfusion", "configs", "pyproject.toml")


def code_hash(root: Path = ROOT) -> str:
    """SHA-256 (16 hex digits) over the paths and bytes of the library files and the benchmarks' modules."""
    files = []
    for rel in CODE_PATHS:
        p = root / rel
        files += [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
    files += sorted((root / "benchmarks").glob("*.py"))
    h = hashlib.sha256()
    for f in sorted(set(files)):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def job_path(cache_dir: Path, benchmark: str, code: str, key: Any) -> Path:
    """Where the job ``key`` (any value with a stable ``repr``) of ``benchmark`` is kept."""
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:20]
    return Path(cache_dir) / code / benchmark / f"{digest}.pkl"


def keep_all(value: Any) -> bool:
    return True


def run_cached(path: Optional[Path], fn: Callable[..., Any], *args: Any, keep: Callable[[Any], bool] = keep_all) -> Any:
    """``fn(*args)``, or the value kept at ``path`` by an earlier run (``path=None``: no cache);
    a value is kept only when ``keep(value)`` (e.g. not a failure). A top-level function, so
    ``--jobs`` workers run it too (``fn`` and ``keep`` must be top-level functions as well)."""
    if path is not None and path.is_file():
        with open(path, "rb") as fh:
            return pickle.load(fh)
    value = fn(*args)
    if path is not None and keep(value):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(value, fh)
        os.replace(tmp, path)
    return value


def run_draws(args: Any, benchmark: str, fn: Callable[..., Any], b: Any, todo: Sequence[Tuple[int, int]],
              key: Tuple[Any, ...] = ()) -> Tuple[List[Any], "JobCache"]:
    """``fn(b, dims, seed, work, device[, threads])`` for each cohort draw ``(dims, seed)`` of ``todo`` on the
    device of ``args.device``, each kept under the job key ``(*key, dims, seed, device, threads)``
    (:func:`run_cached`); with ``args.jobs > 1`` in that many spawned processes, the slow 3D draws first so
    that no worker is left alone with one at the end. Returns the results in ``todo``'s order and the cache."""
    import tempfile

    import torch

    from benchmarks._device import pick_device

    device = pick_device(args.device).type
    threads = torch.get_num_threads() if device == "cpu" else None
    cache = JobCache(args, benchmark)
    paths = [cache.path((*key, d, s, device, threads), f"{d}D seed {s}") for d, s in todo]
    with tempfile.TemporaryDirectory(prefix=f"cf_{benchmark}_") as tmp:
        if args.jobs <= 1:
            return [run_cached(q, fn, b, d, s, Path(tmp), device) for (d, s), q in zip(todo, paths)], cache
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn"), initializer=exit_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futures = {i: pool.submit(run_cached, paths[i], fn, b, *todo[i], Path(tmp), device, threads)
                       for i in sorted(range(len(todo)), key=lambda i: -todo[i][0])}
            return [futures[i].result() for i in range(len(todo))], cache


def exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """A worker's initializer: a daemon thread ends the worker once ``parent`` is gone (a killed
    benchmark would otherwise leave its workers computing, at the cost of whatever runs next)."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def cache_dir(args: Any) -> Optional[Path]:
    """The cache folder for parsed ``args`` (``--tiny`` or ``--no-cache``: none)."""
    if getattr(args, "tiny", False) or getattr(args, "no_cache", False):
        return None
    return Path(getattr(args, "cache_dir", None) or DEFAULT_DIR)


class JobCache:
    """The job cache of one benchmark run: where each job is kept, and which jobs were read back.

    ``JobCache(args, "quality")``; ``path(key, label)`` -> where job ``key`` is kept (``None``
    when the run does not cache), noting ``label`` when an earlier run left it there; ``note()``
    -> the phrase a result's summary carries about those jobs (``""`` when none)."""

    def __init__(self, args: Any, benchmark: str) -> None:
        self.folder, self.benchmark = cache_dir(args), benchmark
        self.code = code_hash() if self.folder else ""
        self.read: List[str] = []

    def path(self, key: Any, label: str) -> Optional[Path]:
        if self.folder is None:
            return None
        p = job_path(self.folder, self.benchmark, self.code, key)
        if p.is_file():
            self.read.append(label)
        return p

    def note(self) -> str:
        if not self.read:
            return ""
        return f" ({', '.join(self.read)}: read from the job cache {self.code}, computed by an earlier run of the same code)"


def add_options(p: Any) -> None:
    """``--cache-dir`` and ``--no-cache`` on a benchmark's parser."""
    p.add_argument("--cache-dir", type=Path, default=None,
                   help=f"finished jobs kept here, reused by a re-run of the same code (default {DEFAULT_DIR})")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write finished jobs")
