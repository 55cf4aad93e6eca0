"""GPU speed settings (``compile``, ``channels_last``): the same training, the same checkpoint layout.

Measured for speed by benchmarks.speed (a4) and benchmarks.gpu; here only what must hold on any
device: every step's loss and one step's gradients equal the eager run's (to float rounding; the
weights after training are not compared, see below), checkpoints load into a plain model, and
nothing of the compiled function outlives the run."""

from __future__ import annotations

import copy
import csv

import numpy as np
import pytest
import torch

from clinfusion.encoders.image_base import ImageEncoder
from clinfusion.models.io import build_model
from clinfusion.models.pretrain_task import PretrainTask
from clinfusion.training.checkpoint import load_weights
from clinfusion.training.engine import Trainer, image_speedups
from clinfusion.training.pretrain import build_datasets, seed_everything

from trn_helpers import tiny_config


def _train(cfg, pre, train, val, run_dir, seen=None):
    seed_everything(cfg.seed)
    model = build_model(cfg, pre.schema)
    task = PretrainTask(model, cfg.pretrain, cfg.model.modality_dropout)

    def look(trainer):  # the encoder as the optimizer steps it
        enc = trainer.task.model.image_encoder
        conv = [p for p in enc.parameters() if p.dim() == 4][-1]  # the last kernel: > 1 input channel (with
        # one channel both layouts have the same strides and every check would pass)
        assert conv.shape[1] > 1
        seen.append((conv.is_contiguous(memory_format=torch.channels_last), "forward_features" in enc.__dict__))

    Trainer(task, cfg.pretrain, run_dir, device="cpu", seed=cfg.seed,
            step_callbacks=[look] if seen is not None else []).fit(train, val)
    return model


def _losses(run_dir):
    return [(r["step"], r["split"], float(r["loss"])) for r in csv.DictReader(open(run_dir / "metrics.csv"))]


@pytest.mark.parametrize("settings", [["pretrain.channels_last=true"],
                                      ["pretrain.compile=default", "pretrain.channels_last=true"]])
def test_speed_settings_train_like_eager_and_save_plain_checkpoints(synthetic, tmp_path, settings):
    eager_cfg = tiny_config(synthetic, ["pretrain.epochs=1"])
    cfg = tiny_config(synthetic, ["pretrain.epochs=1", *settings])
    for d in ("eager", "fast"):
        (tmp_path / d).mkdir()
    _, pre, train, val = build_datasets(eager_cfg, tmp_path / "eager", resume=False)
    _train(eager_cfg, pre, train, val, tmp_path / "eager")
    seen = []
    fast = _train(cfg, pre, train, val, tmp_path / "fast", seen)
    assert len(seen) == 3 and all(s == (True, True) for s in seen)  # in effect at each of the 3 steps
    # the same losses, step by step (weights are not compared: Adam turns the rounding noise of a
    # near-zero gradient, e.g. a conv bias before BatchNorm, into full-size steps; see the next test)
    eager_losses, fast_losses = _losses(tmp_path / "eager"), _losses(tmp_path / "fast")
    assert [r[:2] for r in fast_losses] == [r[:2] for r in eager_losses]
    np.testing.assert_allclose([r[2] for r in fast_losses], [r[2] for r in eager_losses], rtol=1e-4)
    # after the run: the class's own forward_features again, and a copy runs on its own weights
    enc = fast.image_encoder
    assert "forward_features" not in enc.__dict__
    twin = copy.deepcopy(enc)
    with torch.no_grad():
        for p in twin.parameters():
            p.zero_()
    conv = next(p for p in enc.parameters() if p.dim() == 4)
    x = torch.randn(2, conv.shape[1], 16, 16)
    enc.eval()
    twin.eval()
    assert not torch.allclose(twin(x), enc(x))
    # the checkpoint is an ordinary one: a plain model loads it strictly and gets the run's weights
    plain = build_model(eager_cfg, pre.schema)
    load_weights(tmp_path / "fast" / "checkpoints" / "last" / "model.safetensors", plain, torch.device("cpu"))
    for k, v in plain.state_dict().items():
        assert torch.equal(v, fast.state_dict()[k]), k


