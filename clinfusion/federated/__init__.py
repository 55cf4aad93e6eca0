"""Federated joint pretraining on Flower: sites keep their rows, the server sees weights and counts.

* :mod:`~clinfusion.federated.sites`: which sites a run has; what one site reads (its own rows);
* :mod:`~clinfusion.federated.stats`: preprocessing fitted from per-site sums (equal to a pooled fit);
* :mod:`~clinfusion.federated.local`: one site's local round with the ordinary engine and task;
* :mod:`~clinfusion.federated.apps`: Flower ``client_app`` / ``server_app`` and :func:`serve` (rounds,
  strategies, metrics.csv, checkpoints, resume);
* :mod:`~clinfusion.federated.runtime`: ``simulation`` (in-process grid) and ``deployment`` (``flwr run``).

Entry point: ``clinfusion pretrain CFG federated.runtime=simulation`` (``run_pretrain`` dispatches here).
"""
