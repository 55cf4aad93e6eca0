"""The one data path: cohort table -> checked rows -> datasets -> loaders, for every command.

``validate``, ``pretrain``, ``embed``, ``finetune``, ``evaluate``, ``predict`` and ``explain``
all get their samples from here:

1. :func:`load_run_cohort` reads the table (:func:`~clinfusion.datasets.cohort.load_cohort`)
   and applies ``cohort.on_bad_image`` ONCE, before anything trains:

   * ``error`` (default): one :class:`~clinfusion.errors.DataError` line naming the first
     missing / unreadable image and how many more there are;
   * ``skip``: those rows are dropped from the cohort, a line says how many, and the
     command writes them with :func:`write_skipped` as ``skipped_images.csv``
     (``id, path, reason``) into its run / output folder (``<stem>_skipped_images.csv``
     beside the output file of ``embed`` / ``predict``).

   Rows without an image path are kept (the image modality is masked out).
2. :func:`build_dataset` turns (cohort, fitted preprocessing or its arrays, rows, image
   section, views or not) into a :class:`~clinfusion.datasets.dataset.CohortDataset`.
3. :func:`build_loader` turns a dataset into a ``DataLoader``; the loader settings
   (``num_workers``, ``pin_memory``, ``persistent_workers``, ``prefetch_factor``) come from
   the command's own section through :class:`LoaderSettings` (the one place they are read).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

from clinfusion.config.schema import CohortConfig, ImageConfig
from clinfusion.datasets.table import row_number
from clinfusion.errors import DataError

SKIPPED_FILE = "skipped_images.csv"
SKIPPED_COLUMNS = ("id", "path", "reason")


def inspect_images(cohort: Any, image_cfg: ImageConfig, rows: Optional[Sequence[int]] = None) -> dict:
    """``{path: (reason | None, channels, size)}`` for each distinct image path of ``rows`` (opened once each,
    :func:`~clinfusion.datasets.images.inspect_image`)."""
    from clinfusion.datasets.images import inspect_image

    rows = range(len(cohort.ids)) if rows is None else rows
    out: dict = {}
    for r in rows:
        path = cohort.image_paths[int(r)]
        if path is not None and path not in out:
            out[path] = inspect_image(path, image_cfg)
    return out


def screen_images(cohort: Any, image_cfg: ImageConfig, rows: Optional[Sequence[int]] = None,
                  infos: Optional[dict] = None) -> List[dict]:
    """Rows whose image is missing or unusable: ``[{"row", "id", "path", "reason"}]`` in row order.

    Rows without an image path are fine (the image is masked out). ``infos``: the result of
    :func:`inspect_images` when already computed.
    """
    rows = range(len(cohort.ids)) if rows is None else rows
    infos = inspect_images(cohort, image_cfg, rows) if infos is None else infos
    bad = []
    for r in rows:
        path = cohort.image_paths[int(r)]
        reason = None if path is None else infos[path][0]
        if reason is not None:
            bad.append({"row": int(r), "id": str(cohort.ids[int(r)]), "path": str(path), "reason": reason})
    return bad


def bad_image_error(bad: Sequence[Mapping[str, Any]], with_image: int = 0) -> DataError:
    """The one-line error of ``cohort.on_bad_image=error``: first bad path and how many more.

    ``with_image``: rows that name an image; when every one is bad, skipping would drop them all,
    so the line says the images and the config disagree instead of offering ``on_bad_image=skip``.
    """
    first = bad[0]
    where = f"row {row_number(first['row'])} (id {first['id']!r}): {first['reason']}"
    if len(bad) > 1 and len(bad) >= with_image:
        return DataError(f"none of the {len(bad)} images can be used, the first: {where}: fix the image column, the "
                         f"image: settings or the files (cohort.on_bad_image=skip would drop every row)")
    more = f" and {len(bad) - 1} more image(s) are missing or unreadable" if len(bad) > 1 else ""
    return DataError(f"{where}{more}: fix the file(s) or set cohort.on_bad_image=skip to drop such rows "
                     f"(listed in {SKIPPED_FILE})")


def apply_bad_image_policy(cohort: Any, image_cfg: ImageConfig, policy: str, show: bool = True) -> Any:
    """``cohort`` unchanged when every image reads; else raise (``error``) or drop the rows (``skip``).

    The returned cohort's ``skipped`` lists the dropped rows (``id, path, reason``).
    """
    bad = screen_images(cohort, image_cfg)
    if not bad:
        return cohort
    if policy != "skip":
        raise bad_image_error(bad, sum(p is not None for p in cohort.image_paths))
    dropped = {b["row"] for b in bad}
    kept = [r for r in range(len(cohort.ids)) if r not in dropped]
    if not kept:
        raise DataError(f"{cohort.table}: every one of the {len(bad)} image(s) is missing or unreadable, "
                        f"first {bad[0]['path']!r}: check the image column and the files")
    out = cohort.subset(kept)
    out.skipped = list(cohort.skipped) + [{k: b[k] for k in SKIPPED_COLUMNS} for b in bad]
    if show:
        print(f"cohort.on_bad_image=skip: skipped {len(bad)} row(s) with a missing or unreadable image "
              f"(first {bad[0]['path']}); listed in the run's {SKIPPED_FILE} (embed / predict: "
              f"<output name>_{SKIPPED_FILE} beside the output)", flush=True)
    return out


def load_run_cohort(cohort_cfg: CohortConfig, image_cfg: ImageConfig, table: Optional[str] = None,
                    require_labels: bool = False, show: bool = True) -> Any:
    """The cohort every command works on: :func:`load_cohort` + ``cohort.on_bad_image``.

    Args:
        cohort_cfg: the ``cohort`` section (``on_bad_image`` read here).
        image_cfg: the ``image`` section (images are opened with its dimensionality / 4D policy).
        table: another table with the same columns (evaluate / predict / explain / embed ``--cohort``).
        require_labels: fine-tuning / evaluation.
        show: print the skipped-rows line (rank 0 only under torchrun).

    Raises:
        DataError: unusable table; with ``on_bad_image=error`` a missing / unreadable image.
    """
    from clinfusion.datasets.cohort import load_cohort

    cohort = load_cohort(cohort_cfg, table, require_labels=require_labels)
    return apply_bad_image_policy(cohort, image_cfg, cohort_cfg.on_bad_image, show=show)


def write_skipped(cohort: Any, out_dir: str | os.PathLike, name: str = SKIPPED_FILE) -> Optional[Path]:
    """Write ``skipped_images.csv`` (``id, path, reason``) into ``out_dir`` when rows were skipped.

    Commands whose output is one file (``embed``, ``predict``) pass ``name=<file stem>_skipped_images.csv``
    so a file of the user's in that folder is never replaced.
    """
    if not getattr(cohort, "skipped", None):
        return None
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, SKIPPED_COLUMNS)
        w.writeheader()
        w.writerows(cohort.skipped)
    return path


def build_dataset(cohort: Any, preprocessing: Any, rows: Sequence[int], image_cfg: ImageConfig,
                  views: bool = False, micle: bool = False, seed: int = 0,
                  missing_features: Optional[str] = None, augment: bool = False) -> Any:
    """The :class:`~clinfusion.datasets.dataset.CohortDataset` for ``rows`` of ``cohort``.

    Args:
        preprocessing: a fitted ``TabularPreprocessor`` (its ``transform`` is applied here) or
            the arrays it already returned (``num [N, F_num]``, ... see ``CohortDataset``).
        views: two random augmented views per sample (self-supervised pretraining).
        micle: with ``views``, the second view from another image of the same patient.
        augment: one random view per sample (``image.augment``; supervised training rows).
        missing_features: passed to ``transform`` (``error`` | ``missing``) for a new table.
    """
    from clinfusion.datasets.dataset import CohortDataset

    arrays = preprocessing.transform(cohort, missing_features) if hasattr(preprocessing, "transform") \
        else preprocessing
    return CohortDataset(cohort, arrays, rows, image_cfg, views=views, micle=micle, seed=seed, augment=augment)


@dataclass(frozen=True)
class LoaderSettings:
    """``DataLoader`` settings of one command, read from its config section.

    ``num_workers`` loader processes; ``pin_memory`` (only with CUDA); ``persistent_workers``
    (only with workers); ``prefetch_factor`` batches per worker (None = torch's default).
    """

    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: Optional[int] = None

    @classmethod
    def from_section(cls, section: Any) -> "LoaderSettings":
        """From a ``pretrain`` / ``finetune`` section (absent keys keep the defaults above)."""
        return cls(**{k: getattr(section, k) for k in cls.__dataclass_fields__ if hasattr(section, k)})


def build_loader(dataset: Any, batch_size: int, shuffle: bool, settings: LoaderSettings = LoaderSettings(),
                 seed: int = 0, drop_last: bool = False, sampler: Any = None) -> Any:
    """A seeded ``DataLoader`` over ``dataset`` (see :func:`~clinfusion.datasets.dataset.make_loader`)."""
    from clinfusion.datasets.dataset import make_loader

    return make_loader(dataset, batch_size, shuffle, num_workers=settings.num_workers,
                       pin_memory=settings.pin_memory, persistent_workers=settings.persistent_workers,
                       seed=seed, drop_last=drop_last, sampler=sampler, prefetch_factor=settings.prefetch_factor)
