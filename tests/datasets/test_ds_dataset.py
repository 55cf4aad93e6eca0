from types import SimpleNamespace

import numpy as np
import pytest
import torch

from clinfusion.config.schema import ImageConfig
from clinfusion.datasets.batch import SAMPLE_KEYS
from clinfusion.datasets.dataset import CohortDataset, make_loader, patient_groups
from clinfusion.errors import DataError

NO_AUG = {"crop_scale": [1.0, 1.0], "flip_prob": 0.0, "rotate_degrees": 0.0, "intensity_shift": 0.0,
          "contrast_gamma": [1.0, 1.0], "noise_std": 0.0, "blur_prob": 0.0}


def _cohort(tmp_path, n=6, missing_image=(), unlabelled=(), no_table=()):
    """A hand-built object with the Cohort contract's fields; image of row r is constant r (.npy)."""
    paths = []
    for r in range(n):
        if r in missing_image:
            paths.append(None)
            continue
        p = tmp_path / f"img{r}.npy"
        np.save(p, np.full((8, 8), float(r), np.float32))
        paths.append(str(p))
    y = np.array([r % 2 for r in range(n)], np.float32)
    idx = y.astype(np.int64)
    for r in unlabelled:
        y[r], idx[r] = np.nan, -1
    cohort = SimpleNamespace(
        ids=[f"s{r}" for r in range(n)], patients=[f"p{r // 2}" for r in range(n)], image_paths=paths,
        has_table=np.array([r not in no_table for r in range(n)]), label_matrix=y[:, None], label_index=idx,
        labels=SimpleNamespace(task="binary", columns=["y"], classes=[0, 1]),
    )
    arrays = {
        "num": np.arange(n * 2, dtype=np.float32).reshape(n, 2), "num_missing": np.zeros((n, 2), bool),
        "cat": np.ones((n, 1), np.int64), "cat_missing": np.zeros((n, 1), bool),
        "omics": np.zeros((n, 0), np.float32), "omics_missing": np.zeros((n, 0), bool),
    }
    return cohort, arrays


def _img_cfg(**kw):
    return ImageConfig(size=[8, 8], intensity={"mode": "none"}, **kw)


def test_sample_layout_masks_and_labels(tmp_path):
    cohort, arrays = _cohort(tmp_path, missing_image=(1,), unlabelled=(2,), no_table=(3,))
    ds = CohortDataset(cohort, arrays, rows=[0, 1, 2, 3], image_cfg=_img_cfg())
    s0, s1, s2, s3 = (ds[i] for i in range(4))
    assert set(s0) == set(SAMPLE_KEYS)
    assert s0["image"].shape == (1, 8, 8) and s0["image"].dtype == torch.float32
    assert torch.equal(s2["image"], torch.full((1, 8, 8), 2.0))
    assert torch.equal(s1["image"], torch.zeros(1, 8, 8)) and s1["modality_mask"].tolist() == [False, True]
    assert s3["modality_mask"].tolist() == [True, False] and s0["modality_mask"].dtype == torch.bool
    assert s1["num"].tolist() == [2.0, 3.0] and s1["cat"].dtype == torch.int64 and s1["omics"].shape == (0,)
    assert s1["label"].tolist() == [1.0] and s1["label_index"].item() == 1 and s1["has_label"].item()
    assert s2["label"].tolist() == [0.0] and s2["label_index"].item() == -1 and not s2["has_label"].item()
    assert (s0["id"], s0["patient"]) == ("s0", "p0")
    s1["num"].add_(100)  # user data is never modified through a sample
    assert arrays["num"][1].tolist() == [2.0, 3.0]


def test_loader_collates_and_is_seeded(tmp_path):
    cohort, arrays = _cohort(tmp_path, missing_image=(4,))
    ds = CohortDataset(cohort, arrays, rows=range(6), image_cfg=_img_cfg())
    batch = next(iter(make_loader(ds, batch_size=6, shuffle=False)))
    assert batch["id"] == [f"s{r}" for r in range(6)] and isinstance(batch["patient"], list)
    assert batch["image"].shape == (6, 1, 8, 8) and batch["modality_mask"].shape == (6, 2)
    assert batch["label"].shape == (6, 1) and batch["label_index"].shape == (6,) and batch["has_label"].all()
    assert batch["modality_mask"][:, 0].tolist() == [True] * 4 + [False, True]

    def order(seed):
        return [i for b in make_loader(ds, batch_size=2, shuffle=True, seed=seed, persistent_workers=True) for i in b["id"]]

    assert order(1) == order(1) and sorted(order(1)) == sorted(batch["id"])
    assert any(order(s) != order(1) for s in (2, 3, 4))


