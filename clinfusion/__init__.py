"""clinfusion: multimodal medical AI (images + clinical/genomic tables).

Package map (the folder tree is the architecture):

- ``config/``      typed YAML configs (pydantic), dotted overrides, key suggestions
- ``datasets/``    cohort contract, image readers (MONAI), tabular preprocessing,
                   splits, synthetic and bundled cohorts, ``validate``
- ``encoders/``    image encoders (MONAI nets, 2D/3D) and the tabular/genomic
                   transformer (Hugging Face ``transformers``)
- ``fusion/``      concatenation / gated / cross-attention fusion with modality masks
- ``objectives/``  SimCLR, BYOL, SCARF, masked-feature and CLIP losses (+ cross-rank gather)
- ``models/``      the multimodal model and the task objects combining model and losses
- ``training/``    engine: precision, DDP, accumulation, checkpoints, resume, logging
- ``downstream/``  heads, baselines, metrics with bootstrap CIs, subgroups, reports
- ``explain/``     captum attributions, modality share, faithfulness, HTML report
- ``cli/``         ``clinfusion validate | pretrain | embed | finetune | evaluate | predict | explain``
- ``api.py``       the same jobs as Python calls (``from clinfusion import api as cf; cf.pretrain(...)``)

The jobs of :mod:`clinfusion.api` are re-exported here lazily (``import clinfusion`` stays
instant and imports no torch until a job is called), except ``explain``: that name is the
``clinfusion.explain`` subpackage, so call ``clinfusion.api.explain``.
"""

import logging
from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# start-up chatter that is not about the user's data: MONAI's GPU DICOM codec probe warns once per
# process (and per DataLoader worker) on every machine without nvImageCodec; CLI and API alike
logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)

_API = ("load_config", "load_cohort", "validate", "pretrain", "embed", "embeddings", "finetune", "evaluate",
        "predict")  # + api.explain (the name clinfusion.explain is the subpackage)
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module("clinfusion.api"), name)
    raise AttributeError(f"module 'clinfusion' has no attribute {name!r}")
