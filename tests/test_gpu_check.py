"""`bench/gpu_check.py --dry-run`: every part of the GPU check at toy sizes on the CPU, so the script cannot rot (issue 14);
and `bench/gpu_prepare.py`, which prepares the device call and measures what it carries, on small temporary git repositories."""
import json, os, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'bench'))
MiB = 2**20


def test_gpu_check_dry_run(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', BSGATE_CACHE=str(tmp_path / 'cache'))
    t0 = time.time()
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'gpu_check.py'), '--dry-run', '--out', str(tmp_path / 'out')],
                       capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    wall = time.time() - t0
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    res = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    md = (tmp_path / 'out' / 'summary.md').read_text()
    assert set(res['parts']) == {'env', 'travel', 'emulated', 'features', 'cifar', 'ratio', 'ratio_compiled', 'inference', 'presets', 'pipeline'}, res['parts']
    assert all(v['status'] == 'ok' for v in res['parts'].values()), res['parts']
    # what the device call would carry (gpu_prepare's measurement, nothing deleted): slim under the limit, full reported
    t = res['travel']
    assert t['ok'] and 0 < t['slim_mib'] < 64 and t['full_mib'] >= t['slim_mib'] and t['limit_mib'] == 64, t
    assert t['keep'] == ['checkpoints/cifar10/r32_bas'] and set(t['carry']) == {'.whl', '.gpudata'}, t
    assert f"**{t['slim_mib']} MiB** of 64 MiB" in md and f"full: {t['full_mib']} MiB" in md, md[:3000]
    assert 'travel: full' in r.stdout and 'slim' in r.stdout
    assert (ROOT / 'checkpoints' / 'cifar10' / 'r32_bas' / 'model.pth').is_file()   # the dry run deleted nothing
    e = res['emulated']   # the device paths on an emulated CUDA device (tests/test_device.py), as CI runs them
    assert e['ok'] and 'passed' in e['result'] and 'failed' not in e['result'], e
    f = res['features']
    assert f['fused_vs_unfused']['ok'] and f['device_pipeline']['ok'] and f['compile']['ok'], f
    fu = f['fused_vs_unfused']   # relative tolerance, TF32 off while the kernels are compared
    assert fu['rtol'] == 1e-4 and fu['tf32'] == {'matmul': False, 'cudnn': False} and f['compile']['tf32'] == fu['tf32'], fu
    assert set(fu['max_rel']) == {'basic', 'bottleneck'} and all(set(d) == {'out', 'grad', 'buffers'} for d in fu['max_rel'].values()), fu
    # the scaler is read during the fit (fastai's MixedPrecision.after_fit drops it); on the CPU only bf16 runs, its scaler off
    amp = f['amp']
    assert amp['ok'] and amp['bf16']['scaler_seen'] and amp['bf16']['scaler_enabled'] is False and amp['bf16']['finite'], amp
    assert amp['fp16'].startswith('skipped')
    # timed parts ran with cuDNN's benchmark on, deterministic off (train() in `features` turned them the other way)
    for name in ('ratio', 'presets', 'inference', 'pipeline', 'cifar', 'ratio_compiled'):
        c = res['parts'][name]['cudnn']
        assert c['benchmark'] is True and c['deterministic'] is False, (name, c)
    assert all(v['cudnn_timing']['benchmark'] for v in res['cifar'].values()), res['cifar']
    for name, run in res['cifar'].items():   # run folders as bsgate_train writes them, without the checkpoints
        d = tmp_path / 'out' / 'runs' / f'gpu_{name}'
        assert {p.name for p in d.iterdir()} == {'config.json', 'model.pth', 'metrics.json', 'history.json'}, (name, list(d.iterdir()))
        assert run['epochs'] >= 1 and 0 <= run['accuracy'] <= 1
    for part in ('ratio', 'ratio_compiled'): assert res[part]['cases'] and all('ratio' in v for v in res[part]['cases'].values()), res[part]
    assert {'imagenet_r50', 'cityscapes_pspnet_r50'} <= set(res['presets']) and all('images_per_s' in v for v in res['presets'].values())
    print(f"dry run: {res['elapsed_s']:.0f} s inside, {wall:.0f} s with start-up; travel: slim {t['slim_mib']} MiB, full {t['full_mib']} MiB")


