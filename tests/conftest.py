"""Suite-wide settings: tiny, single-threaded, deterministic, offline."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
if "CLINFUSION_CACHE" not in os.environ:  # omics/image stores: one folder per session, removed at exit
    os.environ["CLINFUSION_CACHE"] = tempfile.mkdtemp(prefix="cf_test_cache_")
    atexit.register(shutil.rmtree, os.environ["CLINFUSION_CACHE"], ignore_errors=True)

import torch  # noqa: E402

torch.set_num_threads(1)
