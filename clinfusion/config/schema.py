"""Typed configuration: one complete default, overridden by YAML and dotted CLI keys.

Every section is its own small pydantic model with ``extra='forbid'`` so a typo is an
error (see :mod:`clinfusion.config.loader` for the message with a suggestion). Each
component receives only its own section, never the whole tree.

Top-level layout::

    seed, device, run_name
    cohort:   CohortConfig      (table, columns, omics block)
    image:    ImageConfig       (reading, resizing, normalisation, augmentation, caching)
    split:    SplitConfig       (patient-grouped holdout / k-fold)
    model:    ModelConfig       (image_encoder, tabular_encoder, fusion, projection)
    pretrain: PretrainConfig    (losses, optimisation, precision, loader, checkpoints)
    finetune: FinetuneConfig    (heads, baselines, label fractions, CV)
    evaluation: EvaluationConfig (bootstrap CIs, subgroups, calibration)
    explain:  ExplainConfig     (attribution methods, faithfulness)
"""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


# --------------------------------------------------------------------------- cohort
class OmicsConfig(Section):
    table: str  # CSV or Parquet, one row per sample (or patient), thousands of numeric columns
    key_column: str  # column of the omics table joined to the cohort
    join_on: Optional[str] = None  # cohort column matched against key_column (default: id column)
    gene_sets: Optional[str] = None  # optional file grouping columns: GMT, or CSV/JSON {group: [cols]}
    columns: Union[Literal["auto"], List[str]] = "auto"  # auto = every numeric column but the key


class CohortConfig(Section):
    table: str = ""  # CSV or Parquet, one row per sample; relative paths resolve from the config file
    id_column: Optional[str] = None  # unique sample id; None = row index
    patient_column: Optional[str] = None  # patient key for grouped splits; None = one patient per row
    image_column: Optional[str] = None  # image path relative to the table's folder; empty cell = no image
    label_column: Union[None, str, List[str]] = None  # one column, or a list for multi-label
    features: Union[Literal["auto"], List[str]] = "auto"  # auto = all columns not used above/excluded
    categorical: Optional[List[str]] = None  # categorical features; None = inferred from dtype
    exclude: List[str] = Field(default_factory=list)  # never used as features (e.g. text labels)
    split_column: Optional[str] = None  # optional given split (train/val/test); checked for leakage
    omics: Optional[OmicsConfig] = None
    on_bad_image: Literal["error", "skip"] = "error"  # unreadable/missing image file: fail fast or drop row
    missing_features: Literal["error", "missing"] = "error"  # at inference: absent trained column


# --------------------------------------------------------------------------- image
class IntensityConfig(Section):
    mode: Literal["scale", "zscore", "window", "none"] = "scale"  # scale: to [0,1] from min/max
    a_min: Optional[float] = None  # window mode: lower bound (e.g. -1000 HU)
    a_max: Optional[float] = None  # window mode: upper bound


class AugmentConfig(Section):
    """Augmentations for self-supervised views (applied only where a task asks for views)."""

    crop_scale: List[float] = Field(default_factory=lambda: [0.6, 1.0])  # random resized crop area
    flip_prob: float = 0.5
    rotate_degrees: float = 10.0
    intensity_shift: float = 0.1  # random intensity shift (fraction of range)
    contrast_gamma: List[float] = Field(default_factory=lambda: [0.8, 1.25])
    noise_std: float = 0.02
    blur_prob: float = 0.2


class ImageConfig(Section):
    spatial_dims: Literal[2, 3] = 2
    channels: Literal[1, 3] = 1  # images are converted to this many channels
    size: List[int] = Field(default_factory=lambda: [64, 64])  # output size per spatial dim
    spacing: Optional[List[float]] = None  # resample to this voxel spacing (3D), mm
    orientation: Optional[str] = None  # e.g. "RAS" (3D)
    intensity: IntensityConfig = Field(default_factory=IntensityConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    cache: Literal["none", "memory", "disk"] = "none"  # MONAI CacheDataset / PersistentDataset
    cache_dir: Optional[str] = None  # for cache=disk

    @field_validator("size")
    @classmethod
    def _positive(cls, v: List[int]) -> List[int]:
        if not v or any(s <= 0 for s in v):
            raise ValueError("every size must be a positive integer")
        return v


# --------------------------------------------------------------------------- split
class SplitConfig(Section):
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)  # share of patients
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    stratify: bool = True  # label-stratified where a single label exists


# --------------------------------------------------------------------------- model
class ImageEncoderConfig(Section):
    name: str = "resnet18"  # registry name: see clinfusion.encoders.list_image_encoders()
    weights: Optional[str] = None  # local .safetensors / .pt state dict; never downloaded
    width: Optional[int] = None  # override base width (tiny test models)
    dropout: float = 0.0


class TabularEncoderConfig(Section):
    hidden_size: int = 64  # token width of the transformer
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    dropout: float = 0.1
    omics_grouping: Literal["chunk", "gene_sets"] = "chunk"  # how omics columns become tokens
    omics_chunk_size: int = 256  # columns per omics token when grouping by chunk


