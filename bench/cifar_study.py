"""CPU-scale CIFAR-10 study v2: can a gated ResNet-32/56 held to ResNet-20's MACs beat a dense ResNet-20 trained as long?

Every run uses the real CIFAR-10 archive (`../shared/data/cifar10/train.tar.gz`), validates on the same fixed 5,000-image
hold-out (10% of each class, seed 42) and trains on the other 45,000 images, batch 128, SGD Nesterov, weight decay 5e-4
(none on the gates), a one-epoch linear lr warm-up for every arm. The arms (`RUNS`):

- controls: dense ResNet-20/32/56 for `E` epochs (lr 0.1, steps at 60/75/90%);
- fine-tuned gating: dense ResNet-32/56 for `E1` epochs, then gates added (`--init`) and trained `E2` epochs with
  batch-shaping and the per-layer MAC budget to ResNet-20's MACs; control: the same dense network continued `E2` epochs
  with the same fine-tuning schedule (and dense ResNet-20 for `E1 + E2` = `E` epochs);
- the same fine-tuning with L0 alone (γ = 0): batch-shaping against L0 at the same MAC budget;
- from scratch: gated ResNet-32 for `E` epochs with the calibrated recipe;
- the trend: dense ResNet-20 and the from-scratch gated ResNet-32 for 5, 8 and 25 epochs too (`r20_dense5`, `r32_bas8`, `r32_bas25`, ...).

BatchNorm statistics are re-estimated under the inference gates at the end of every gated run; both numbers are kept.

    .venv/bin/python bench/cifar_study.py r32_dense10 r32_ft_bas r32_ft_l0 --threads 1 &   # one chain per core
    .venv/bin/python bench/cifar_study.py r20_dense r32_bas --threads 1 &
    .venv/bin/python bench/cifar_study.py --report            # table + bench/results/cifar_study.json/.md

A run continues from its checkpoint when started again (`--resume` is implied), also from a copy that `--park` left in
bench/partial/ (committed, for a run that must continue in another session, on another machine); each writes
bench/results/study2_<name>.json; its folder is bench/results/runs/study2_<name>.
"""
import json, os, sys, time, argparse
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'bench'))
from common import machine_info

DATA = Path(os.environ.get('BSGATE_DATA', ROOT.parent / 'shared' / 'data')) / 'cifar10' / 'train.tar.gz'
RES = ROOT / 'bench' / 'results'
E, E1, E2 = 15, 10, 5
COMMON = dict(bs=128, lr=0.1, lr_warmup=1 / E)
FT = dict(epochs=E2, lr=0.02, lr_sched='cosine', lr_warmup=0.)          # fine-tuning schedule (our choice)
GATED = dict(gamma=0.75, lam=1., budget='layer', gate_bias=3.)          # the calibrated recipe (see bench/README.md)
MARGIN = 0.95                                                           # MAC target = MARGIN × R20 MACs / own dense MACs

