"""Where the serving benchmarks find things: the repository, the model's code (model/, what a
server under test runs and what the in-process measurements import), its exported SavedModel
versions, and the directory the results are written to by default.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "model"
MODEL_BASE_PATH = MODEL_DIR / "export" / "digits"
RESULTS_DIR = ROOT / "bench" / "results"
