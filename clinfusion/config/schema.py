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
    federated: FederatedConfig  (Flower: sites, rounds, strategy, privacy; runtime=off = ordinary pretraining)
"""

from __future__ import annotations

from typing import Annotated, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PositiveFloat, PositiveInt

Fraction = Annotated[float, Field(gt=0.0, le=1.0)]  # a share in (0, 1]


def _label_text(value):
    """A label value as the label column's text (``1``, ``1.0`` -> ``"1"``; YAML ``yes`` stays ``"yes"``)."""
    if value is None or isinstance(value, str):
        return None if value is None else value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


LabelValue = Annotated[Optional[str], BeforeValidator(_label_text)]


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
    cache_dir: Optional[str] = None  # float32 store of the table (built once, read per row); None = ~/.cache/clinfusion/omics


class CohortConfig(Section):
    table: str = ""  # CSV or Parquet, one row per sample; relative paths resolve from the config file
    id_column: Optional[str] = None  # unique sample id; None = row index
    patient_column: Optional[str] = None  # patient key for grouped splits; None = one patient per row
    image_column: Optional[str] = None  # image path relative to the table's folder; empty cell = no image
    label_column: Union[None, str, List[str]] = None  # one column, or a list for multi-label
    # binary label: the value counted as positive (AUROC, sensitivity, prob_<value> in predictions); None = the
    # second of the two sorted values (1 of 0/1, True of False, yes of no; but normal of abnormal: set it there)
    positive_label: LabelValue = None
    features: Union[Literal["auto"], List[str]] = "auto"  # auto = all columns not used above/excluded
    categorical: Optional[List[str]] = None  # categorical features; None = inferred from dtype
    exclude: List[str] = Field(default_factory=list)  # never used as features (e.g. text labels)
    split_column: Optional[str] = None  # optional given split (train/val/test); checked for leakage
    site_column: Optional[str] = None  # federated: hospital/site of each row (never a feature); sites = its values
    omics: Optional[OmicsConfig] = None
    on_bad_image: Literal["error", "skip"] = "error"  # unreadable/missing image file: fail fast or drop row
    missing_features: Literal["error", "missing"] = "error"  # at inference: absent trained column


# --------------------------------------------------------------------------- image
class IntensityConfig(Section):
    mode: Literal["scale", "zscore", "window", "none"] = "scale"  # scale: to [0,1] from min/max
    a_min: Optional[float] = None  # window mode: lower bound (e.g. -1000 HU); any real (checked a_min < a_max)
    a_max: Optional[float] = None  # window mode: upper bound


class AugmentConfig(Section):
    """Augmentations for self-supervised views (applied only where a task asks for views)."""

    crop_scale: List[Fraction] = Field(default_factory=lambda: [0.6, 1.0], min_length=1, max_length=2)  # random resized crop area [min, max], each in (0, 1]
    flip_prob: float = Field(0.5, ge=0.0, le=1.0)  # probability of a flip along the last axis
    rotate_degrees: float = Field(10.0, ge=0.0, le=180.0)  # max rotation either way
    intensity_shift: float = Field(0.1, ge=0.0)  # random intensity shift (fraction of range)
    contrast_gamma: List[PositiveFloat] = Field(default_factory=lambda: [0.8, 1.25], min_length=2, max_length=2)  # gamma range [low, high]
    noise_std: float = Field(0.02, ge=0.0)  # Gaussian noise std (in normalised intensity units)
    blur_prob: float = Field(0.2, ge=0.0, le=1.0)  # probability of a Gaussian blur


class ImageConfig(Section):
    spatial_dims: Literal[2, 3] = 2
    channels: Literal[1, 3] = 1  # images are converted to this many channels
    size: List[PositiveInt] = Field(default_factory=lambda: [64, 64], min_length=2, max_length=3)  # output size per spatial dim
    spacing: Optional[List[PositiveFloat]] = None  # resample to this voxel spacing (3D), mm
    orientation: Optional[str] = None  # e.g. "RAS" (3D)
    volumes_4d: Literal["mean", "first", "reject"] = "mean"  # 4D NIfTI (fMRI, diffusion): average the volumes, keep the first, or treat as unreadable
    intensity: IntensityConfig = Field(default_factory=IntensityConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    cache: Literal["none", "memory", "disk"] = "none"  # MONAI CacheDataset / PersistentDataset
    cache_dir: Optional[str] = None  # for cache=disk; None = ~/.cache/clinfusion/images (shared by every command)


# --------------------------------------------------------------------------- split
class SplitConfig(Section):
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)  # share of patients
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    stratify: bool = True  # label-stratified where a single label exists


