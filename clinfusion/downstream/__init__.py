"""Fine-tuning and evaluation, grouped by mechanism (follow one fit through about five files):

* :mod:`~clinfusion.downstream.labels`: label kinds (binary / multiclass / multilabel), targets,
  loss, probabilities;
* :mod:`~clinfusion.downstream.data`: :class:`FinetuneData` (one cohort's loaders, frozen
  embeddings, raw features, through :mod:`clinfusion.datasets.builder`), folds and label fractions;
* :mod:`~clinfusion.downstream.models`: ONE registry of heads and baselines with a kind
  (``register_model(name, kind)``), the fitting context and the predictor face;
* :mod:`~clinfusion.downstream.probe`: linear probes (scikit-learn logistic regression, C
  chosen on validation) on the fused / image / table / concatenated embeddings;
* :mod:`~clinfusion.downstream.neural`: models trained by the one training engine (``mlp``,
  ``full``, ``image_only``, ``fused_scratch``);
* :mod:`~clinfusion.downstream.lgbm`: everything LightGBM (``lightgbm`` head, ``tabular_lgbm``);
* :mod:`~clinfusion.downstream.evaluation`: metrics (one name list), patient bootstrap,
  subgroups, thresholds, missing-modality variants;
* :mod:`~clinfusion.downstream.inference`: load a fine-tuned run, read a new table as trained,
  ``run_evaluate`` / ``run_predict``;
* :mod:`~clinfusion.downstream.finetune`: ``run_finetune`` (orchestration, model chosen on validation);
* :mod:`~clinfusion.downstream.report`: the HTML reports (helper shared with explain:
  :mod:`clinfusion.reporting.html`).

Nothing heavy is imported here; the CLI and :mod:`clinfusion.api` import the entry points lazily.
"""
