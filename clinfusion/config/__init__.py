"""Typed configs: :func:`load_config`, :class:`RunConfig` and its sections."""

from clinfusion.config.loader import dump_config, load_config, save_config, validate_config
from clinfusion.config.schema import (
    CohortConfig,
    EngineConfig,
    EvaluationConfig,
    ExplainConfig,
    FinetuneConfig,
    ImageConfig,
    ModelConfig,
    OmicsConfig,
    PretrainConfig,
    RunConfig,
    SplitConfig,
)

__all__ = [
    "load_config", "dump_config", "save_config", "validate_config", "RunConfig", "CohortConfig",
    "ImageConfig", "SplitConfig", "ModelConfig", "EngineConfig", "PretrainConfig", "FinetuneConfig",
    "EvaluationConfig", "ExplainConfig", "OmicsConfig",
]
