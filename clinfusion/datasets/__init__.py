"""clinfusion.datasets: data in (cohort tables, images, preprocessing, splits, datasets).

Kept light: import the submodule you need, e.g.
``from clinfusion.datasets.cohort import load_cohort``,
``from clinfusion.datasets.preprocess import TabularPreprocessor``,
``from clinfusion.datasets.splits import make_splits``,
``from clinfusion.datasets.bundled import load_nih_cxr``,
``from clinfusion.datasets.validate import validate_cohort``.
"""