RUNS = {  # name: (preset, overrides, the run it starts from, held to ResNet-20's MACs: False, True (MARGIN) or a fraction)
    'r20_dense':    ('cifar10_r20_dense', dict(COMMON, epochs=E), None, False),
    'r32_dense':    ('cifar10_r32_dense', dict(COMMON, epochs=E), None, False),
    'r56_dense':    ('cifar10_r56_dense', dict(COMMON, epochs=E), None, False),
    'r32_dense10':  ('cifar10_r32_dense', dict(COMMON, epochs=E1, lr_warmup=1 / E1), None, False),
    'r56_dense10':  ('cifar10_r56_dense', dict(COMMON, epochs=E1, lr_warmup=1 / E1), None, False),
    'r32_dense_ft': ('cifar10_r32_dense', dict(COMMON, **FT), 'r32_dense10', False),
    'r56_dense_ft': ('cifar10_r56_dense', dict(COMMON, **FT), 'r56_dense10', False),
    'r32_ft_bas':   ('cifar10_r32', dict(COMMON, **FT, **GATED, warmup=0.2, ramp_end=0.5), 'r32_dense10', True),
    'r32_ft_l0':    ('cifar10_r32', dict(COMMON, **FT, **dict(GATED, gamma=0.), warmup=0.2, ramp_end=0.5), 'r32_dense10', True),
    'r56_ft_bas':   ('cifar10_r56', dict(COMMON, **FT, **GATED, warmup=0.2, ramp_end=0.5), 'r56_dense10', True),
    'r56_ft_l0':    ('cifar10_r56', dict(COMMON, **FT, **dict(GATED, gamma=0.), warmup=0.2, ramp_end=0.5), 'r56_dense10', True),
    'r32_bas':      ('cifar10_r32', dict(COMMON, epochs=E, **GATED), None, True),
    # GaterNet's own recipe (its preset: SemHash gates after conv2, L1 on the gates, no budget) against r20_dense / r56_dense
    'gaternet_r20': ('cifar10_gaternet_r20', dict(COMMON, epochs=E), None, False),
    'gaternet_r56': ('cifar10_gaternet_r56', dict(COMMON, epochs=E), None, False),
    'gaternet_r20_8': ('cifar10_gaternet_r20', dict(COMMON, epochs=8, lr_warmup=1 / 8), None, False),   # against r20_dense8
    'gaternet_r20_8_nol1': ('cifar10_gaternet_r20', dict(COMMON, epochs=8, lr_warmup=1 / 8, gate_l1=0.), None, False),  # control: λ = 0
    'r20b_dense8': ('cifar10_r20_dense', dict(COMMON, epochs=8, lr_warmup=1 / 8, shortcut='B'), None, False),  # control: GaterNet's option-B shortcuts, no gater
}
# bf16 parity (issue: evidence v3, item 1): the 15-epoch dense ResNet-20 and gated ResNet-32 again under bf16 autocast
RUNS['r20_dense_bf16'] = ('cifar10_r20_dense', dict(COMMON, epochs=E, precision='bf16'), None, False)
RUNS['r32_bas_bf16'] = ('cifar10_r32', dict(COMMON, epochs=E, **GATED, precision='bf16'), None, True)
EF = 30   # the front (issue: evidence v3): every arm E = 30 epochs, the same schedule scaled to it
for d in (8, 14, 20, 32, 56):   # the dense curve: ResNets of several depths trained alike
    # ResNet-8/14 ran in fp32; the deeper ones in bf16 autocast (0.37 of the fp32 step time here, precision.py; parity: r20_dense_bf16)
    prec = dict(precision='bf16') if d >= 20 else {}
    RUNS[f'r{d}_dense{EF}'] = ('cifar10_r20_dense', dict(COMMON, epochs=EF, lr_warmup=1 / EF, depth=d, **prec), None, False)
# the gated points of the front, each held to a fraction of ResNet-20's MACs that its run lands on (calibrate_gates)
for d, f in ((32, 0.5), (32, 0.95), (56, 0.5)):
    RUNS[f'r{d}_bas{EF}_t{round(f * 100)}'] = (f'cifar10_r{d}', dict(COMMON, epochs=EF, lr_warmup=1 / EF, **GATED), None, f)
# batch-shaping against the budget alone (γ = 0) at the same landed MACs (issue: evidence v3, item 4): two seeds each, paired
RUNS[f'r32_l0{EF}_t50'] = ('cifar10_r32', dict(COMMON, epochs=EF, lr_warmup=1 / EF, **dict(GATED, gamma=0.)), None, 0.5)
for name in [n for n in RUNS if n.endswith(f'_dense{EF}') or f'_bas{EF}_t' in n or f'_l0{EF}_t' in n]:   # a second seed of every front arm
    pre, kw, parent, budget = RUNS[name]
    RUNS[f'{name}_s2'] = (pre, dict(kw, seed=2), parent, budget)
for e in (5, 8, 25):   # the trend of the from-scratch gap with the epochs: the same pair, shorter and longer (schedules are fractions of the run)
    RUNS[f'r20_dense{e}'] = ('cifar10_r20_dense', dict(COMMON, epochs=e, lr_warmup=1 / e), None, False)
    RUNS[f'r32_bas{e}'] = ('cifar10_r32', dict(COMMON, epochs=e, lr_warmup=1 / e, **GATED), None, True)

def dense_of(depth:int, shortcut:str='A') -> int:
    from bsgate.models.resnet import cifar_resnet
    from bsgate.macs import dense_macs
    return dense_macs(cifar_resnet(depth, gate_layer=None, shortcut=shortcut), (3, 32, 32))

def folder(name:str) -> Path: return RES / 'runs' / f'study2_{name}'

PARK = ROOT / 'bench' / 'partial'   # unfinished runs committed between sessions (bench/results/ is not)

