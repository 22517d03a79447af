"""`bench/gpu_check.py --dry-run`: every part of the GPU check at toy sizes on the CPU, so the script cannot rot (issue 14)."""
import json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_run(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', BSGATE_CACHE=str(tmp_path / 'cache'))
    t0 = time.time()
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'gpu_check.py'), '--dry-run', '--out', str(tmp_path / 'out')],
                       capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    wall = time.time() - t0
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    res = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert (tmp_path / 'out' / 'summary.md').is_file()
    assert set(res['parts']) == {'env', 'features', 'cifar', 'ratio', 'ratio_compiled', 'inference', 'presets', 'pipeline'}, res['parts']
    assert all(v['status'] == 'ok' for v in res['parts'].values()), res['parts']
    f = res['features']
    assert f['fused_vs_unfused']['ok'] and f['device_pipeline']['ok'] and f['compile']['ok'], f
    for name, run in res['cifar'].items():   # run folders as bsgate_train writes them, without the checkpoints
        d = tmp_path / 'out' / 'runs' / f'gpu_{name}'
        assert {p.name for p in d.iterdir()} == {'config.json', 'model.pth', 'metrics.json', 'history.json'}, (name, list(d.iterdir()))
        assert run['epochs'] >= 1 and 0 <= run['accuracy'] <= 1
    for part in ('ratio', 'ratio_compiled'): assert res[part]['cases'] and all('ratio' in v for v in res[part]['cases'].values()), res[part]
    assert {'imagenet_r50', 'cityscapes_pspnet_r50'} <= set(res['presets']) and all('images_per_s' in v for v in res['presets'].values())
    print(f"dry run: {res['elapsed_s']:.0f} s inside, {wall:.0f} s with start-up")