# --------------------------------------------------------------------------- model
class ImageEncoderConfig(Section):
    name: str = "resnet18"  # registry name (checked by config/names.py): see clinfusion.encoders.list_image_encoders()
    weights: Optional[str] = None  # local .safetensors / .pt state dict; never downloaded
    width: Optional[int] = Field(None, ge=1)  # override base width (tiny test models)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # dropout before the embedding
    # CNN encoders (cnn_tiny, resnet*): global pooling of the last feature map. "max" keeps a
    # small finding (a nodule, a lesion) that "avg" dilutes over the whole image; "avgmax"
    # concatenates both (embedding twice as wide). ViT / hf encoders pool their tokens.
    pool: Literal["avg", "max", "avgmax"] = "avg"
    # CNN encoders: stride of the first convolution (null: the network's own, 2). 1 keeps full
    # resolution for small images (<= 64 px), where a stride-2 stem blurs a few-pixel finding
    stem_stride: Optional[int] = Field(None, ge=1, le=4)
    # name "hf": a Hugging Face vision model (ViT, DINOv2, ConvNeXt, Swin, ...): a local
    # save_pretrained folder or a hub id already in the local HF cache (never downloaded)
    hf_model: Optional[str] = None
    hf_cache_dir: Optional[str] = None  # HF cache folder to resolve hub ids in (null: the default cache)


class TabularEncoderConfig(Section):
    hidden_size: int = Field(64, ge=1)  # token width of the transformer (a multiple of num_heads)
    num_layers: int = Field(2, ge=1)  # transformer layers
    num_heads: int = Field(4, ge=1)  # attention heads
    intermediate_size: int = Field(128, ge=1)  # feed-forward width
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # transformer dropout
    # how omics columns become tokens: one per gene set of cohort.omics.gene_sets, or per chunk of columns;
    # auto = gene sets when the cohort has a gene-set file, else chunks
    omics_grouping: Literal["auto", "chunk", "gene_sets"] = "auto"
    omics_chunk_size: int = Field(256, ge=1)  # columns per omics token when grouping by chunk


class FusionConfig(Section):
    name: str = "concat"  # registry name (config/names.py checks it): concat, gated, cross_attention or a plug-in
    dim: int = Field(128, ge=1)  # fused embedding width
    num_heads: int = Field(4, ge=1)  # cross-attention only (dim must be a multiple)