def test_channels_last_gives_the_eager_loss_and_gradients(synthetic, tmp_path):
    from clinfusion.training.engine import move

    cfg = tiny_config(synthetic, ["pretrain.epochs=1", "pretrain.losses.simclr=0"])  # no random views
    _, pre, train, _ = build_datasets(cfg, tmp_path, resume=False)
    trainer_cfg = cfg.pretrain
    seed_everything(cfg.seed)
    task = PretrainTask(build_model(cfg, pre.schema), trainer_cfg, 0.0).train()
    twin = copy.deepcopy(task)
    batch = next(iter(Trainer(task, trainer_cfg, tmp_path, device="cpu").loader(train, 0, True)))
    results = []
    for t, fast in ((task, False), (twin, True)):
        undo = image_speedups(t, "off", channels_last=fast)
        torch.manual_seed(0)
        loss = t(move(batch, torch.device("cpu")))["loss"]
        loss.backward()
        results.append((loss.detach(), {k: p.grad.clone() for k, p in t.named_parameters() if p.grad is not None}))
        undo()
    (l0, g0), (l1, g1) = results
    torch.testing.assert_close(l1, l0, atol=1e-6, rtol=1e-5)
    assert g0.keys() == g1.keys() and any(k.startswith("model.image_encoder.") for k in g0)
    # rounding only: within 1e-5 of the largest gradient (a conv bias before BatchNorm has a gradient of pure
    # rounding noise, ~1e-7 to 1e-6, in both runs; a relative check per tensor would compare noise with noise)
    scale = max(float(g.abs().max()) for g in g0.values())
    assert scale > 0.1
    worst = {k: float((g1[k] - g0[k]).abs().max()) for k in g0}
    assert max(worst.values()) <= 1e-5 * scale, max(worst.items(), key=lambda t: t[1])


def test_channels_last_3d_layout_and_same_output():
    from clinfusion.config.schema import ImageEncoderConfig
    from clinfusion.encoders.image import create_image_encoder

    torch.manual_seed(0)
    enc = create_image_encoder(ImageEncoderConfig(name="cnn_tiny", width=4), 3, 1, (8, 8, 8)).eval()
    assert isinstance(enc, ImageEncoder)
    x = torch.randn(2, 1, 8, 8, 8)
    ref = enc(x)
    undo = image_speedups(torch.nn.ModuleList([enc]), "off", channels_last=True)
    seen = []
    last = [m for m in enc.modules() if isinstance(m, torch.nn.Conv3d)][-1]  # input with > 1 channel
    last.register_forward_pre_hook(lambda m, args: seen.append((args[0].shape[1], args[0].is_contiguous(
        memory_format=torch.channels_last_3d))))
    out = enc(x)
    assert len(seen) == 1 and seen[0][0] > 1 and seen[0][1]  # activations flow channels-last-3d
    assert all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in enc.parameters() if p.dim() == 5)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    undo()
    assert "forward_features" not in enc.__dict__


def test_the_benchmarks_bare_step_uses_the_sections_speed_settings(synthetic, tmp_path):
    """benchmarks.gpu compares the toolkit's step with a bare step of the same model settings."""
    from benchmarks._pretrain_setup import bare_step

    cfg = tiny_config(synthetic, ["pretrain.epochs=1", "pretrain.channels_last=true"])
    _, pre, train, _ = build_datasets(cfg, tmp_path, resume=False)
    task = PretrainTask(build_model(cfg, pre.schema), cfg.pretrain, 0.0)
    batch = next(iter(Trainer(task, cfg.pretrain, tmp_path, device="cpu").loader(train, 0, True)))
    layouts = []

    def conv_input(module, args):
        assert args[0].shape[1] > 1  # with one channel both layouts have the same strides
        layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))

    for section, expected in ((cfg.pretrain, True), (None, False)):
        last = [m for m in task.model.image_encoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        handle = last.register_forward_pre_hook(conv_input)  # copied into the bare step's deepcopy
        step = bare_step(task, batch, cfg.pretrain.lr, torch.device("cpu"), section)
        handle.remove()
        layouts.clear()
        step()
        assert layouts and all(v == expected for v in layouts)
    assert "forward_features" not in task.model.image_encoder.__dict__  # the task itself is untouched


def test_a_run_may_resume_with_other_speed_settings(synthetic):
    from clinfusion.config.diff import resume_differences

    stored = tiny_config(synthetic)
    again = tiny_config(synthetic, ["pretrain.compile=max-autotune", "pretrain.channels_last=true"])
    assert resume_differences(again, stored) == []
    assert resume_differences(tiny_config(synthetic, ["pretrain.lr=0.5"]), stored)  # a real change still counts


def test_compiled_encoders_of_other_shapes_in_one_process():
    """Static shapes (``dynamic=False``): a new input shape compiles anew instead of going symbolic.
    A 2D then a 3D encoder trained in one process (benchmarks.quality does this; they share the
    compiled code) made inductor fail on the symbolic 3D shapes ('Invalid ranges', torch 2.13)."""
    from clinfusion.config.schema import ImageEncoderConfig
    from clinfusion.encoders.image import create_image_encoder

    torch.manual_seed(0)
    enc_cfg = ImageEncoderConfig(name="cnn_tiny", width=4, pool="max", stem_stride=1)
    for dims, size in ((2, 16), (3, 8)):
        enc = create_image_encoder(enc_cfg, dims, 1, (size,) * dims).train()
        twin = copy.deepcopy(enc)
        undo = image_speedups(torch.nn.ModuleList([twin]), "default", channels_last=True)
        for b in (4, 3):
            x = torch.randn(b, 1, *(size,) * dims)
            enc(x).pow(2).sum().backward()
            twin(x).pow(2).sum().backward()
        undo()
        for p, q in zip(enc.parameters(), twin.parameters()):
            torch.testing.assert_close(q.grad, p.grad, atol=1e-4, rtol=1e-3)
