"Shared set-up for the test suite: run from the repo root, headless matplotlib, no stray `IN_TEST`."
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# nbdev's `get_config()` finds settings.ini by searching upwards from the current directory, and
# `nbglob` (used at collection time) calls it: run everything from the repo root, wherever pytest
# was started.
os.chdir(ROOT)
# Figures render off-screen (CI has no display); the notebooks' inline backend is unaffected.
os.environ.setdefault("MPLBACKEND", "Agg")
