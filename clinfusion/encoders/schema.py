"""What the tabular encoder needs to know about the table (no pandas here).

Produced by :class:`clinfusion.datasets.preprocess.TabularPreprocessor` (``.schema``),
saved inside ``preprocessing.json`` with the run, consumed by
:class:`clinfusion.encoders.tabular.TabularEncoder`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List


@dataclass
class TableSchema:
    numeric: List[str] = field(default_factory=list)  # F_num numeric clinical columns, in order
    categorical: List[str] = field(default_factory=list)  # F_cat categorical columns, in order
    cat_cardinalities: List[int] = field(default_factory=list)  # per categorical: vocab size + 1 (index 0 = unknown)
    omics_columns: List[str] = field(default_factory=list)  # G omics columns, in order
    omics_groups: List[List[int]] = field(default_factory=list)  # column indices per gene set; [] = chunk by config
    group_names: List[str] = field(default_factory=list)  # one name per omics group (gene-set names)

    @property
    def n_num(self) -> int:
        return len(self.numeric)

    @property
    def n_cat(self) -> int:
        return len(self.categorical)

    @property
    def n_omics(self) -> int:
        return len(self.omics_columns)

    @property
    def clinical_columns(self) -> List[str]:
        """Numeric then categorical: the order of clinical tokens after CLS."""
        return list(self.numeric) + list(self.categorical)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TableSchema":
        return cls(**d)
