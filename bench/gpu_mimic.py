"""Rehearse the GPU check here: a site folder holding only what the GPU machine has (bench/gpu_device_packages.txt),
linked from this venv, so that `python -S` with PYTHONPATH=<carried wheels>:<this folder> imports nothing else.

    .venv/bin/python bench/gpu_mimic.py /tmp/device_site          # build it (symlinks; seconds)
    PY=".venv/bin/python -S" MIMIC=/tmp/device_site WHL=/tmp/whl311 bash bench/gpu_check.sh --dry-run

It prints the device packages this venv lacks (they are absent in the rehearsal too) and the packages of this venv that
are left out (fastai, fastcore, nbdev, ...: what the check must bring as wheels).
"""
import re, sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent

def norm(n:str) -> str: return re.sub(r'[-_.]+', '-', n).lower()

def device_packages() -> set:
    return {norm(l.strip()) for l in (HERE / 'gpu_device_packages.txt').read_text().splitlines() if l.strip() and not l.startswith('#')}

def top_levels(d) -> set:
    "The importable names a distribution installs (top_level.txt, else the first parts of its files)"
    t = d.read_text('top_level.txt')
    if t: return {o.strip() for o in t.split() if o.strip()}
    names = set()
    for f in d.files or []:
        p = f.parts[0]
        if p.endswith(('.dist-info', '.data')) or p in ('..', '__pycache__') or p.endswith('.pth'): continue
        names.add(p[:-3] if p.endswith('.py') else p)
    return names

def build(dest:Path):
    dest.mkdir(parents=True, exist_ok=True)
    want, have, left = device_packages(), set(), []
    for d in metadata.distributions():
        n = norm(d.metadata['Name'])
        if n not in want: left.append(n); continue
        have.add(n)
        root = Path(d.locate_file(''))
        for t in top_levels(d) | {Path(str(d._path)).name}:
            src = root / t if (root / t).exists() else root / f'{t}.py'
            if not src.exists(): continue
            link = dest / src.name
            if not link.exists(): link.symlink_to(src)
        for so in root.glob('*.so'):   # top-level extension modules
            if not (dest / so.name).exists() and any(so.name.startswith(t) for t in top_levels(d)): (dest / so.name).symlink_to(so)
    print(f"{dest}: {len(have)} of the device's {len(want)} packages linked")
    print("device packages this venv lacks:", ', '.join(sorted(want - have)) or 'none')
    print("left out (must travel as wheels if imported):", ', '.join(sorted(set(left))))

if __name__ == '__main__':
    build(Path(sys.argv[1] if len(sys.argv) > 1 else '/tmp/device_site'))