def park(names:list):
    "Copy unfinished runs (config, checkpoint, history) to bench/partial/, so a later session on a fresh machine resumes them"
    import shutil
    for name in names:
        src, dst = folder(name), PARK / f'study2_{name}'
        if not (src / 'checkpoint.pth').is_file(): raise FileNotFoundError(f"{name}: nothing to park, no {src / 'checkpoint.pth'}")
        dst.mkdir(parents=True, exist_ok=True)
        for f in ('config.json', 'checkpoint.pth', 'history.json'): shutil.copy2(src / f, dst / f)
        print(f"parked {name} after epoch {len(json.loads((src / 'history.json').read_text()))} in {dst}")

def unpark(name:str):
    "Bring a parked run back into bench/results/runs/ when this machine has no copy of it"
    import shutil
    src, dst = PARK / f'study2_{name}', folder(name)
    if src.is_dir() and not (dst / 'checkpoint.pth').is_file():
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir(): shutil.copy2(f, dst / f.name)
        print(f"{name}: resuming the parked run from {src}", flush=True)

def run(name:str, limit=None, epochs=None) -> dict:
    "Train one arm (or continue it from its checkpoint); write its JSON; return it"
    from bsgate.train import train
    from bsgate.learner import get_preset, Preset
    import dataclasses
    preset, kw, parent, budget = RUNS[name]
    kw = dict(kw)
    prec = kw.pop('precision', 'fp32')   # 'fp32' or 'bf16' (autocast; the gates, batch-shaping and L0 stay fp32); recorded in config.json
    if epochs: kw['epochs'] = epochs
    if budget:   # True: MARGIN × ResNet-20's MACs (study v2); a number: that fraction of ResNet-20's MACs (the front)
        frac = MARGIN if budget is True else float(budget)
        kw['mac_target'] = round(frac * dense_of(20) / dense_of(kw.get('depth') or get_preset(preset).depth), 4)
    if parent:
        src = folder(parent) if (folder(parent) / 'model.pth').is_file() else PUBLISH / parent   # a fresh machine: the published copy
        if not (src / 'model.pth').is_file(): raise FileNotFoundError(f"{name} starts from {parent}: train {parent} first")
        kw['init'] = str(src)
    p = get_preset(preset, **{k: v for k, v in kw.items() if k in {f.name for f in dataclasses.fields(Preset)}})
    out = folder(name)
    unpark(name)
    resume = (out / 'checkpoint.pth').is_file() and not (out / 'metrics.json').is_file()
    if (out / 'metrics.json').is_file():
        print(f"{name}: already finished ({out / 'metrics.json'})", flush=True)
        return json.loads((RES / f'study2_{name}.json').read_text())
    t0 = time.time()
    info = machine_info()
    # train() takes the CLI's options; the rest of the recipe goes in through a preset written to the run's config
    cli = {k: kw[k] for k in ('epochs', 'bs', 'lr', 'gamma', 'lam', 'mac_target', 'lr_warmup', 'gate_bias', 'budget', 'init') if k in kw}
    extra = {k: v for k, v in kw.items() if k not in cli}
    m = train(dataclasses.replace(get_preset(preset), **extra) if extra else preset, data=str(DATA), out=str(out), quiet=True,
              resume=resume, limit=limit, pipeline='host', bf16=prec == 'bf16',   # every arm on the same (host) pipeline
              **({} if resume else dict(cli, land_on='train')))   # every arm lands on training batches, as the first ones did
    m = _add_check(out, m)
    res = dict(name=name, preset=preset, overrides=kw, precision=prec, parent=parent, wall_s=round(time.time() - t0, 1), limit=limit,
               machine=dict(info, loadavg_end=os.getloadavg()), metrics={k: v for k, v in m.items() if k != 'layers'},
               layers=m.get('layers'))
    (RES / f'study2_{name}.json').write_text(json.dumps(res, indent=1))
    g = m.get('gates') or {}
    print(f"{name}: acc {m['accuracy']:.4f} | MACs/image {m.get('macs', float('nan'))/1e6:.2f} M | cond {g.get('conditional_thr')} "
          f"| {res['wall_s']:.0f} s", flush=True)
    return res

def _add_check(out:Path, m:dict, n:int=256) -> dict:
    "Score the first `n` validation images again (as CI will from the published checkpoint) and keep the result in metrics.json"
    from bsgate.train import evaluate
    r = evaluate(str(out), data=str(DATA), split='valid', limit=n)
    m['check'] = dict(split='valid', limit=n, accuracy=r['accuracy'], macs=r.get('macs'))
    (out / 'metrics.json').write_text(json.dumps(m, indent=1))
    return m

