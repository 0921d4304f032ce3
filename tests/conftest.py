"""Shared test set-up: offline, quiet and fast on a small CPU."""

from __future__ import annotations

import os

# Before torch is imported anywhere: spinning OpenMP threads make tiny convolutions slow here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# A model that is not on disk must fail at once instead of reaching for the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests never read the developer's real settings.
for _var in [v for v in os.environ if v.startswith("LESSONFORGE_")] + ["OPENAI_API_KEY", "OPENAI_BASE_URL"]:
    os.environ.pop(_var, None)