class FusionConfig(Section):
    name: Literal["concat", "gated", "cross_attention"] = "concat"  # registry name
    dim: int = 128  # fused embedding width
    num_heads: int = 4  # cross-attention only


class ModelConfig(Section):
    image_encoder: ImageEncoderConfig = Field(default_factory=ImageEncoderConfig)
    tabular_encoder: TabularEncoderConfig = Field(default_factory=TabularEncoderConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    projection_dim: int = 128  # shared space of the CLIP-style alignment
    modality_dropout: float = Field(0.1, ge=0.0, lt=1.0)  # drop a whole modality in training


# --------------------------------------------------------------------------- pretrain
class LossWeights(Section):
    clip: float = 1.0  # image<->table symmetric InfoNCE (Radford et al. 2021)
    simclr: float = 0.5  # image NT-Xent over two views (Chen et al. 2020)
    byol: float = 0.0  # image BYOL (Grill et al. 2020)
    scarf: float = 0.5  # tabular corruption contrastive (Bahri et al. 2022)
    masked_features: float = 0.0  # tabular masked-feature reconstruction


class PretrainConfig(Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)  # per process
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    grad_accum: int = Field(1, ge=1)
    grad_clip: Optional[float] = 1.0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    grad_checkpointing: bool = False
    losses: LossWeights = Field(default_factory=LossWeights)
    temperature: float = 0.07  # initial CLIP / NT-Xent temperature
    max_logit_scale: float = 100.0  # learnable CLIP logit scale is clamped to this
    micle: bool = False  # two images of one patient as a positive pair (Azizi et al. 2021)
    scarf_corruption: float = 0.6  # share of features replaced in SCARF views
    mask_ratio: float = 0.3  # masked-feature reconstruction
    num_workers: int = 0
    pin_memory: bool = True
    persistent_workers: bool = True
    checkpoint_every: int = 1  # epochs
    checkpoint_every_steps: Optional[int] = Field(None, ge=1)  # also save checkpoints/last every N optimizer steps (mid-epoch resume)
    retrieval_every: int = 1  # epochs
    log_every: int = 10  # steps
    progress: bool = True


# --------------------------------------------------------------------------- finetune
class LightGBMConfig(Section):
    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 10
    with_raw_features: bool = True  # concatenate raw clinical features to the fused embedding
    num_threads: int = 0  # LightGBM threads; 0 = LightGBM's default (all cores)


class FinetuneConfig(Section):
    heads: List[Literal["linear", "mlp", "full", "lightgbm"]] = Field(default_factory=lambda: ["linear"])
    baselines: List[Literal["tabular_lgbm", "image_only", "fused_scratch"]] = Field(
        default_factory=lambda: ["tabular_lgbm", "image_only", "fused_scratch"]
    )
    label_fractions: List[float] = Field(default_factory=lambda: [1.0])
    cv_folds: Optional[int] = Field(None, ge=3)  # None: holdout split; k >= 3: patient-grouped k-fold CV (one fold tests, the next validates, k-2 train)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = 1e-3
    encoder_lr: float = 1e-4  # full fine-tuning: lower learning rate for encoders
    weight_decay: float = 1e-4
    freeze: List[str] = Field(default_factory=list)  # full fine-tuning: module names to freeze
    mlp_hidden: int = 128
    lightgbm: LightGBMConfig = Field(default_factory=LightGBMConfig)
    num_workers: int = 0

    @field_validator("label_fractions")
    @classmethod
    def _fractions(cls, v: List[float]) -> List[float]:
        if not v or any(not (0.0 < f <= 1.0) for f in v):
            raise ValueError("each label fraction must be in (0, 1]")
        return v


class EvaluationConfig(Section):
    bootstrap: int = Field(1000, ge=0)  # bootstrap resamples of patients for 95% CIs (0 = off)
    ci: float = 0.95
    subgroups: List[str] = Field(default_factory=list)  # cohort columns, e.g. [sex, view]
    age_bands: Optional[List[float]] = None  # cut points turning a numeric subgroup into bands
    ece_bins: int = 10
    threshold: Literal["youden", "0.5"] = "youden"  # operating point chosen on validation
    missing_modality: bool = True  # also report with image removed / table removed


class ExplainConfig(Section):
    methods: List[str] = Field(
        default_factory=lambda: ["integrated_gradients", "occlusion", "gradcam", "tabular_ig", "feature_ablation"]
    )
    gradcam_layer: Optional[str] = None  # module path; None = last conv/block of the image encoder
    ig_steps: int = 32
    occlusion_window: Optional[List[int]] = None  # default: 1/8 of the image size
    batch_size: int = 16
    faithfulness_steps: int = 10
    max_samples: int = 8  # samples explained when --ids is not given


# --------------------------------------------------------------------------- root
class RunConfig(Section):
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cohort: CohortConfig = Field(default_factory=CohortConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
