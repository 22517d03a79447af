"""Run every notebook under nbs/ the way `nbdev_test` does, one pytest test per notebook.

Cells tagged with a `tst_flags` flag from settings.ini (`notest slow gpu data`) are skipped, unless the
flag is listed in the environment variable `BSGATE_TEST_FLAGS` (space separated, e.g. "slow data"),
which plays the part of `nbdev_test --flags`.
"""
import io, os, sys, contextlib
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.test import test_nb as run_nb, _keep_file  # renamed so pytest does not collect it

CFG = get_config()
ROOT = CFG.config_path
NBS = CFG.nbs_path
SKIP_FLAGS = CFG.tst_flags.split()
FORCE_FLAGS = os.environ.get("BSGATE_TEST_FLAGS", "").split()


def find_notebooks():
    "Notebooks `nbdev_test` would run: recursive, skipping `_*`/`.*` files and folders and `.notest` folders"
    files = nbglob(NBS, as_path=True)  # nbdev's defaults: skip_file_re='^[_.]', skip_folder_re='^[_.]'
    return sorted(f.resolve() for f in files if _keep_file(f, ".notest"))


NOTEBOOKS = find_notebooks()


def test_notebooks_found():
    "Guard: an empty parametrisation would make the suite pass while running no notebook"
    assert NOTEBOOKS, f"no notebooks found under {NBS}"
    assert any(p.name == "index.ipynb" for p in NOTEBOOKS), "nbs/index.ipynb (the docs home page) is missing"


def _restore_globals():
    "Undo process-wide state a notebook may change, so the next notebook starts as it would alone"
    if "matplotlib.pyplot" in sys.modules: sys.modules["matplotlib.pyplot"].close("all")
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_default_dtype(torch.float32)
        torch.set_grad_enabled(True)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[str(p.relative_to(NBS)) for p in NOTEBOOKS])
def test_notebook(nb: Path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # test_nb prepends the repo root to sys.path
    monkeypatch.setenv("IN_TEST", "1")                 # test_nb sets it and never unsets it
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ok, secs = run_nb(nb, skip_flags=SKIP_FLAGS, force_flags=FORCE_FLAGS, basepath=ROOT)
    finally: _restore_globals()
    if not ok:
        pytest.fail(f"{nb.relative_to(ROOT)} failed (skip_flags={SKIP_FLAGS}, force_flags={FORCE_FLAGS}):\n"
                    f"{err.getvalue()}", pytrace=False)
