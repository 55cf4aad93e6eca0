"""Fine-tuning and evaluation: heads, baselines, metrics with patient-bootstrap CIs,
subgroups, calibration, label efficiency, CV, evaluate / predict and the HTML report.

Public entry points (imported lazily by the CLI; nothing heavy is imported here):

* :func:`clinfusion.downstream.finetune.run_finetune` (cfg, pretrained, out_dir, overwrite) -> run dir
* :func:`clinfusion.downstream.evaluate.run_evaluate` (run_dir, table, out_dir, overwrite) -> out dir
* :func:`clinfusion.downstream.predict.run_predict` (run_dir, table, out_file) -> CSV path
* :func:`clinfusion.downstream.io.load_finetuned` (run_dir, head=None) -> :class:`FinetunedRun`
* :func:`clinfusion.downstream.metrics.compute_metrics`, :func:`~clinfusion.downstream.metrics.choose_threshold`
* :func:`clinfusion.downstream.bootstrap.bootstrap_ci` (patient resampling)
* :func:`clinfusion.downstream.subgroups.subgroup_metrics`
* registries ``HEADS`` (linear, mlp, full, lightgbm) and ``BASELINES`` (tabular_lgbm,
  image_only, fused_scratch) in :mod:`clinfusion.downstream.heads`
"""
