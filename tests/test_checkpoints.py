"""Re-score every published checkpoint (`checkpoints/<dataset>/<run>/`) and check it agrees with its own `metrics.json`.

Each published run's `metrics.json` holds a `check` block written at the end of training: the accuracy and the mean
MACs per image on the first `limit` images of the run's own validation split (`bsgate_eval --split valid --limit N`).
This test scores exactly those images again, from the committed files alone, through the console script users run, and
requires the same accuracy and MACs; it also checks that the folder holds what `checkpoints/README.md` promises. The
CIFAR-10 archive comes from `../shared/data` (or `$BSGATE_DATA`); without it the test is skipped, except under CI
(`CI` set), where a missing archive is a failure.
"""
import json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CKPT = ROOT / "checkpoints"
DATA = Path(os.environ.get("BSGATE_DATA", ROOT.parent / "shared" / "data"))
ARCHIVES = {"cifar10": DATA / "cifar10" / "train.tar.gz"}
RUNS = sorted(p for p in CKPT.glob("*/*") if p.is_dir())
EVAL = Path(sys.executable).with_name("bsgate_eval")


def test_published_runs_listed():
    "Every published folder is complete and listed in checkpoints/README.md, and every listed run is there"
    assert RUNS, "no published checkpoints under checkpoints/<dataset>/<run>/"
    readme = (CKPT / "README.md").read_text()
    for run in RUNS:
        for f in ("config.json", "model.pth", "metrics.json", "history.json"):
            assert (run / f).is_file(), f"{run.relative_to(ROOT)} lacks {f}"
        assert f"`{run.parent.name}/{run.name}`" in readme, f"{run.relative_to(ROOT)} is not listed in checkpoints/README.md"
        assert "check" in json.loads((run / "metrics.json").read_text()), f"{run.relative_to(ROOT)}/metrics.json has no `check` block"


@pytest.mark.parametrize("run", RUNS, ids=[f"{p.parent.name}/{p.name}" for p in RUNS])
def test_rescore(run: Path):
    data = ARCHIVES[run.parent.name]
    if not data.exists():
        if os.environ.get("CI"): pytest.fail(f"CI needs the data to re-score {run.name}: no {data}")
        pytest.skip(f"no {data}")
    want = json.loads((run / "metrics.json").read_text())["check"]
    out = subprocess.run([str(EVAL), "--checkpoint", str(run), "--data", str(data), "--split", want["split"],
                          "--limit", str(want["limit"])], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["n"] == want["limit"], (got["n"], want["limit"])
    assert abs(got["accuracy"] - want["accuracy"]) < 1e-9, (run.name, got["accuracy"], want["accuracy"])
    if want.get("macs") is not None:
        assert abs(got["macs"] / want["macs"] - 1) < 1e-6, (run.name, got["macs"], want["macs"])
