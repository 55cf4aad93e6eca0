"""Whether two runs of the benchmarks report the same numbers, timings aside: the check behind
``benchmarks._common.RESULT_NEUTRAL`` (a library commit that changes no benchmark number).

Run every benchmark's ``--tiny`` form (no cache) at a commit and at its parent, each into its own
``--results-dir``, then::

    python -m benchmarks._compare DIR_BEFORE DIR_AFTER

It walks every JSON leaf of each result (``meta`` left out) and prints, per file, how many cells it
compared and which differ. Timing and memory cells (keys such as ``seconds``, ``pretrain_s``,
``rounds_per_s``, ``peak_mb``) are skipped, and so are the timing phrases of notes (``12 s``, scaling's time and memory slopes).
NaN equals NaN. Exit status 1 when any compared cell differs.

Run both sides on the same CPU model: the same code on another CPU (an AMD EPYC against an Intel Xeon
machine, torch 2.13.0 at one thread) gave the same untrained encoders but trained models 0.001-0.04 AUROC
apart, as float summation differs between the CPUs' kernels and training amplifies it. A pair of results
from different CPUs (``meta.machine.cpu``) is compared anyway, with a line saying so.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

_TIMING_KEY = re.compile(r"(^|[_ /])(s|seconds|time|wall|ms|per_s|mb|mib|gb|peak|rss|memory|date|total)($|[_ /(])"
                         r"|per seed|/s\b|seconds|samples/s|ms/step|MB|GB|MiB", re.I)
_TIMING_TEXT = re.compile(r"[\d.,]+ s of cell time|total [\d.,]+ s|[\d.,]+ s\b"
                          r"|[a-z -]*\(slope -?[\d.]+\)")  # scaling's fitted time / memory slopes


def _leaves(x: Any, path: Tuple[str, ...] = ()) -> Iterator[Tuple[Tuple[str, ...], Any]]:
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, path + (str(k),))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, path + (str(i),))
    else:
        yield path, x


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, str) and isinstance(b, str):
        return _TIMING_TEXT.sub("<t>", a) == _TIMING_TEXT.sub("<t>", b)
    return a == b


def compare(before: Dict[str, Any], after: Dict[str, Any]) -> Tuple[int, List[str]]:
    """(number of non-timing cells compared, paths of those that differ or exist on one side only)."""
    la = dict(_leaves({k: v for k, v in before.items() if k != "meta"}))
    lb = dict(_leaves({k: v for k, v in after.items() if k != "meta"}))
    keys = [k for k in sorted(set(la) | set(lb)) if not any(_TIMING_KEY.search(p) for p in k)]
    return len(keys), ["/".join(k) for k in keys if k not in la or k not in lb or not _same(la[k], lb[k])]


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m benchmarks._compare DIR_BEFORE DIR_AFTER")
        return 2
    before, after = Path(argv[0]), Path(argv[1])
    bad = 0
    for fa in sorted(before.glob("*.json")):
        fb = after / fa.name
        if not fb.is_file():
            print(f"{fa.name}: missing in {after}")
            bad += 1
            continue
        ja, jb = json.loads(fa.read_text()), json.loads(fb.read_text())
        cpus = [j.get("meta", {}).get("machine", {}).get("cpu") for j in (ja, jb)]
        if cpus[0] != cpus[1]:
            print(f"{fa.name}: run on different CPUs ({cpus[0]!r} vs {cpus[1]!r}): trained numbers may differ with "
                  f"the same code; compare runs of one CPU model to check a commit")
        n, diff = compare(ja, jb)
        print(f"{fa.name}: {n} cells compared (timings skipped), {len(diff)} differ" + "".join(f"\n    {d}" for d in diff[:10]))
        bad += bool(diff)
    return int(bad > 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