def test_views_are_random_but_seeded(tmp_path):
    cohort, arrays = _cohort(tmp_path)
    for r in range(6):  # textured images so that views differ
        np.save(cohort.image_paths[r], np.random.default_rng(r).random((8, 8)).astype(np.float32))
    ds = CohortDataset(cohort, arrays, rows=range(6), image_cfg=_img_cfg(augment={"noise_std": 0.1}), views=True)
    b1 = next(iter(make_loader(ds, batch_size=6, shuffle=False, seed=5)))
    b2 = next(iter(make_loader(ds, batch_size=6, shuffle=False, seed=5)))
    assert b1["image_view2"].shape == b1["image"].shape == (6, 1, 8, 8)
    assert not torch.allclose(b1["image"], b1["image_view2"])
    assert torch.equal(b1["image"], b2["image"]) and torch.equal(b1["image_view2"], b2["image_view2"])


def test_augment_gives_one_seeded_view_and_leaves_images_without_file_blank(tmp_path):
    cohort, arrays = _cohort(tmp_path, missing_image=(3,))
    for r in (0, 1, 2, 4, 5):
        np.save(cohort.image_paths[r], np.random.default_rng(r).random((8, 8)).astype(np.float32))
    cfg = _img_cfg(augment={"noise_std": 0.1})
    raw = CohortDataset(cohort, arrays, rows=range(6), image_cfg=cfg)
    aug = CohortDataset(cohort, arrays, rows=range(6), image_cfg=cfg, augment=True)
    assert "image_view2" not in aug[0]
    assert not torch.allclose(aug[(0, 7)]["image"], raw[0]["image"])
    assert torch.equal(aug[(0, 7)]["image"], aug[(0, 7)]["image"])  # the per-sample seed fixes the view
    assert not torch.equal(aug[(0, 7)]["image"], aug[(0, 8)]["image"])
    assert torch.equal(aug[3]["image"], torch.zeros(1, 8, 8))  # no image: the blank stays blank


def test_views_seeded_in_worker_processes(tmp_path):
    cohort, arrays = _cohort(tmp_path, n=4)
    ds = CohortDataset(cohort, arrays, rows=range(4), image_cfg=_img_cfg(augment={"noise_std": 0.1}), views=True)

    def first(seed):
        return next(iter(make_loader(ds, batch_size=4, shuffle=True, num_workers=1, seed=seed)))

    a, b = first(3), first(3)
    assert a["id"] == b["id"] and torch.equal(a["image_view2"], b["image_view2"])


def test_micle_second_view_from_same_patient(tmp_path):
    # rows 0,1 = patient p0; 2,3 = p1 (row 3 has no image); 4,5 = p2
    cohort, arrays = _cohort(tmp_path, missing_image=(3,))
    cfg = _img_cfg(augment=NO_AUG)
    micle = CohortDataset(cohort, arrays, rows=range(6), image_cfg=cfg, views=True, micle=True)
    plain = CohortDataset(cohort, arrays, rows=range(6), image_cfg=cfg, views=True)
    value = {i: micle[i]["image_view2"].mean().item() for i in range(6)}
    assert value[0] == 1.0 and value[1] == 0.0 and value[4] == 5.0 and value[5] == 4.0  # the partner's image
    assert value[2] == 2.0  # p1 has no other image: the second view is of the same image
    assert [plain[i]["image_view2"].mean().item() for i in (0, 1)] == [0.0, 1.0]
    # partners are drawn only among the dataset's rows (no leak from another split)
    assert CohortDataset(cohort, arrays, rows=[0], image_cfg=cfg, views=True, micle=True)[0]["image_view2"].mean() == 0.0


def test_unreadable_image_read_anyway_names_id_and_file(tmp_path):
    cohort, arrays = _cohort(tmp_path, missing_image=(5,))
    (tmp_path / "img2.npy").write_bytes(b"garbage")
    cohort.image_paths[4] = str(tmp_path / "gone.npy")
    with pytest.raises(DataError) as e:
        CohortDataset(cohort, arrays, rows=range(6), image_cfg=_img_cfg())[2]
    assert str(e.value).startswith("id 's2': ") and "img2.npy" in str(e.value)  # ids survive skipped rows
    # cohort.on_bad_image (error / skip) is applied earlier, by datasets/builder.py: tests/datasets/test_ds_builder.py


def test_memory_cache_serves_loaded_tensors(tmp_path):
    cohort, arrays = _cohort(tmp_path, n=2)
    ds = CohortDataset(cohort, arrays, rows=[0, 1], image_cfg=_img_cfg(cache="memory"))
    np.save(cohort.image_paths[1], np.full((8, 8), 99.0, np.float32))  # changed after caching
    assert ds[1]["image"].mean().item() == 1.0
    ds[1]["image"].add_(5)  # a consumer writing into a sample does not touch the cache
    assert ds[1]["image"].mean().item() == 1.0
    assert CohortDataset(cohort, arrays, rows=[1], image_cfg=_img_cfg())[0]["image"].mean().item() == 99.0


