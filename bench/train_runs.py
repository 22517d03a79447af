"""CPU-scale training runs of the paper's recipes on the real data in ../shared/data (issue: fastai training).

Each run trains a preset with `bsgate.train.train` on a subset, then prints and writes to bench/results/train_<name>.json
the final validation metrics (accuracy or mIoU, mean MACs per image, fraction of dense, gate categories), the wall time
and the machine. Checkpoints go to bench/results/runs/<name>/ (git-ignored). Example:

    .venv/bin/python bench/train_runs.py cifar        # gated ResNet-20, batch-shaping + L0 (~20-40 min on 2 CPU cores)
    .venv/bin/python bench/train_runs.py camvid imagenette

The tutorials' runs (`imagenette_tut`, `camvid_tut`) are published with `--publish` to bench/published/<name>/:
config.json, history.json, metrics.json, train_run.json (this script's record: wall time, machine) and `gates_val.pt`, the `bsgate.analysis.GateRecord` of their validation
images (probabilities stored as float16), from which the ImageNet and Cityscapes tutorials draw their figures. Their
weights are not published (a ResNet-18 is 45 MB, a PSPNet-R18 more).
"""
import json, os, platform, sys, time, argparse
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'bench'))
from common import cpu_name
DATA = Path(os.environ.get('BSGATE_DATA', ROOT.parent / 'shared' / 'data'))
RUNS = {
    # name: (preset, data path, overrides)
    'cifar': ('cifar10_r20', DATA / 'cifar10' / 'train.tar.gz', dict(limit=15000, epochs=8, bs=128, lr=0.1)),
    'cifar_dense': ('cifar10_r20_dense', DATA / 'cifar10' / 'train.tar.gz', dict(limit=15000, epochs=8, bs=128, lr=0.1)),
    'cifar_lam10': ('cifar10_r20', DATA / 'cifar10' / 'train.tar.gz', dict(limit=10000, epochs=6, bs=128, lr=0.1, lam=10.0)),
    'camvid': ('camvid_pspnet_r18', DATA / 'camvid', dict(epochs=2, bs=8, size=192, limit=200)),
    'imagenette': ('imagenette_r18', DATA / 'imagenette2-160', dict(epochs=2, bs=64, size=128, limit=3000)),
    # L0's budget form on a short segmentation run. Measured 2026-11-22 with the old MAC-weighted mean ('mac', λ = 30): the
    # gates did NOT close (MAC fraction 1.000 after 3 epochs, mIoU 0.252), the per-gate push shrank with ~1,900 gates.
    # Now the per-layer budget (`layer`, a sum over gates, so the push per gate does not depend on the gate count) with
    # λ = 1. Re-run 2026-12-01: the gates close (0.798 of dense MACs, 18% always off, mIoU 0.110 against 0.207 without the budget).
    'camvid_budget': ('camvid_pspnet_r18', DATA / 'camvid', dict(epochs=3, bs=8, size=192, limit=200, mac_target=0.6, lam=1.)),
    # The tutorials' published runs (issue 26: figures a reader can see, not an epoch-one network with every gate open):
    # long enough for the budget to close gates, bf16 + channels-last (the precision bench's fastest CPU setting).
    # Published without weights (ResNet-18 is 45 MB), as config/history/metrics and the validation GateRecord.
    'imagenette_tut': ('imagenette_r18', DATA / 'imagenette2-160',
                       dict(epochs=10, bs=64, size=128, mac_target=0.5, lam=1., bf16=True, channels_last=True)),
    # its control: the same network and recipe without gates (ResNet-18 is dense with gate_layer=None)
    'imagenette_dense_tut': (dict(name='imagenette_r18', gate_layer=None), DATA / 'imagenette2-160',
                             dict(epochs=10, bs=64, size=128, bf16=True, channels_last=True)),
    # a control for the gated run's gap to the dense one (33.6% against 73.0%): the same gated network and recipe with the gates
    # trained by the task loss alone (γ = 0, λ = 0, no MAC target; they start open, bias 3) — is it the gating machinery, or the budget?
    'imagenette_free_tut': ('imagenette_r18', DATA / 'imagenette2-160',
                            dict(epochs=10, bs=64, size=128, gamma=0., lam=0., bf16=True, channels_last=True)),
    'camvid_tut': ('camvid_pspnet_r18', DATA / 'camvid',
                   dict(epochs=8, bs=8, size=192, mac_target=0.6, lam=1., bf16=True, channels_last=True)),
}

def run(name:str, resume:bool=False) -> dict:
    from bsgate.train import train
    from bsgate.learner import get_preset
    preset, data, kw = RUNS[name]
    if isinstance(preset, dict):   # a preset with fields replaced (None included: gate_layer=None is the dense network)
        import dataclasses
        preset = dataclasses.replace(get_preset(preset['name']), **{k: v for k, v in preset.items() if k != 'name'})
    if not data.exists(): raise FileNotFoundError(f"{name}: no data at {data} (set BSGATE_DATA)")
    out = ROOT / 'bench' / 'results' / 'runs' / name
    t0 = time.time()
    m = train(preset, data=str(data), out=str(out), quiet=True, resume=resume and (out / 'checkpoint.pth').exists(), **kw)
    res = dict(name=name, preset=getattr(preset, 'name', preset), overrides=kw, wall_s=round(time.time() - t0, 1),
               machine=dict(cpu=cpu_name(), cpu_count=os.cpu_count(), torch=torch.__version__, threads=torch.get_num_threads(),
                            platform=platform.platform(), load_avg=os.getloadavg()),
               metrics={k: v for k, v in m.items() if k != 'layers'}, layers=m.get('layers'))
    (ROOT / 'bench' / 'results' / f'train_{name}.json').write_text(json.dumps(res, indent=1))
    task = {k: m[k] for k in ('accuracy', 'miou', 'pixel_acc') if k in m}
    print(f"{name}: {task} | MACs/image {m.get('macs', float('nan'))/1e6:.2f} M = {m.get('mac_frac', float('nan')):.3f} of dense"
          f" | gates {m.get('gates')} | {res['wall_s']:.0f} s", flush=True)
    return res

