# Two commands do all set-up on a fresh machine with only Python:
#   make demo   -> bootstrap .venv, install, run the end-to-end demo on the bundled cohort
#   make test   -> bootstrap .venv, install, run the whole test suite
PYTHON ?= python3
# extra pip arguments for the torch install, e.g. a CPU-only index on a plain PyPI machine:
#   make demo TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test install clean bench

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	# torch: install the pinned version only when no torch is importable, so pip never
	# resolves a bare `torch`; which build comes is up to the pip index (TORCH_PIP_ARGS).
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m clinfusion.demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --durations=15

# Every benchmark (hours on 2 CPU cores). The long ones keep finished jobs in benchmarks/.cache, so
# `make bench` again after an interruption, on the same code, goes on where it stopped. Without a
# GPU, benchmarks.gpu is skipped so that gpu.json keeps the last GPU measurement.
bench: $(STAMP)
	$(PY) -m benchmarks.scaling
	$(PY) -m benchmarks.speed
	if $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then $(PY) -m benchmarks.gpu; \
		else echo "no GPU: benchmarks.gpu skipped (benchmarks/results/gpu.json kept)"; fi
	$(PY) -m benchmarks.explain_quality
	$(PY) -m benchmarks.quality --jobs 2
	$(PY) -m benchmarks.label_efficiency --jobs 2
	$(PY) -m benchmarks.federated
	$(PY) -m benchmarks.probe_ceiling
	$(PY) -m benchmarks.label_count --jobs 2
	$(PY) -m benchmarks.label_count --budget large --jobs 2

clean:
	rm -rf $(VENV) build *.egg-info