def test_summary_md_after_each_part(tmp_path, monkeypatch):
    "A check killed after a part keeps summary.md (and summary.json) with that part"
    import gpu_check
    monkeypatch.setenv('BSGATE_CACHE', str(tmp_path / 'cache'))
    def killed(a): raise KeyboardInterrupt   # the second part never finishes
    monkeypatch.setattr(gpu_check, 'part_travel', killed)
    with pytest.raises(KeyboardInterrupt): gpu_check.main(['--dry-run', '--parts', 'env,travel', '--out', str(tmp_path / 'out')])
    md = (tmp_path / 'out' / 'summary.md').read_text()
    assert '| env | ok |' in md and 'travel' not in md, md
    assert json.loads((tmp_path / 'out' / 'summary.json').read_text())['parts']['env']['status'] == 'ok'


def test_close_is_relative():
    import torch, gpu_check
    b = torch.tensor([2000., -1500., 0.5])
    assert gpu_check.close(b + 0.01, b, 1e-4)['ok']                    # 0.01 is 5e-6 of 2000: agrees
    assert not gpu_check.close(b + torch.tensor([0., 0., 1.]), b, 1e-4)['ok']   # 1.0 is 5e-4 of 2000: does not
    c = gpu_check.close(b * (1 + 1e-5), b, 1e-4)
    assert c['ok'] and c['max_rel'] == pytest.approx(1e-5, rel=1e-3) and c['scale'] == 2000.
    assert not gpu_check.close(b * float('nan'), b, 1e-4)['ok']