def test_disk_cache_reuses_entries_and_keys_on_config_and_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    cohort, arrays = _cohort(data, n=3)
    cache = tmp_path / "cache"  # holds only the cached tensors

    def run(**kw):
        ds = CohortDataset(cohort, arrays, rows=range(3), image_cfg=_img_cfg(cache="disk", cache_dir=str(cache), **kw))
        return [ds[i]["image"] for i in range(3)]

    first = run()
    n_entries = len(list(cache.iterdir()))
    assert n_entries == 3
    again = run()
    assert len(list(cache.iterdir())) == 3 and all(torch.equal(a, b) for a, b in zip(first, again))
    assert run(channels=3)[0].shape == (3, 8, 8) and len(list(cache.iterdir())) == 6
    np.save(cohort.image_paths[0], np.full((8, 8), 7.0, np.float32))
    assert run()[0].mean().item() == 7.0 and len(list(cache.iterdir())) == 7


def test_patient_groups(tmp_path):
    cohort, _ = _cohort(tmp_path)
    assert patient_groups(cohort, [5, 0, 1, 4]) == {"p2": [5, 4], "p0": [0, 1]}


@pytest.mark.parametrize("dims,size", [(2, 16), (3, 16)])
def test_synthetic_cohort_end_to_end(tmp_path, dims, size):
    """synthetic -> load_cohort -> TabularPreprocessor -> CohortDataset -> batches."""
    from clinfusion.config.loader import load_config
    from clinfusion.datasets.cohort import load_cohort
    from clinfusion.datasets.preprocess import TabularPreprocessor
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    syn = make_synthetic_cohort(tmp_path, n_patients=4, images_per_patient=2, spatial_dims=dims, size=size,
                                omics_columns=3, missing_value_rate=0.2, missing_image_rate=0.2, seed=4)
    cfg = load_config(None, syn.overrides)
    cohort = load_cohort(cfg.cohort, require_labels=True)
    arrays = TabularPreprocessor(cfg.cohort).fit(cohort, np.arange(len(cohort))).transform(cohort)
    ds = CohortDataset(cohort, arrays, rows=range(len(cohort)), image_cfg=cfg.image, views=True, micle=True)
    from clinfusion.datasets.synthetic import draw_planted

    # the same draw in memory: the loaded image equals the planted one (window 0..255 / 0..1)
    planted = draw_planted(8, dims, size, n_patients=4, seed=4)["images"]
    plain = CohortDataset(cohort, arrays, rows=range(len(cohort)), image_cfg=cfg.image)
    for i in range(len(ds)):
        s = plain[i]
        assert s["image"].shape == (1,) + (size,) * dims and s["omics"].shape == (3,)
        assert s["modality_mask"][0].item() == (cohort.image_paths[i] is not None)
        if cohort.image_paths[i] is not None:
            tol = 0.5 / 255 + 1e-6 if dims == 2 else 1e-6  # PNG rounds to 8 bits
            assert np.abs(s["image"][0].numpy() - planted[i]).max() <= tol
    batch = next(iter(make_loader(ds, batch_size=8, shuffle=True, seed=0)))
    assert batch["image_view2"].shape == (8, 1) + (size,) * dims
    assert batch["num"].shape == (8, len(cohort.numeric)) and batch["cat"].shape == (8, len(cohort.categorical))
    assert batch["label"].sum().item() == 2 and batch["has_label"].all()


def test_multiclass_one_hot_and_multilabel_unknowns(tmp_path):
    cohort, arrays = _cohort(tmp_path, n=3)
    cohort.label_matrix = np.array([[0, 0, 1], [np.nan] * 3, [1, 0, 0]], np.float32)
    cohort.label_index = np.array([2, -1, 0])
    cohort.labels = SimpleNamespace(task="multiclass", columns=["y"], classes=["a", "b", "c"])
    ds = CohortDataset(cohort, arrays, rows=range(3), image_cfg=_img_cfg())
    assert ds[0]["label"].tolist() == [0, 0, 1] and ds[0]["label_index"].item() == 2
    assert ds[1]["label"].tolist() == [0, 0, 0] and not ds[1]["has_label"].item()
    cohort.label_matrix = np.array([[0, 1], [1, np.nan], [0, 0]], np.float32)
    cohort.label_index = np.full(3, -1)
    cohort.labels = SimpleNamespace(task="multilabel", columns=["f1", "f2"], classes=["f1", "f2"])
    ds = CohortDataset(cohort, arrays, rows=range(3), image_cfg=_img_cfg())
    assert [ds[i]["has_label"].item() for i in range(3)] == [True, False, True]
    assert ds[1]["label"].tolist() == [1.0, 0.0] and ds[0]["label_index"].item() == -1
