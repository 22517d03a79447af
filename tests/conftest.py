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


def fake_cifar(root: Path, n: int = 8) -> Path:
    "A tiny CIFAR-10-layout folder (train/class0..class9/*.png, `n` 32×32 images a class) for runs of `bsgate_train`"
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in range(10):
        d = root / 'train' / f'class{c}'; d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.clip(rng.normal(20 * c + 30, 40, (32, 32, 3)), 0, 255).astype(np.uint8)).save(d / f'{i}.png')
    return root