# ------------------------------------------------------------------------------------------------ gpu_prepare
def git(repo, *args):
    subprocess.run(['git', '-C', str(repo), '-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'commit.gpgsign=false', *args],
                   check=True, capture_output=True)

def write(p:Path, n:int):
    p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(b'x' * n); return n

@pytest.fixture
def repo(tmp_path):
    "A git repository shaped like this one: checkpoints/<set>/<run>/, bench/partial/, an ignored and an untracked file, a carried folder"
    r = tmp_path / 'repo'; r.mkdir()
    git(r, 'init', '-q')
    write(r / '.gitignore', 0); (r / '.gitignore').write_text('/.whl/\n/.gpudata/\n*.log\n')
    sizes = dict(code=write(r / 'bench' / 'gpu_check.py', 1000), readme=write(r / 'checkpoints' / 'README.md', 100),
                 keep=write(r / 'checkpoints' / 'cifar10' / 'r32_bas' / 'model.pth', 3000),
                 keepcfg=write(r / 'checkpoints' / 'cifar10' / 'r32_bas' / 'config.json', 50),
                 other=write(r / 'checkpoints' / 'cifar10' / 'r20_dense' / 'model.pth', 20000),
                 other2=write(r / 'checkpoints' / 'cifar10' / 'r56_ft' / 'model.pth', 30000),
                 partial=write(r / 'bench' / 'partial' / 'study2_x' / 'checkpoint.pth', 40000))
    git(r, 'add', '-A'); git(r, 'commit', '-q', '-m', 'init')
    sizes['ignored'] = write(r / 'train.log', 500_000)          # ignored: does not travel
    sizes['untracked'] = write(r / 'notes.txt', 700)            # untracked, not ignored: travels
    sizes['whl'] = write(r / '.whl' / 'a.whl', 5000) + write(r / '.whl' / 'b.whl', 6000)   # ignored, but carried
    return r, sizes

KEEP = ('checkpoints/cifar10/r32_bas',)

def test_measure(repo):
    import gpu_prepare
    r, s = repo
    tracked = sum(s[k] for k in ('code', 'readme', 'keep', 'keepcfg', 'other', 'other2', 'partial')) + len('/.whl/\n/.gpudata/\n*.log\n')
    m = gpu_prepare.measure(r, carry=('.whl',), keep=KEEP)
    assert m['tracked'] == tracked and m['untracked'] == s['untracked'] and m['untracked_files'] == 1, m
    assert m['carry'] == {'.whl': dict(bytes=s['whl'], present=True, estimated=False)}
    assert m['now'] == m['full'] == tracked + s['untracked'] + s['whl']                     # the ignored log does not count
    assert m['dropped'] == s['other'] + s['other2'] + s['partial'] and m['slim'] == m['full'] - m['dropped'], m
    assert m['dropped_runs'] == ['checkpoints/cifar10/r20_dense', 'checkpoints/cifar10/r56_ft']
    # an absent carried folder: 0, or its estimate; a carried path's files are not counted twice
    assert gpu_prepare.measure(r, carry=('.whl', '.gpudata'), keep=KEEP)['carry']['.gpudata'] == dict(bytes=0, present=False, estimated=False)
    assert gpu_prepare.measure(r, carry=('.whl', '.gpudata'), keep=KEEP, estimate=True)['carry']['.gpudata']['bytes'] > 10 * MiB
    assert gpu_prepare.measure(r, carry=('bench',), keep=KEEP)['tracked'] == tracked - s['code'] - s['partial']

def test_refuses_over_the_limit(repo):
    import gpu_prepare
    r, s = repo
    lines = []
    rc = gpu_prepare.main(['--check-only', '--root', str(r), '--carry', '.whl', '--keep', *KEEP, '--limit-mib', str(60_000 / MiB)], out=lines.append)
    assert rc == 2, lines
    assert lines[-1].startswith('gpu_prepare: refused: ') and 'over the' in lines[-1] and '--slim' in lines[-1], lines   # what to leave out
    now = next(l for l in lines if l.startswith('travel now: '))
    assert 'tracked' in now and 'untracked' in now and '.whl' in now, lines                                             # the breakdown
    assert (r / 'checkpoints' / 'cifar10' / 'r20_dense' / 'model.pth').is_file()   # --check-only deletes nothing
    # under the limit in slim form only: --slim makes it fit (no carried paths here: .whl/ would be fetched)
    lines = []
    assert gpu_prepare.main(['--slim', '--root', str(r), '--carry', '--keep', *KEEP, '--limit-mib', str(60_000 / MiB)], out=lines.append) == 0, lines
    assert not (r / 'checkpoints' / 'cifar10' / 'r20_dense').exists() and not (r / 'bench' / 'partial').exists()
    assert (r / 'checkpoints' / 'cifar10' / 'r32_bas' / 'model.pth').is_file() and (r / 'checkpoints' / 'README.md').is_file()
    assert any('git checkout -- checkpoints bench/partial' in l for l in lines), lines
    m = gpu_prepare.measure(r, carry=('.whl',), keep=KEEP)
    assert m['now'] == m['slim'] and m['slimmed'] == 3 and m['full'] == m['slim'] + s['other'] + s['other2'] + s['partial'], m
    # too big even slim: the line names the untracked files to leave out
    lines = []
    assert gpu_prepare.main(['--check-only', '--root', str(r), '--carry', '--keep', *KEEP, '--limit-mib', str(1000 / MiB)], out=lines.append) == 2
    assert 'notes.txt' in lines[-1], lines
    assert gpu_prepare.main(['--restore', '--root', str(r), '--carry', '--keep', *KEEP], out=lines.append) == 0
    assert (r / 'checkpoints' / 'cifar10' / 'r20_dense' / 'model.pth').stat().st_size == s['other']
    assert (r / 'bench' / 'partial' / 'study2_x' / 'checkpoint.pth').is_file()

@pytest.mark.parametrize('change', ['modified', 'untracked', 'kept_modified', 'staged'])
def test_slim_refuses_uncommitted_changes(repo, change):
    import gpu_prepare
    r, s = repo
    f = {'modified': 'checkpoints/cifar10/r20_dense/model.pth', 'untracked': 'checkpoints/cifar10/new_run/model.pth',
         'kept_modified': 'checkpoints/cifar10/r32_bas/config.json', 'staged': 'bench/partial/study2_x/checkpoint.pth'}[change]
    write(r / f, 123)
    if change == 'staged': git(r, 'add', f)
    lines = []
    assert gpu_prepare.main(['--slim', '--root', str(r), '--carry', '--keep', *KEEP], out=lines.append) == 1, lines
    assert lines[0].startswith('gpu_prepare: refused to slim: ') and f in lines[0], lines
    assert (r / f).read_bytes() == b'x' * 123                                   # nothing lost
    assert (r / 'checkpoints' / 'cifar10' / 'r56_ft' / 'model.pth').is_file()   # nothing deleted
