"""The torch ``Dataset`` over cohort rows, producing the samples of :mod:`clinfusion.datasets.batch`.

* images are loaded by :func:`~clinfusion.datasets.images.build_loader`, optionally cached
  with MONAI ``CacheDataset`` (``image.cache=memory``) or ``PersistentDataset`` (``disk``);
  only the deterministic loading is cached, the random SSL views are drawn afterwards;
* tabular arrays come from ``TabularPreprocessor.transform(cohort)`` (already scaled; the
  omics are lazy views read and scaled one row per sample, so memory stays O(batch));
* ``views=True`` gives two random views (SimCLR, Chen et al. 2020); with ``micle=True`` the
  second view comes from another image of the same patient when the rows hold one
  (Multi-Instance Contrastive Learning, Azizi et al. 2021, "Big Self-Supervised Models
  Advance Medical Image Classification").
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from monai.data import CacheDataset, PersistentDataset
from monai.data import Dataset as MonaiDataset
from monai.data.utils import set_rnd
from monai.transforms import Transform
from monai.utils import MAX_SEED
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from clinfusion.config.schema import ImageConfig
from clinfusion.datasets.batch import IMAGE, TABLE
from clinfusion.datasets.images import build_loader, build_view_augment
from clinfusion.errors import ConfigError, DataError
from clinfusion.registry import Registry

# name -> (numpy/torch dtype of the sample tensor); absent or None arrays give width 0
TABLE_KEYS: Tuple[Tuple[str, torch.dtype], ...] = (
    ("num", torch.float32),
    ("num_missing", torch.bool),
    ("cat", torch.int64),
    ("cat_missing", torch.bool),
    ("omics", torch.float32),
    ("omics_missing", torch.bool),
)

IMAGE_CACHES = Registry("image.cache")


class _LoadItem(Transform):
    """``{"image": path, ...} -> {"image": tensor [C, *S] | None, "error": str}``.

    A MONAI (deterministic) ``Transform``, so ``CacheDataset`` / ``PersistentDataset`` cache it.
    A loading failure is returned as ``error`` (not raised) so MONAI's dataset machinery does
    not wrap it; :meth:`CohortDataset._image` raises it as a one-line :class:`DataError`.
    """

    def __init__(self, loader: Callable[[str], torch.Tensor]) -> None:
        self.loader = loader

    def __call__(self, item: Mapping[str, Any]) -> Dict[str, Any]:
        try:
            return {"image": self.loader(item["image"]), "error": ""}
        except DataError as exc:
            return {"image": None, "error": str(exc)}


def _loading_key(cfg: ImageConfig) -> str:
    """Hash of the settings that change the loaded tensor (a disk cache entry is keyed on it)."""
    part = cfg.model_dump(include={"spatial_dims", "channels", "size", "spacing", "orientation", "intensity", "volumes_4d"})
    return hashlib.sha1(json.dumps(part, sort_keys=True).encode()).hexdigest()[:16]


@IMAGE_CACHES.register("none")
def _no_cache(data: List[dict], transform: Callable, cfg: ImageConfig) -> MonaiDataset:
    return MonaiDataset(data=data, transform=transform)


@IMAGE_CACHES.register("memory")
def _memory_cache(data: List[dict], transform: Callable, cfg: ImageConfig) -> MonaiDataset:
    return CacheDataset(data=data, transform=transform, cache_rate=1.0, num_workers=0, progress=False)


@IMAGE_CACHES.register("disk")
def _disk_cache(data: List[dict], transform: Callable, cfg: ImageConfig) -> MonaiDataset:
    """Decoded, resized tensors written once per (file, size, mtime, loading settings) and shared by
    every command and run: ``image.cache_dir``, else the user cache (``~/.cache/clinfusion/images``)."""
    from clinfusion.datasets.omics_store import cache_root

    folder = cache_root(cfg.cache_dir, "images")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"image.cache=disk: cannot create the cache folder {str(folder)!r} ({exc.strerror}): "
                          f"set image.cache_dir to a writable folder") from None
    return PersistentDataset(data=data, transform=transform, cache_dir=folder)


class CohortDataset(Dataset):
    """Samples (dicts, layout in :mod:`clinfusion.datasets.batch`) for the cohort rows ``rows``.

    Args:
        cohort: a :class:`~clinfusion.datasets.cohort.Cohort` (``ids``, ``patients``,
            ``image_paths``, ``label_matrix [N, K]``, ``label_index [N]``, ``has_table [N]``).
        arrays: ``TabularPreprocessor.transform(cohort)``: ``num [N, F_num]``, ``num_missing``,
            ``cat [N, F_cat]``, ``cat_missing``, ``omics [N, G]``, ``omics_missing``
            (absent keys give zero-width tensors).
        rows: cohort row indices this dataset serves (sample ``i`` is row ``rows[i]``).
        image_cfg: the ``image`` config section (loading, caching, augmentation).
        views: make ``image`` a random view and add a second one, ``image_view2``.
        augment: make ``image`` one random view (supervised training rows; ignored with ``views``).
        micle: with ``views``, draw ``image_view2`` from another image of the same patient
            (among ``rows``) when there is one.
        seed: seeds the random views / partner choice (workers are re-seeded by :func:`make_loader`).

    Raises:
        DataError: when an image cannot be loaded, naming the row, id and file.
    """

    def __init__(
        self,
        cohort: Any,
        arrays: Mapping[str, Any],
        rows: Sequence[int],
        image_cfg: ImageConfig,
        views: bool = False,
        micle: bool = False,
        seed: int = 0,
        augment: bool = False,
    ) -> None:
        self.cohort = cohort
        self.rows = [int(r) for r in rows]
        self.image_cfg = image_cfg
        self.views = views
        self.micle = micle and views
        n = len(cohort.ids)
        self._tab = {key: _as_tensor(arrays.get(key), n, dtype, key) for key, dtype in TABLE_KEYS}
        self._labels = _label_tensors(cohort, n)
        self._empty_image = torch.zeros(image_cfg.channels, *image_cfg.size, dtype=torch.float32)

        with_image = [r for r in dict.fromkeys(self.rows) if cohort.image_paths[r] is not None]
        self._store_index = {r: i for i, r in enumerate(with_image)}
        key = _loading_key(image_cfg)
        # the disk cache keys an entry on this whole dict: path, loading settings, file size and mtime
        data = [{"image": str(cohort.image_paths[r]), "cfg": key, **_file_stamp(cohort.image_paths[r])} for r in with_image]
        self._store = IMAGE_CACHES.create(image_cfg.cache, data, _LoadItem(build_loader(image_cfg)), image_cfg)
        self.augment = build_view_augment(image_cfg) if views or augment else None
        self._partners = _partners(cohort, with_image) if self.micle else {}
        self.set_random_state(seed)

    def set_random_state(self, seed: int) -> "CohortDataset":
        """Seed the view augmentation and the MICLE partner choice (called per worker by MONAI's ``set_rnd``)."""
        self.R = np.random.RandomState(seed % MAX_SEED)
        if self.augment is not None:
            self.augment.set_random_state(seed=(seed + 1) % MAX_SEED)
        return self

    def __len__(self) -> int:
        return len(self.rows)

    def _image(self, row: int) -> Optional[torch.Tensor]:
        if row not in self._store_index:
            return None
        item = self._store[self._store_index[row]]
        if item["error"]:
            raise DataError(f"id {self.cohort.ids[row]!r}: {item['error']}")  # (its row may be after skipped ones)
        return item["image"].clone()  # never hand out the cached tensor itself

    seeded_index = True  # accepts (i, seed) from a SeededSampler

    def __getitem__(self, i: Any) -> Dict[str, Any]:
        if isinstance(i, tuple):  # (index, seed): this sample's views are seeded by its own seed
            i, seed = i
            self.set_random_state(seed)
        row = self.rows[i]
        image = self._image(row)
        has_image = image is not None
        if image is None:
            image = self._empty_image.clone()
        sample: Dict[str, Any] = {"id": str(self.cohort.ids[row]), "patient": str(self.cohort.patients[row])}
        if self.views:
            second = image
            if has_image and self._partners.get(row):
                partner = self._partners[row][self.R.randint(len(self._partners[row]))]
                second = self._image(partner)
            sample["image"] = self.augment(image) if has_image else image
            sample["image_view2"] = self.augment(second) if has_image else image.clone()
        else:
            sample["image"] = self.augment(image) if self.augment is not None and has_image else image
        for key, _ in TABLE_KEYS:
            value = self._tab[key][row]
            sample[key] = value.clone() if isinstance(self._tab[key], torch.Tensor) else value  # lazy: already a copy
        mask = torch.zeros(2, dtype=torch.bool)
        mask[IMAGE] = has_image
        mask[TABLE] = bool(self.cohort.has_table[row])
        sample["modality_mask"] = mask
        label, index, has_label = self._labels
        sample["label"] = label[row]
        sample["label_index"] = index[row]
        sample["has_label"] = has_label[row]
        return sample


class _RowView:
    """Row access to a lazy ``[N, F]`` array (e.g. the scaled omics, read from disk per row)."""

    def __init__(self, values: Any, dtype: torch.dtype) -> None:
        self.values, self.dtype = values, dtype

    def __getitem__(self, row: int) -> torch.Tensor:
        return torch.as_tensor(np.asarray(self.values[row]), dtype=self.dtype)


def _as_tensor(values: Any, n: int, dtype: torch.dtype, key: str) -> Any:
    """A ``[N, F]`` tensor (numpy arrays; shares memory) or a :class:`_RowView` (lazy arrays:
    anything with ``shape`` that is not an ndarray, read one row per sample)."""
    if values is None:
        return torch.zeros(n, 0, dtype=dtype)
    if not isinstance(values, (np.ndarray, torch.Tensor)) and hasattr(values, "shape"):
        if len(values.shape) != 2 or values.shape[0] != n:
            raise ValueError(f"arrays[{key!r}] must be [N={n}, F], got shape {tuple(values.shape)}")
        return _RowView(values, dtype)
    arr = np.asarray(values)
    if not arr.flags.writeable:  # torch cannot share read-only memory
        arr = arr.copy()
    t = torch.as_tensor(arr, dtype=dtype)  # shares memory when the dtype already matches (omics can be wide)
    if t.ndim != 2 or t.shape[0] != n:
        raise ValueError(f"arrays[{key!r}] must be [N={n}, F], got shape {tuple(t.shape)}")
    return t


def _label_tensors(cohort: Any, n: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``label [N, K]`` (NaN -> 0), ``label_index [N]`` int64, ``has_label [N]`` bool.

    Binary / multiclass rows are labelled when ``label_index >= 0``; multilabel rows (index
    -1) when every finding is known (a row with a NaN finding is treated as unlabelled).
    """
    matrix = getattr(cohort, "label_matrix", None)
    index = getattr(cohort, "label_index", None)
    # copies: the cohort's arrays are never shared with (or written through) the samples
    m = np.zeros((n, 0), np.float32) if matrix is None else np.array(matrix, dtype=np.float32).reshape(n, -1)
    idx = np.full(n, -1, np.int64) if index is None else np.array(index, dtype=np.int64)
    labels = getattr(cohort, "labels", None)
    if labels is not None and getattr(labels, "task", None) == "multilabel":
        has = np.isfinite(m).all(axis=1) & (m.shape[1] > 0)
    else:
        has = idx >= 0
    return torch.from_numpy(np.nan_to_num(m, nan=0.0)), torch.from_numpy(idx), torch.from_numpy(has)


def _file_stamp(path: Any) -> Dict[str, Any]:
    """Size and mtime of a file (so a disk cache entry goes stale when the file changes)."""
    try:
        st = os.stat(path)
        return {"mtime": st.st_mtime_ns, "bytes": st.st_size}
    except OSError:
        return {"mtime": -1, "bytes": -1}


def _partners(cohort: Any, rows_with_image: Sequence[int]) -> Dict[int, List[int]]:
    """For each row, the other rows (with an image) of the same patient."""
    groups: Dict[str, List[int]] = {}
    for r in rows_with_image:
        groups.setdefault(str(cohort.patients[r]), []).append(r)
    return {r: [o for o in groups[str(cohort.patients[r])] if o != r] for r in rows_with_image}


def patient_groups(cohort: Any, rows: Sequence[int]) -> Dict[str, List[int]]:
    """``{patient: [row, ...]}`` for ``rows``, in first-seen order."""
    groups: Dict[str, List[int]] = OrderedDict()
    for r in rows:
        groups.setdefault(str(cohort.patients[int(r)]), []).append(int(r))
    return dict(groups)


def _seed_worker(worker_id: int) -> None:
    """Each worker: seed numpy/random and the dataset's random views from the loader's seed."""
    info = torch.utils.data.get_worker_info()
    seed = info.seed % MAX_SEED
    np.random.seed(seed)
    random.seed(seed)
    set_rnd(info.dataset, seed=seed)


class SeededSampler(Sampler):
    """Wraps a sampler so each index travels with its own seed: ``(index, seed)``.

    The views of a sample then depend only on the loader seed and the sample's position in
    the epoch, not on which worker drew it, how many workers there are (0 included),
    or whether they persisted from an earlier epoch (``persistent_workers``): a resumed run
    re-draws the same views. :meth:`reseed` starts a new epoch on the same (persistent) loader.
    """

    def __init__(self, base: Sampler, seed: int) -> None:
        self.base, self.seed = base, seed

    def reseed(self, seed: int) -> None:
        self.seed = seed
        gen = getattr(self.base, "generator", None)
        if gen is not None:
            gen.manual_seed(seed)

    def __iter__(self):
        for k, i in enumerate(self.base):
            yield (int(i), (self.seed * 1_000_003 + k) % MAX_SEED)

    def __len__(self) -> int:
        return len(self.base)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    sampler: Optional[Sampler] = None,
    prefetch_factor: Optional[int] = None,
) -> DataLoader:
    """A reproducible ``DataLoader``: seeded generator (shuffle order, worker seeds) and views.

    ``persistent_workers`` only takes effect with ``num_workers > 0``, ``pin_memory`` only with
    CUDA present, ``prefetch_factor`` (batches per worker) only with workers; a ``sampler`` (e.g.
    ``DistributedSampler``) replaces ``shuffle``. With workers, a :class:`CohortDataset` gets
    its indices through a :class:`SeededSampler` (``loader.sampler``; call its ``reseed`` to
    reuse a persistent loader for the next epoch), with or without workers: its batches are
    the same for any ``num_workers``. Batches are collated with
    ``default_collate`` (``id`` / ``patient`` become lists of str).
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    if getattr(dataset, "seeded_index", False):  # per-sample seeds: batches independent of the workers
        if sampler is None:  # the shuffle order has its own generator (the loader's also seeds workers)
            order = torch.Generator()
            order.manual_seed(seed)
            sampler = RandomSampler(dataset, generator=order) if shuffle else SequentialSampler(dataset)
        sampler = SeededSampler(sampler, seed)
    elif num_workers == 0:
        set_rnd(dataset, seed=seed % MAX_SEED)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),  # pinning only helps host->GPU copies
        persistent_workers=persistent_workers and num_workers > 0,
        drop_last=drop_last,
        generator=generator,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
    )
