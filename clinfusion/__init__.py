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
"""

__version__ = "0.1.0"
