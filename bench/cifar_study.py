"""CPU-scale CIFAR-10 study: dense ResNet-20 against gated ResNet-32/56 held to ResNet-20's MACs (issue: evidence).

Every run uses the same data (the real CIFAR-10 train set with a fixed seeded 10% per class held out for validation,
all 5,000 of it; training on a fixed seeded subset of `--limit` of the other 45,000), the same epochs, batch size and learning rate. The gated runs use the L0 term in its budget form
(`Preset.mac_target`, our choice): λ · max(0, expected MAC fraction − target), with the target set to ResNet-20's dense MACs
over the gated model's dense MACs, times `--margin`. `r32_l0only` is `r32_bas_l0` with γ = 0 (no batch-shaping).

    .venv/bin/python bench/cifar_study.py r20_dense r32_bas_l0 --threads 1 &   # one stream per core
    .venv/bin/python bench/cifar_study.py r56_bas_l0 r32_l0only --threads 1 &
    .venv/bin/python bench/cifar_study.py --report                           # table + bench/results/cifar_study.json

Each run writes bench/results/study_<name>.json (metrics, wall time, machine); checkpoints go to bench/results/runs/study_<name>
and an interrupted run continues with `--resume`.
"""
import json, os, platform, sys, time, argparse
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get('BSGATE_DATA', ROOT.parent / 'shared' / 'data')) / 'cifar10' / 'train.tar.gz'
RES = ROOT / 'bench' / 'results'
COMMON = dict(limit=12000, epochs=12, bs=128, lr=0.1)
LAM = 30.  # the budget hinge's weight: large, since it stops pushing once the budget is met
RUNS = {  # name: (preset, overrides, held to ResNet-20's MACs)
    'r20_dense':  ('cifar10_r20_dense', {}, False),
    'r32_bas_l0': ('cifar10_r32', dict(lam=LAM), True),
    'r32_l0only': ('cifar10_r32', dict(lam=LAM, gamma=0.), True),
    'r56_bas_l0': ('cifar10_r56', dict(lam=LAM), True),
}

def dense_of(depth:int) -> int:
    from bsgate.models.resnet import cifar_resnet
    from bsgate.macs import dense_macs
    return dense_macs(cifar_resnet(depth, gate_layer=None), (3, 32, 32))

def run(name:str, margin:float, resume:bool, common:dict) -> dict:
    from bsgate.train import train
    from bsgate.learner import get_preset
    preset, kw, budget = RUNS[name]
    kw = dict(common, **kw)
    if budget: kw['mac_target'] = round(margin * dense_of(20) / dense_of(get_preset(preset).depth), 4)
    out = RES / 'runs' / f'study_{name}'
    t0 = time.time()
    m = train(preset, data=str(DATA), out=str(out), quiet=True, resume=resume and (out / 'checkpoint.pth').exists(), **kw)
    res = dict(name=name, preset=preset, overrides=kw, wall_s=round(time.time() - t0, 1),
               machine=dict(cpu_count=os.cpu_count(), torch=torch.__version__, threads=torch.get_num_threads(),
                            platform=platform.platform(), load_avg_end=os.getloadavg()),
               metrics={k: v for k, v in m.items() if k != 'layers'}, layers=m.get('layers'))
    (RES / f'study_{name}.json').write_text(json.dumps(res, indent=1))
    print(f"{name}: acc {m['accuracy']:.4f} | MACs/image {m.get('macs', float('nan'))/1e6:.2f} M | gates {m.get('gates')} | {res['wall_s']:.0f} s", flush=True)
    return res

def report() -> str:
    r20 = dense_of(20)
    rows, out = [], {}
    for name in RUNS:
        f = RES / f'study_{name}.json'
        if not f.exists(): continue
        d = json.loads(f.read_text()); m = d['metrics']; g = m.get('gates') or {}
        macs = m.get('macs', r20 if name == 'r20_dense' else float('nan'))
        out[name] = dict(accuracy=m['accuracy'], macs=macs, macs_vs_r20=macs / r20, mac_frac=m.get('mac_frac', 1.0),
                         conditional=g.get('conditional', 0.), always_on=g.get('always_on', 1.), always_off=g.get('always_off', 0.),
                         mac_target=d['overrides'].get('mac_target'), wall_s=d['wall_s'], epochs=d['overrides']['epochs'],
                         limit=d['overrides']['limit'], machine=d['machine'])
        o = out[name]
        rows.append(f"| {name} | {o['accuracy']*100:.1f}% | {macs/1e6:.2f} M | {o['macs_vs_r20']:.3f} | {o['mac_frac']:.3f} | "
                    f"{o['conditional']*100:.0f}% | {o['always_on']*100:.0f}% / {o['always_off']*100:.0f}% | {o['wall_s']/60:.0f} min |")
    table = ("| run | val. accuracy | MACs/image | vs dense R20 | of own dense | conditional gates | always on / off | wall |\n"
             "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    (RES / 'cifar_study.json').write_text(json.dumps(out, indent=1))
    (RES / 'cifar_study.md').write_text(table + "\n")
    print(table)
    return table

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('names', nargs='*', choices=sorted(RUNS) + [[]])
    ap.add_argument('--threads', type=int, default=None, help='torch threads for this process (default: torch\'s)')
    ap.add_argument('--margin', type=float, default=0.95, help='MAC target = margin × R20 MACs / own dense MACs')
    ap.add_argument('--epochs', type=int, default=COMMON['epochs'])
    ap.add_argument('--limit', type=int, default=COMMON['limit'])
    ap.add_argument('--resume', action='store_true', help='continue runs that have a checkpoint')
    ap.add_argument('--report', action='store_true', help='print and write the table of finished runs')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    RES.mkdir(parents=True, exist_ok=True)
    common = dict(COMMON, epochs=a.epochs, limit=a.limit)
    for n in a.names: run(n, a.margin, a.resume, common)
    if a.report or not a.names: report()