class ModelConfig(Section):
    image_encoder: ImageEncoderConfig = Field(default_factory=ImageEncoderConfig)
    tabular_encoder: TabularEncoderConfig = Field(default_factory=TabularEncoderConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    projection_dim: int = Field(128, ge=1)  # shared space of the CLIP-style alignment
    modality_dropout: float = Field(0.1, ge=0.0, lt=1.0)  # drop a whole modality in training


# --------------------------------------------------------------------------- pretrain
class LossWeights(Section):
    clip: float = Field(1.0, ge=0.0)  # image<->table symmetric InfoNCE (Radford et al. 2021)
    simclr: float = Field(0.5, ge=0.0)  # image NT-Xent over two views (Chen et al. 2020)
    byol: float = Field(0.0, ge=0.0)  # image BYOL (Grill et al. 2020)
    scarf: float = Field(0.5, ge=0.0)  # tabular corruption contrastive (Bahri et al. 2022)
    masked_features: float = Field(0.0, ge=0.0)  # tabular masked-feature reconstruction
    itm: float = Field(0.0, ge=0.0)  # image-table matching through the fusion, CLIP-hard negatives (Li et al. 2021)
    masked_fused: float = Field(0.0, ge=0.0)  # masked table features rebuilt from the FUSED embedding (Du et al. 2024)
    mae: float = Field(0.0, ge=0.0)  # masked image modelling, ViT encoders only (He et al. 2022)


class MAEConfig(Section):
    """Masked autoencoder settings (He et al. 2022); read only when ``pretrain.losses.mae > 0``."""

    mask_ratio: float = Field(0.75, gt=0.0, lt=1.0)  # share of patches hidden from the encoder
    decoder_dim: int = Field(64, ge=8, le=1024)  # decoder token width (paper: 512)
    decoder_depth: int = Field(2, ge=1, le=12)  # decoder transformer blocks (paper: 8)
    decoder_heads: int = Field(4, ge=1, le=16)  # must divide decoder_dim
    norm_pix_loss: bool = True  # targets are per-patch normalised pixels (the paper's better variant)


class EngineConfig(Section):
    """What the one training engine reads (``clinfusion.training.engine.Trainer``): ``pretrain`` and ``finetune``
    (its models trained end to end: mlp, full, image_only, fused_scratch) each hold these keys, with their own
    defaults where they differ."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)  # per process
    lr: float = Field(1e-3, gt=0.0)  # peak AdamW learning rate
    weight_decay: float = Field(0.05, ge=0.0)  # AdamW decoupled weight decay (none on norms and biases)
    warmup_epochs: float = Field(1.0, ge=0.0)  # linear warm-up, then cosine decay
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimizer step
    grad_clip: Optional[float] = Field(1.0, gt=0.0)  # max gradient norm; None = no clipping
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    grad_checkpointing: bool = False  # recompute encoder activations in backward (less memory)
    # GPU speed, same weights (checkpoints load anywhere, a run may resume with other values): torch.compile of
    # the image encoder ("default" | "reduce-overhead" | "max-autotune"; the first steps wait for the compiler)
    # and its weights and images in channels-last memory layout (NHWC / NDHWC: faster convolutions on
    # tensor-core GPUs). See clinfusion.training.engine.image_speedups and benchmarks.gpu for the measurements.
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = "off"
    channels_last: bool = False
    num_workers: int = Field(0, ge=0)  # DataLoader worker processes (0 = load in the training process)
    pin_memory: bool = True  # page-locked host batches (CUDA only)
    persistent_workers: bool = True  # keep DataLoader workers alive between epochs (with num_workers > 0)
    prefetch_factor: Optional[int] = Field(None, ge=1)  # batches each worker loads ahead; None = torch's default (2)
    checkpoint_every_steps: Optional[int] = Field(None, ge=1)  # also save checkpoints/last every N optimizer steps (mid-epoch resume)
    log_every: int = Field(10, ge=1)  # optimizer steps per train row of metrics.csv
    progress: bool = True  # progress bar per epoch (rank 0)


class PretrainConfig(EngineConfig):
    """Self-supervised pretraining: the engine keys (defaults above) plus the losses and their settings."""

    losses: LossWeights = Field(default_factory=LossWeights)
    temperature: float = Field(0.07, gt=0.0)  # initial CLIP / NT-Xent temperature
    max_logit_scale: float = Field(100.0, gt=0.0)  # learnable CLIP logit scale is clamped to this
    micle: bool = False  # two images of one patient as a positive pair (Azizi et al. 2021)
    scarf_corruption: float = Field(0.6, gt=0.0, le=1.0)  # share of features replaced in SCARF views
    mask_ratio: float = Field(0.3, gt=0.0, le=1.0)  # masked-feature reconstruction
    fused_mask_ratio: float = Field(0.5, gt=0.0, le=1.0)  # share of observed table features hidden for masked_fused
    mae: MAEConfig = Field(default_factory=MAEConfig)
    checkpoint_every: int = Field(1, ge=1)  # epochs
    retrieval_every: int = Field(1, ge=1)  # epochs


# --------------------------------------------------------------------------- finetune
class LightGBMConfig(Section):
    n_estimators: int = Field(200, ge=1)  # boosting rounds
    learning_rate: float = Field(0.05, gt=0.0)  # shrinkage
    num_leaves: int = Field(15, ge=2)  # leaves per tree
    min_child_samples: int = Field(10, ge=1)  # rows per leaf at least
    with_raw_features: bool = True  # concatenate raw clinical features to the fused embedding
    num_threads: int = Field(0, ge=0)  # LightGBM threads; 0 = LightGBM's default (all cores)


class ProbeConfig(Section):
    """Linear probes: L2 logistic regression (L-BFGS) on standardised frozen embeddings, C chosen on the
    validation patients from a log grid (Radford et al. 2021, CLIP linear-probe protocol)."""

    c_min: float = Field(1e-4, gt=0)  # smallest inverse L2 strength C of the grid
    c_max: float = Field(1e4, gt=0)  # largest C of the grid
    c_steps: int = Field(17, ge=1, le=200)  # log-spaced grid points from c_min to c_max (1 = c_min only)
    max_iter: int = Field(1000, ge=10)  # L-BFGS iterations per fit


class FinetuneConfig(EngineConfig):
    """Downstream models on the splits; the engine keys (see EngineConfig) train mlp, full, image_only and
    fused_scratch, with ``lr`` the heads' learning rate and ``encoder_lr`` the encoders' (full fine-tuning)."""

    # names of the downstream model registry (clinfusion.downstream.models), checked at config load; a plug-in
    # registered with register_model(name, kind) is accepted. Heads (saved in classifier/): linear = probe on the
    # fused embedding, linear_image / linear_table / linear_concat = probes on the image / table / [image, table]
    # embeddings, mlp, full, lightgbm. The run's primary head is the one with the best validation AUROC.
    heads: List[str] = Field(default_factory=lambda: ["linear", "linear_image", "linear_table", "linear_concat"])
    # baselines on the same splits: tabular_lgbm, image_only, fused_scratch
    baselines: List[str] = Field(default_factory=lambda: ["tabular_lgbm", "image_only", "fused_scratch"])
    label_fractions: List[Fraction] = Field(default_factory=lambda: [1.0], min_length=1)  # each in (0, 1]: share of training patients with labels
    # what a label fraction below 1 does to the validation patients (C grid, early stopping, threshold, model
    # choice): "all" keeps every validation label, the protocol of MMCL and TIP (it flatters low fractions:
    # at 10% a cohort may train on 17 rows and validate on 45 labelled patients); "fraction" keeps the same
    # fraction of them too (at least one patient per class), as a cohort with that few labels would have
    validation_labels: Literal["all", "fraction"] = "all"
    cv_folds: Optional[int] = Field(None, ge=3)  # None: holdout split; k >= 3: patient-grouped k-fold CV (one fold tests, the next validates, k-2 train)
    epochs: int = Field(20, ge=1)  # engine defaults that differ from pretraining
    encoder_lr: float = Field(1e-4, gt=0.0)  # full fine-tuning: lower learning rate for encoders
    weight_decay: float = Field(1e-4, ge=0.0)
    # the models trained end to end (full, fused_scratch, image_only) see a new random view of each
    # training image every epoch, drawn with the image.augment settings (validation / test images never)
    augment: bool = False
    # full and fused_scratch: in training, hide each input (image / record) from the fusion with this
    # probability (never both), so neither encoder can lean on the other one alone
    modality_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    freeze: List[str] = Field(default_factory=list)  # full fine-tuning: module names to freeze
    mlp_hidden: int = Field(128, ge=1)  # hidden width of the mlp head
    # the weights the mlp head keeps: "last" (the end of the epochs budget) or "best" (the epoch with the
    # best validation AUROC, as full / fused_scratch / image_only do; finetune.early_stopping applies).
    # Dev seeds of the planted cohort (not the benchmark's; 2D 10-12, 3D 200-202, test split, 100% labels,
    # demo settings), mlp head AUROC "best" -> "last": 2D 0.947 0.904 0.889 -> 0.962 0.909 0.884 (mean
    # 0.913 -> 0.918), 3D 0.745 0.864 0.800 -> 0.859 0.865 0.821 (0.803 -> 0.848): with ~45 validation
    # patients the best-AUROC epoch is a noisy pick
    mlp_keep: Literal["last", "best"] = "last"
    lightgbm: LightGBMConfig = Field(default_factory=LightGBMConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    early_stopping: Optional[int] = Field(None, ge=1)  # stop after this many epochs without a better validation
    # AUROC (None: train all epochs); either way the kept weights are those of the best validation epoch
    warmup_epochs: float = Field(0.0, ge=0.0)
    progress: bool = False


class EvaluationConfig(Section):
    bootstrap: int = Field(1000, ge=0)  # bootstrap resamples of patients for 95% CIs (0 = off)
    ci: float = Field(0.95, gt=0.0, lt=1.0)  # confidence level of the bootstrap intervals
    subgroups: List[str] = Field(default_factory=list)  # cohort columns, e.g. [sex, view]
    age_bands: Optional[List[float]] = None  # any real cut points turning a numeric subgroup into bands
    ece_bins: int = Field(10, ge=1)  # bins of the expected calibration error
    threshold: Literal["youden", "0.5"] = "youden"  # operating point chosen on validation
    missing_modality: bool = True  # also report with image removed / table removed


class ExplainConfig(Section):
    methods: List[str] = Field(
        default_factory=lambda: ["integrated_gradients", "occlusion", "gradcam", "tabular_ig", "feature_ablation"]
    )
    gradcam_layer: Optional[str] = None  # module path; None = last conv/block of the image encoder
    ig_steps: int = Field(32, ge=1)  # Integrated Gradients interpolation steps
    # the reference image of integrated gradients, occlusion and the deletion/insertion curves: "zero"
    # (black), "mean" (each image's mean intensity) or "blur" (the image Gaussian-blurred, sigma = 1/16 of
    # its size; Sturmfels et al. 2020). A black reference is far from any real film: the model's response
    # to it, not to the finding, then dominates the map.
    image_baseline: Literal["zero", "mean", "blur"] = "mean"
    occlusion_window: Optional[List[PositiveInt]] = None  # default: 1/8 of the image size
    batch_size: int = Field(16, ge=1)  # samples per attribution batch
    faithfulness_steps: int = Field(10, ge=1)  # deletion-curve steps
    max_samples: int = Field(8, ge=1)  # samples explained when --ids is not given


# --------------------------------------------------------------------------- federated
class FederatedConfig(Section):
    """Federated pretraining on Flower (McMahan et al. 2017): the same model, losses and engine
    as ``pretrain``, trained where the rows are (see clinfusion/federated and README "Federated")."""

    runtime: Literal["off", "simulation", "deployment"] = "off"  # off: ordinary pretraining; simulation: all
    # sites on this machine; deployment: submit to a running SuperLink (flower-superlink / flower-supernode)
    site_tables: Dict[str, str] = Field(default_factory=dict)  # {site: table} per-site cohort tables (else
    # cohort.site_column splits cohort.table); relative paths resolve from the config file
    rounds: int = Field(10, ge=1)  # federated rounds (each: broadcast, local training, aggregation, checkpoint)
    local_epochs: int = Field(1, ge=1)  # local passes over a site's training rows per round
    local_steps: Optional[int] = Field(None, ge=1)  # instead: this many local optimizer steps per round
    fraction_sites: float = Field(1.0, gt=0.0, le=1.0)  # share of connected sites sampled each round
    min_sites: int = Field(2, ge=1)  # sites that must be connected (deployment) and sampled per round
    # Flower strategy (registry in federated/). fedavg: on the planted cohorts (benchmarks/RESULTS.md "Federated
    # pretraining", 5-10 seeds per cohort) FedAvg and FedProx stay within 0.03 AUROC of centralized on each,
    # FedAdam not on all; none is reliably above the best site alone. Numbers: README "Which strategy"
    strategy: Literal["fedavg", "fedprox", "fedadam"] = "fedavg"
    mu: float = Field(0.01, ge=0.0)  # FedProx proximal weight (Li et al. 2020); fedprox only
    server_lr: float = Field(0.01, gt=0.0)  # FedAdam server learning rate eta (Reddi et al. 2021); fedadam only
    local_optimizer: Literal["adamw", "sgd"] = "adamw"  # local solver (fresh each round, constant pretrain.lr)
    keep_local_norm: bool = False  # FedBN (Li et al. 2021): normalisation layers stay at each site
    min_category_count: int = Field(5, ge=1)  # a site reveals a category value only if it has >= this many rows
    dp_noise_multiplier: float = Field(0.0, ge=0.0)  # client-side DP (Flower fixed clipping); 0 = off
    dp_clipping_norm: float = Field(1.0, gt=0.0)  # L2 bound on each site's update when DP is on
    connect_timeout_s: float = Field(120.0, gt=0.0)  # wait at most this long for min_sites SuperNodes
    round_timeout_s: float = Field(3600.0, gt=0.0)  # a sampled site not answering within this drops out (error)
    superlink: str = "127.0.0.1:9093"  # deployment: SuperLink Control API address used by `flwr run`
    insecure: bool = True  # deployment: no TLS (localhost only); False = TLS with root_certificates
    root_certificates: Optional[str] = None  # deployment: CA certificate (PEM) of the SuperLink when TLS is on


# --------------------------------------------------------------------------- root
class RunConfig(Section):
    seed: int = Field(0, ge=0)  # seeds splits, initialisation, views and loaders
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cohort: CohortConfig = Field(default_factory=CohortConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    federated: FederatedConfig = Field(default_factory=FederatedConfig)
