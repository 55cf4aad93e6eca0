"""Suite-wide settings: tiny, single-threaded, deterministic, offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CLINFUSION_CACHE", __import__("tempfile").mkdtemp(prefix="cf_test_cache_"))  # omics/image stores

import torch  # noqa: E402

torch.set_num_threads(1)
