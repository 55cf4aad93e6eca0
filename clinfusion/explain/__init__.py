"""clinfusion.explain: captum attributions, modality share, faithfulness, export, report.

Entry point: :func:`clinfusion.explain.run.run_explain` (``clinfusion explain``).

Modules, one concept each:

* ``common``: :class:`~clinfusion.explain.common.Explainable` (the classifier + handles), targets;
* ``adapter``: ``explainable_from_classifier(classifier, task)``;
* ``image``: ``IMAGE_METHODS`` (integrated_gradients, occlusion, gradcam) -> maps ``[B, *S]``;
* ``tabular``: ``TABULAR_METHODS`` (tabular_ig, feature_ablation) + LightGBM TreeSHAP;
* ``modality``: per-sample modality share; ``faithfulness``: deletion/insertion, agreement,
  model randomisation; ``global_views``: rankings, class maps; ``export``: map files;
* ``pipeline``: one batch through every method; ``results``: output files; ``report``: report.html.
"""
