"""Sites as data: which sites a run has, and what one site reads (only its own rows).

A site is either a value of ``cohort.site_column`` in ``cohort.table`` or an entry
``name: table`` of ``federated.site_tables``. :func:`site_specs` lists them for the
simulation runtime (in the deployment runtime each SuperNode is told its own ``site`` and
``table`` with ``--node-config``). :func:`load_site` is what a site's ClientApp runs: it
reads its table, keeps its own rows, and splits them by patient locally (``split`` section,
run seed), so the held-out rows of every site stay held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List

import numpy as np

from clinfusion.config.schema import RunConfig
from clinfusion.errors import ConfigError, DataError


@dataclass(frozen=True)
class SiteSpec:
    name: str  # site name (a site_column value or a site_tables key)
    table: str  # the table this site reads


@dataclass
class SiteData:
    name: str
    cohort: Any  # the site's Cohort (its own rows only)
    train_rows: np.ndarray  # [n_train] readable training rows
    val_rows: np.ndarray  # [n_val]


def site_specs(cfg: RunConfig) -> List[SiteSpec]:
    """The sites of a simulation run, in a fixed order.

    Raises:
        ConfigError: neither ``federated.site_tables`` nor ``cohort.site_column`` is set.
        DataError: the site column is absent or has no value.
    """
    fed = cfg.federated
    if fed.site_tables:
        return [SiteSpec(str(name), str(table)) for name, table in fed.site_tables.items()]
    col = cfg.cohort.site_column
    if not col:
        raise ConfigError("federated.runtime needs sites: set cohort.site_column (a column naming each row's site) "
                          "or federated.site_tables ({site: table})")
    from clinfusion.datasets.table import read_table

    frame = read_table(cfg.cohort.table, [col])
    if col not in frame.columns:
        raise DataError(f"{cfg.cohort.table}: cohort.site_column {col!r} is not a column: name the column holding "
                        f"each row's site")
    values = sorted({str(v) for v in frame[col].dropna().tolist()})
    if not values:
        raise DataError(f"{cfg.cohort.table}: cohort.site_column {col!r} is empty: fill in each row's site")
    return [SiteSpec(v, cfg.cohort.table) for v in values]


def load_site(cfg: RunConfig, name: str, table: str) -> SiteData:
    """Read site ``name``'s rows of ``table`` and split them locally.

    Raises:
        DataError: one line starting ``site '<name>':`` (no rows, unreadable table, ...).
    """
    from clinfusion.datasets.builder import load_run_cohort
    from clinfusion.training.pretrain import make_run_splits

    try:
        cohort = load_run_cohort(cfg.cohort, cfg.image, table=table)  # the one data path (on_bad_image)
        col = cfg.cohort.site_column
        if col:
            rows = np.flatnonzero(cohort.frame[col].astype(str).to_numpy() == name)
            if rows.size == 0:
                raise DataError(f"no rows with {col} == {name!r} in {table}: remove the site or give it rows")
            cohort = cohort.subset(rows)
        splits = make_run_splits(cfg, cohort, Path("."), resume=False, write=False)
        train, val = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "val")
    except DataError as exc:
        raise DataError(f"site {name!r}: {exc}") from None
    if len(train) < cfg.pretrain.batch_size:
        raise DataError(f"site {name!r}: {len(train)} training rows < pretrain.batch_size={cfg.pretrain.batch_size}: "
                        f"lower pretrain.batch_size or give the site more rows")
    return SiteData(name, cohort, np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64))