def analyse(name:str) -> dict:
    "Per-image MACs against difficulty (loss, confidence) and the thresholded categories, from the run's own validation images"
    from bsgate.analysis import load_run, collect_gates, summary
    f = RES / f'study2_{name}_analysis.json'
    if f.is_file(): return json.loads(f.read_text())
    rec = collect_gates(load_run(folder(name), data=str(DATA)))
    s = summary(rec, threshold=0.01)
    f.write_text(json.dumps(s, indent=1))
    return s

FIG = ROOT / 'bench' / 'figures'   # figures drawn from published runs (committed: bench/README.md shows them)
FRONT_MARK = ('<!-- front table: bench/cifar_study.py --front -->', '<!-- end of front table -->')

def front_arms() -> dict:
    "The front's arms (label → the published folders of its seeds), in the order of the table"
    arms = {f'R-{d} dense': f'r{d}_dense{EF}' for d in (8, 14, 20, 32, 56)}
    arms.update({'R-32 BaS @0.50': f'r32_bas{EF}_t50', 'R-32 budget only @0.50': f'r32_l0{EF}_t50',
                 'R-32 BaS @0.95': f'r32_bas{EF}_t95', 'R-56 BaS @0.50': f'r56_bas{EF}_t50'})
    out = {k: [PUBLISH / n for n in (r, f'{r}_s2') if (PUBLISH / n / 'metrics.json').is_file()] for k, r in arms.items()}
    return {k: v for k, v in out.items() if v}

