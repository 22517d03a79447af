"""Every tutorial runs top to bottom on a CPU, the way a user runs it: all cells, no tag filtering.

`nbs/tutorials/*.ipynb` are the full recipes: their `gpu` cells print one line and skip when there is no GPU, their
`slow` cells read the published runs in `checkpoints/`, and the rest train short runs on the real data under
`BSGATE_DATA` (default: `../shared/data` next to the repository, which CI has). Each tutorial runs in its own Python
process, as a fresh Jupyter kernel would, with execnb's `CaptureShell` (what `nbdev_test` uses), the GPU hidden
(`CUDA_VISIBLE_DEVICES=''`) and one thread per process (`OMP_NUM_THREADS`, unless set); it must finish without an
error within its limit below. Without the data folder the tests skip, except under `CI`, where they fail.

Time one tutorial, cell by cell (the same run as the test):

    .venv/bin/python tests/test_tutorials.py nbs/tutorials/cifar10.ipynb
"""
import json, os, re, subprocess, sys, tempfile, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / 'nbs' / 'tutorials').glob('*.ipynb'))
DATA = Path(os.environ.get('BSGATE_DATA') or ROOT.parent / 'shared' / 'data').expanduser().resolve()
NEEDS = {'cifar10': 'cifar10/train.tar.gz', 'imagenet': 'imagenette2-160', 'cityscapes': 'camvid'}   # under DATA
# Seconds, top to bottom on one thread. Measured on a 2-core Intel Xeon shared with two training runs (load 4-5), in
# two runs of this test: cifar10 131 and 169 s, cityscapes 61 s, imagenet 33 s (3.8 and 4.4 minutes for the whole test).
# The limits leave room for a loaded runner, not for a bigger run: a tutorial over its limit needs a smaller quick run.
LIMIT_S = {'cifar10': 240, 'cityscapes': 120, 'imagenet': 90}
_DIRECTIVE = re.compile(r'^\s*#\|\s*(\S+)', re.MULTILINE)


def _code_cells(nb:Path) -> list:
    return [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']


def run_tutorial(nb:Path, report:Path) -> None:
    "Execute every code cell of `nb` in one CaptureShell, from the notebook's folder; write per-cell seconds and outputs to `report`"
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    nb = Path(nb).resolve()
    cells, rows, t0 = read_nb(nb).cells, [], time.time()
    sh = CaptureShell(nb)
    err = None
    with working_directory(nb.parent):
        for i, c in enumerate(cells):
            if c.cell_type != 'code': continue
            t = time.time()
            sh.cell(c)
            text = ''.join(''.join(o.get('text', '')) for o in c.get('outputs', []) if o.get('output_type') == 'stream')
            rows.append(dict(cell=i, s=round(time.time() - t, 1), flags=_DIRECTIVE.findall(c.source), out=text[-2000:]))
            if sh.exc:
                tb = [''.join(o.get('traceback', [])) for o in c.get('outputs', []) if o.get('output_type') == 'error']
                err = f"cell {i}:\n{c.source}\n\n" + (tb[-1] if tb else repr(sh.exc))
                break
    report.write_text(json.dumps(dict(total_s=round(time.time() - t0, 1), cells=rows, error=err)))


def test_tutorials_found():
    assert {p.stem for p in TUTORIALS} == set(NEEDS), f"nbs/tutorials/ holds {[p.name for p in TUTORIALS]}: update NEEDS and LIMIT_S"


@pytest.mark.parametrize('nb', TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_reads_only_published_files(nb:Path):
    "Every path a tutorial reads from the repository exists in a clone: published, not git-ignored (bench/results/ is not)"
    bad = []
    for src in _code_cells(nb):
        for rel in re.findall(r"""['"](\.\./\.\./[^'"]+)['"]""", src):
            p = (nb.parent / rel).resolve()
            if ROOT not in p.parents: continue        # outside the repository: the data folder
            ignored = subprocess.run(['git', 'check-ignore', '-q', str(p)], cwd=ROOT).returncode == 0
            if ignored or not p.exists(): bad.append(f"{rel} ({'git-ignored' if ignored else 'missing'})")
    assert not bad, f"{nb.name} reads files a clone does not have: {bad}"


@pytest.mark.parametrize('nb', TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_on_cpu(nb:Path, tmp_path:Path):
    need = DATA / NEEDS[nb.stem]
    if not need.exists():
        if os.environ.get('CI', '').lower() not in ('', '0', 'false'): pytest.fail(f"CI must have the tutorial data: no {need} (set BSGATE_DATA)")
        pytest.skip(f"no {need}: set BSGATE_DATA to the folder holding {NEEDS[nb.stem]}")
    env = {**os.environ, 'BSGATE_DATA': str(DATA), 'CUDA_VISIBLE_DEVICES': '', 'MPLBACKEND': 'Agg',
           'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
    env.pop('IN_TEST', None)   # a user's kernel, not nbdev's test run
    rep, limit = tmp_path / 'report.json', LIMIT_S[nb.stem]
    t = time.time()
    try: p = subprocess.run([sys.executable, __file__, str(nb), str(rep)], env=env, cwd=nb.parent, capture_output=True,
                            text=True, timeout=2 * limit)
    except subprocess.TimeoutExpired: pytest.fail(f"{nb.name} still running after {2 * limit} s (limit {limit} s)", pytrace=False)
    secs = time.time() - t
    if p.returncode or not rep.exists(): pytest.fail(f"{nb.name}: the runner failed\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}", pytrace=False)
    r = json.loads(rep.read_text())
    if r['error']: pytest.fail(f"{nb.name} failed at {r['error']}", pytrace=False)
    slowest = sorted(r['cells'], key=lambda c: -c['s'])[:3]
    print(f"{nb.name}: {secs:.0f} s (cells {r['total_s']:.0f} s; slowest: " + ', '.join(f"cell {c['cell']} {c['s']:.0f} s" for c in slowest) + ')')
    gpu = [c for c in r['cells'] if 'gpu' in c['flags']]
    skipped = [c['cell'] for c in gpu if not c['out'].startswith('no GPU')]
    assert not skipped, f"{nb.name}: gpu cells {skipped} did not print 'no GPU: ...' and skip on a CPU"
    assert secs <= limit, f"{nb.name} took {secs:.0f} s on the CPU, over its {limit} s limit: make its quick runs smaller"


if __name__ == '__main__':   # the test's child process, or a timing run by hand
    nb = Path(sys.argv[1])
    rep = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp()) / 'report.json'
    run_tutorial(nb, rep)
    if len(sys.argv) == 2:
        r = json.loads(rep.read_text())
        for c in r['cells']: print(f"cell {c['cell']:3d} {c['s']:6.1f} s  {' '.join(c['flags'])}")
        print(f"{nb.name}: {r['total_s']:.0f} s" + (f"\nERROR in {r['error']}" if r['error'] else ''))
    sys.exit(0)
