"""clinfusion.training: the training engine, checkpoints, run directories, pretraining and embedding.

Import the submodule you need (kept light: no pandas/tensorboard at package import), e.g.
``from clinfusion.training.rundir import prepare_run_dir``,
``from clinfusion.training.checkpoint import save_checkpoint, load_checkpoint``,
``from clinfusion.training.engine import Trainer``,
``from clinfusion.training.pretrain import run_pretrain``,
``from clinfusion.training.embed import run_embed``.
"""