def front_table(fr:dict) -> str:
    "The front as the markdown table bench/README.md shows (every number from the published runs)"
    r20 = dense_of(20)
    pct = lambda v: '—' if v is None else f"{100 * v:.1f}%"
    rows = []
    for k, v in fr.items():
        acc = ' / '.join(f"{100 * a:.1f}%" for a in v['accuracies'])
        mean = f"{100 * v['accuracy']:.1f}% ± {100 * v['spread']:.1f}" if len(v['runs']) > 1 else f"{100 * v['accuracy']:.1f}%"
        land = '—' if not v['gated'] else ', '.join('—' if l is None else f"{l:.3f}" for l in v['landed']) + \
            ('' if v['target'] is None else f" (target {v['target']:.3f})")
        curve = '—' if v.get('dense_curve') is None else f"{100 * v['dense_curve']:.1f}% ({100 * v['above_curve']:+.1f})"
        rows.append(f"| {k} | {', '.join(v['runs'])} | {'/'.join(v['precision'])} | {acc} | {mean} | {v['macs'] / 1e6:.2f} M | "
                    f"{v['macs'] / r20:.3f} | {land} | {curve} |")
    return ("| arm | runs | precision | accuracy per seed | mean ± half-range | MACs/image | vs dense R20 | landed (of own dense) "
            "| dense curve there (gated − curve) |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))

def front(plot:bool=True) -> dict:
    "The accuracy–MACs front of the published E=30 arms: bench/README.md's table (between FRONT_MARK) and bench/figures/front.png"
    from bsgate.analysis import accuracy_macs_front, plot_front
    fr = accuracy_macs_front(front_arms())
    readme = ROOT / 'bench' / 'README.md'
    text, (start, end) = readme.read_text(), FRONT_MARK
    if start not in text: raise ValueError(f"{readme} has no {start} ... {end} block for the front table")
    readme.write_text(text[:text.index(start)] + start + '\n' + front_table(fr) + '\n' + end + text[text.index(end) + len(end):])
    (RES / 'front.json').write_text(json.dumps({k: {**v, 'runs': v['runs']} for k, v in fr.items()}, indent=1, default=str))
    if plot and fr:
        import matplotlib; matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        FIG.mkdir(exist_ok=True)
        ax = plot_front(fr, figsize=(6.4, 3.8)); ax.margins(x=0.1, y=0.15)
        ax.set_title(f'CIFAR-10, {EF} epochs, 5,000 hold-out images (published runs)', fontsize=9)
        ax.figure.tight_layout()   # the plotted values go in the PNG's text, where tests/test_claims.py checks them against the runs
        ax.figure.savefig(FIG / 'front.png', dpi=110, metadata={'Description': json.dumps(front_points(fr), sort_keys=True)})
        plt.close(ax.figure)
    return fr

def front_points(fr:dict) -> dict:
    "What the front figure plots, per arm: [MMACs per image, accuracy %, seeds' half-range %], rounded as drawn"
    return {k: [round(v['macs'] / 1e6, 3), round(100 * v['accuracy'], 2), round(100 * v['spread'], 2)] for k, v in fr.items()}

def report() -> str:
    r20 = dense_of(20)
    rows, out = [], {}
    for name in RUNS:
        f = RES / f'study2_{name}.json'
        if not f.exists(): continue
        d = json.loads(f.read_text()); m = d['metrics']; g = m.get('gates') or {}
        depth = d['overrides'].get('depth') or int(d['preset'].split('_r')[1].split('_')[0])
        macs = m.get('macs') or dense_of(depth, d['overrides'].get('shortcut', 'A'))
        before = (m.get('bn_recal') or {}).get('before') or {}
        a = analyse(name) if g else {}
        corr = (a.get('correlations') or {}).get('loss', {}).get('spearman')
        total_epochs = d['overrides']['epochs'] + (json.loads((RES / f"study2_{d['parent']}.json").read_text())['overrides']['epochs'] if d['parent'] else 0)
        o = out[name] = dict(accuracy=m['accuracy'], accuracy_before_recal=before.get('accuracy'), macs=macs, macs_vs_r20=macs / r20,
                             mac_frac=m.get('mac_frac', 1.0), conditional=g.get('conditional'), conditional_thr=g.get('conditional_thr'),
                             always_on=g.get('always_on'), always_off=g.get('always_off'), spearman_macs_loss=corr,
                             mac_target=d['overrides'].get('mac_target'), total_epochs=total_epochs, wall_s=d['wall_s'],
                             parent=d['parent'], machine=d['machine'])
        pct = lambda v: '—' if v is None else f"{v*100:.0f}%"
        rows.append(f"| {name} | {total_epochs} | {o['accuracy']*100:.1f}% | "
                    f"{'—' if before.get('accuracy') is None else '%.1f%%' % (before['accuracy'] * 100)} | {macs/1e6:.2f} M | "
                    f"{o['macs_vs_r20']:.3f} | {pct(o['conditional_thr'])} ({pct(o['conditional'])}) | "
                    f"{pct(o['always_on'])} / {pct(o['always_off'])} | {'—' if corr is None else '%+.3f' % corr} | {o['wall_s']/60:.0f} min |")
    table = ("| run | epochs (total) | val. accuracy | before BN recal. | MACs/image | vs dense R20 | conditional 1–99% (any) | "
             "always on / off | Spearman(MACs, loss) | wall |\n|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    (RES / 'cifar_study.json').write_text(json.dumps(out, indent=1))
    (RES / 'cifar_study.md').write_text(table + "\n")
    print(table)
    return table

PUBLISH = ROOT / 'checkpoints' / 'cifar10'
CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']   # the archive's folders, sorted

def publish(names:list):
    "Copy finished runs (config.json, model.pth, metrics.json, history.json) to checkpoints/cifar10/<name>/ and list them"
    import shutil
    for name in names:
        src, dst = folder(name), PUBLISH / name
        if not (src / 'metrics.json').is_file(): raise FileNotFoundError(f"{name} has not finished: no {src / 'metrics.json'}")
        dst.mkdir(parents=True, exist_ok=True)
        from bsgate.train import strict_json
        shutil.copy2(src / 'model.pth', dst / 'model.pth')
        for f in ('metrics.json', 'history.json'):   # strict JSON (null, not NaN), also for runs written before bsgate did so
            (dst / f).write_text(json.dumps(strict_json(json.loads((src / f).read_text())), indent=1, allow_nan=False))
        cfg = json.loads((src / 'config.json').read_text())
        if not cfg.get('vocab'): cfg['vocab'] = CIFAR10_CLASSES   # runs started before config.json recorded them: eval then checks the data's classes
        if cfg.get('init'): cfg['init'] = f"checkpoints/cifar10/{Path(cfg['init']).name.removeprefix('study2_')}"   # where the parent is published
        (dst / 'config.json').write_text(json.dumps(cfg, indent=2))
        predictions([name], force=True)   # its hold-out predictions, for paired tests (valid_preds.json)
    rows = []
    for d in sorted(PUBLISH.iterdir()):
        if not d.is_dir(): continue
        m, c = json.loads((d / 'metrics.json').read_text()), json.loads((d / 'config.json').read_text())
        size = (d / 'model.pth').stat().st_size / 2**20
        rows.append(f"| `cifar10/{d.name}` | {c['name']} ({'dense' if c['gate_layer'] is None else 'gated'}) | "
                    f"{c.get('init') or '—'} | {c['epochs']} | {m['accuracy']*100:.2f}% | {(m.get('macs') or dense_of(c['depth'], c.get('shortcut', 'A')))/1e6:.2f} M | "
                    f"{m.get('mac_frac', 1.):.3f} | {size:.1f} MB |")
    table = ("| run | preset | started from | epochs | val. accuracy | MACs/image | of own dense | model.pth |\n"
             "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    readme = PUBLISH.parent / 'README.md'
    text = readme.read_text() if readme.is_file() else ''
    start, end = '<!-- table: bench/cifar_study.py --publish -->', '<!-- end of table -->'
    if start in text: text = text[:text.index(start)] + start + '\n' + table + '\n' + end + text[text.index(end) + len(end):]
    else: text += f"\n{start}\n{table}\n{end}\n"
    readme.write_text(text)
    from bsgate.pretrained import write_registry
    print(f"registry of published runs rewritten: {write_registry(PUBLISH.parent)}")   # what bsgate.pretrained fetches
    print(table)

def predictions(names:list, force:bool=False) -> dict:
    "Per-image predictions of published runs on the hold-out, kept beside them (`valid_preds.json`) for paired tests"
    from bsgate.analysis import load_run
    out = {}
    for name in names:
        f = PUBLISH / name / 'valid_preds.json'
        if f.is_file() and not force: out[name] = json.loads(f.read_text()); continue
        learn = load_run(PUBLISH / name, data=str(DATA))   # validating on the hold-out its training used
        with learn.no_bar(), learn.no_logging(): preds, targ = learn.get_preds()
        d = dict(split='valid', n=len(targ), accuracy=float((preds.argmax(1) == targ).float().mean()),
                 pred=preds.argmax(1).tolist(), target=targ.tolist())
        f.write_text(json.dumps(d))
        print(f"{name}: {d['n']} predictions, accuracy {d['accuracy']:.4f} (metrics.json: "
              f"{json.loads((PUBLISH / name / 'metrics.json').read_text())['accuracy']:.4f})", flush=True)
        out[name] = d
    return out

def paired(a:str, b:str) -> dict:
    "McNemar's exact test on two published runs' per-image predictions (the same hold-out images, in the same order)"
    from scipy.stats import binomtest
    pa, pb = (json.loads((PUBLISH / n / 'valid_preds.json').read_text()) for n in (a, b))
    if pa['target'] != pb['target']: raise ValueError(f"{a} and {b} were not scored on the same images")
    ra = [p == t for p, t in zip(pa['pred'], pa['target'])]
    rb = [p == t for p, t in zip(pb['pred'], pb['target'])]
    only_a, only_b = sum(x and not y for x, y in zip(ra, rb)), sum(y and not x for x, y in zip(ra, rb))
    pv = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.
    return dict(a=a, b=b, n=len(ra), acc_a=sum(ra) / len(ra), acc_b=sum(rb) / len(rb), only_a=only_a, only_b=only_b, p=pv)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('names', nargs='*')
    ap.add_argument('--threads', type=int, default=None, help="torch threads for this process (default: torch's)")
    ap.add_argument('--limit', type=int, default=None, help='at most this many images per split (smoke tests only)')
    ap.add_argument('--epochs', type=int, default=None, help='override every named run\'s epochs (smoke tests only)')
    ap.add_argument('--report', action='store_true', help='print and write the table of finished runs')
    ap.add_argument('--publish', action='store_true', help='copy the named finished runs to checkpoints/cifar10/ (no training)')
    ap.add_argument('--park', action='store_true', help='copy the named unfinished runs to bench/partial/ to resume elsewhere (no training)')
    ap.add_argument('--predictions', action='store_true', help="score the named published runs' hold-out images, write valid_preds.json beside them")
    ap.add_argument('--front', action='store_true', help='the accuracy-MACs front of the finished E=30 arms: bench/results/front.json and .png')
    ap.add_argument('--paired', action='store_true', help="McNemar's test between the two named published runs (their valid_preds.json)")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    unknown = [n for n in a.names if n not in RUNS and not (PUBLISH / n).is_dir()]
    if unknown: ap.error(f"unknown run(s) {unknown}: an arm of RUNS or a published run in {PUBLISH}")
    RES.mkdir(parents=True, exist_ok=True)
    if a.publish: publish(a.names); sys.exit()
    if a.park: park(a.names); sys.exit()
    if a.predictions: predictions(a.names); sys.exit()
    if a.paired: print(json.dumps(paired(*a.names), indent=1)); sys.exit()
    if a.front: print(json.dumps(front(), indent=1)); sys.exit()
    for n in a.names: run(n, a.limit, a.epochs)
    if a.report or not a.names: report()