# name → (published folder under bench/published/, the split and number of images its GateRecord covers, batch size)
PUBLISH = {'imagenette_tut': ('imagenette_r18_t50', 'val', 500, 50), 'camvid_tut': ('camvid_pspnet_r18_t60', 'val', 101, 4),
           'imagenette_dense_tut': ('imagenette_r18_dense', 'val', 500, 50), 'imagenette_free_tut': ('imagenette_r18_free', 'val', 500, 50)}
PUBLISHED = ROOT / 'bench' / 'published'

def publish(name:str) -> Path:
    "Copy a finished tutorial run's config/history/metrics to bench/published/ with the GateRecord of its validation images"
    import shutil
    from bsgate.runs import finished_run
    from bsgate.analysis import load_run, collect_gates
    pub, split, n, bs = PUBLISH[name]
    src, dest = ROOT / 'bench' / 'results' / 'runs' / name, PUBLISHED / pub
    if finished_run(src) is None: raise SystemExit(f"{name}: {src} is not a finished run (train it first)")
    dest.mkdir(parents=True, exist_ok=True)
    for f in ('config.json', 'history.json', 'metrics.json'): shutil.copy2(src / f, dest / f)
    if (t := ROOT / 'bench' / 'results' / f'train_{name}.json').is_file():   # wall time, machine
        r = json.loads(t.read_text())
        # bench/results/ is this machine's (git-ignored): a record written before the CPU was recorded ran here
        r['machine'].setdefault('cpu', cpu_name())
        (dest / 'train_run.json').write_text(json.dumps(r, indent=1))
    learn = load_run(src, data=str(RUNS[name][1]), split=split, limit=n, bs=bs, device='cpu')
    rec = collect_gates(learn)
    rec.save(dest / f'gates_{split}.pt', half=True)
    print(f"{name} → {dest.relative_to(ROOT)}: {rec}", flush=True)
    return dest

def reland(name:str, land_on:str='whole') -> dict:
    "Run a finished run's final phase (landing, BN recalibration, landing) again from its last checkpoint, landing on `land_on` images"
    import shutil
    from bsgate.train import train
    src = ROOT / 'bench' / 'results' / 'runs' / name
    cfg = json.loads((src / 'config.json').read_text())
    old = cfg.get('land_on', 'train')   # runs recorded before the choice landed on training batches
    if old == land_on: raise SystemExit(f"{name}: already landed on {land_on!r} images")
    if not (src / 'metrics.json').is_file(): raise SystemExit(f"{name}: {src} is not a finished run (train it first)")
    before = json.loads((src / 'metrics.json').read_text())
    shutil.copy2(src / 'metrics.json', src / f'metrics_land_{old}.json')   # what the old landing gave, kept beside
    for f in ('metrics.json', 'model.pth'): (src / f).unlink()   # unfinished again: --resume runs only the final phase
    cfg['land_on'] = land_on
    (src / 'config.json').write_text(json.dumps(cfg, indent=1))
    preset, data, kw = RUNS[name]
    t0 = time.time()
    m = train(cfg['name'], data=str(data), out=str(src), quiet=True, resume=True, limit=cfg.get('limit'),
              channels_last=kw.get('channels_last', False))
    rec = dict(land_on=land_on, wall_s=round(time.time() - t0, 1), machine=dict(cpu=cpu_name(), threads=torch.get_num_threads(),
               load_avg=os.getloadavg()), replaced=dict(land_on=old, budget=before.get('budget')))
    t = ROOT / 'bench' / 'results' / f'train_{name}.json'
    r = json.loads(t.read_text())
    r.setdefault('final_phase_again', []).append(rec)   # the training record stays; the final phase's rerun is added
    r['metrics'] = {k: v for k, v in m.items() if k != 'layers'}
    t.write_text(json.dumps(r, indent=1))
    print(f"{name}: landed on {land_on} images at {m['budget']['landed']:.3f} of dense (target {m['budget']['target']}); "
          f"on {old} batches it was {before['budget']['landed']:.3f} | {rec['wall_s']:.0f} s", flush=True)
    return m

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('names', nargs='+', choices=sorted(RUNS))
    ap.add_argument('--resume', action='store_true', help='continue runs that have a checkpoint')
    ap.add_argument('--threads', type=int, default=None, help="torch threads for this process (default: torch's)")
    ap.add_argument('--publish', action='store_true',
                    help='copy the named finished tutorial runs to bench/published/ with their gate records (no training)')
    ap.add_argument('--reland', action='store_true',
                    help="run the named finished runs' final phase again, landing the gates on whole images (land_on='whole')")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    for n in a.names: publish(n) if a.publish else reland(n) if a.reland else run(n, a.resume)
