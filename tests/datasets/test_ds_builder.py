"""The one data path (datasets/builder.py): bad-image policy, cohort subsets, loader settings."""

import numpy as np
import pandas as pd
import pytest
import torch

from clinfusion.config.schema import FinetuneConfig, ImageConfig, PretrainConfig
from clinfusion.datasets.builder import (LoaderSettings, build_dataset, build_loader, load_run_cohort,
                                         screen_images, write_skipped)
from clinfusion.datasets.cohort import load_cohort
from clinfusion.datasets.preprocess import TabularPreprocessor
from clinfusion.errors import DataError

IMG = ImageConfig(size=[16, 16])


def _break(tiny_table):
    (tiny_table.parent / "img" / "4.png").unlink()
    corrupt = tiny_table.parent / "img" / "7.png"
    corrupt.write_bytes(corrupt.read_bytes()[:30])  # truncated PNG
    return str((tiny_table.parent / "img" / "4.png").resolve()), str(corrupt.resolve())


def test_screen_lists_missing_and_truncated_rows(tiny_cfg, tiny_table):
    missing, truncated = _break(tiny_table)
    bad = screen_images(load_cohort(tiny_cfg), IMG)
    assert [(b["row"], b["id"], b["path"]) for b in bad] == [(4, "s04", missing), (7, "s07", truncated)]
    assert "not found" in bad[0]["reason"] and "cannot be decoded" in bad[1]["reason"]


def test_error_policy_is_one_line_with_first_path_and_count(tiny_cfg, tiny_table):
    missing, _ = _break(tiny_table)
    with pytest.raises(DataError) as e:
        load_run_cohort(tiny_cfg, IMG)
    msg = str(e.value)
    assert "\n" not in msg and missing in msg and "and 1 more image(s)" in msg and "on_bad_image=skip" in msg


def test_skip_policy_drops_rows_everywhere_and_lists_them(tiny_cfg, tiny_table, tmp_path, capsys):
    missing, truncated = _break(tiny_table)
    cohort = load_run_cohort(tiny_cfg.model_copy(update={"on_bad_image": "skip"}), IMG)
    assert "skipped 2 row(s)" in capsys.readouterr().out
    keep = [r for r in range(12) if r not in (4, 7)]
    assert cohort.ids == [f"s{r:02d}" for r in keep] and len(cohort.frame) == 10
    assert cohort.label_index.tolist() == [[1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0][r] for r in keep]
    assert cohort.has_table.shape == (10,) and cohort.frame["sid"].tolist() == cohort.ids
    path = write_skipped(cohort, tmp_path / "out")
    frame = pd.read_csv(path, dtype=str)
    assert frame[["id", "path"]].values.tolist() == [["s04", missing], ["s07", truncated]]
    assert write_skipped(load_cohort(tiny_cfg.model_copy(update={"image_column": None})), tmp_path / "x") is None


def test_dataset_and_loader_from_the_builder(tiny_cfg, tmp_path):
    cohort = load_run_cohort(tiny_cfg, IMG)
    pre = TabularPreprocessor(tiny_cfg).fit(cohort, np.arange(8))
    ds = build_dataset(cohort, pre, [0, 3, 5], IMG)
    batch = next(iter(build_loader(ds, 2, shuffle=False, settings=LoaderSettings.from_section(FinetuneConfig()))))
    assert batch["id"] == ["s00", "s03"] and batch["image"].shape == (2, 1, 16, 16)
    assert torch.equal(batch["num"][1], torch.as_tensor(pre.transform(cohort)["num"][3]))
    s = LoaderSettings.from_section(PretrainConfig(num_workers=3, pin_memory=False, persistent_workers=True))
    assert (s.num_workers, s.pin_memory, s.persistent_workers) == (3, False, True)


def test_channels_validate_says_conversions_and_unconvertible_is_a_bad_image(tmp_path):
    from PIL import Image

    from clinfusion.config.schema import CohortConfig, RunConfig
    from clinfusion.datasets.validate import validate_cohort

    rgb = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    for i in range(3):
        Image.fromarray(rgb).save(tmp_path / f"rgb{i}.png")
    np.save(tmp_path / "two.npy", np.ones((2, 16, 16), np.float32))  # channel-first, 2 channels
    pd.DataFrame({"id": ["a", "b", "c", "d"], "image": ["rgb0.png", "rgb1.png", "rgb2.png", "two.npy"],
                  "x": [1.0, 2, 3, 4]}).to_csv(tmp_path / "c.csv", index=False)
    cohort_cfg = CohortConfig(table=str(tmp_path / "c.csv"), id_column="id", image_column="image")
    report = validate_cohort(RunConfig(cohort=cohort_cfg, image=ImageConfig(size=[16, 16], channels=1)))
    assert report.channel_conversions == {2: 1, 3: 3} and report.fatal == []
    assert "3 image(s) with 3 channel(s) become image.channels=1 (averaged)" in report.render()
    three = ImageConfig(size=[16, 16], channels=3)
    with pytest.raises(DataError, match=r"two.npy' has 2 channels, which cannot become image.channels=3"):
        load_run_cohort(cohort_cfg, three)  # stopped before training, not mid-epoch in the loader
    assert load_run_cohort(cohort_cfg.model_copy(update={"on_bad_image": "skip"}), three, show=False).ids == ["a", "b", "c"]


def test_every_image_bad_says_the_config_and_images_disagree(tiny_cfg, tiny_table):
    """2D PNGs read as 3D: skipping would drop every row, so the line does not offer on_bad_image=skip."""
    with pytest.raises(DataError) as e:
        load_run_cohort(tiny_cfg, ImageConfig(spatial_dims=3, size=[16, 16, 16]))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("none of the 12 images can be used, the first: row 1 (id 's00')")
    assert "would drop every row" in msg and "set cohort.on_bad_image=skip to" not in msg
