"""Calibrating the loss scales (issue: batch-shaping that bites): what γ and λ mean against the task loss, on real data.

1. `grads`: at initialisation, the norm of the gradient that each term sends into the gate parameters, on one real
   training batch — the task loss (straight-through through the sampled gates), batch-shaping with γ = 0.75 under both
   reductions, the paper's L0 term with λ = 0.5, and the MAC budgets (`'layer'` with λ = 1, `'mac'` with λ = 30, both
   with the target at ResNet-20's MACs; 0.5 for ResNet-20, GaterNet-R20 and ResNet-50, 0.6 for the PSPNet). CIFAR ResNet-20/56/110 (batch 128,
   CIFAR-10), GaterNet-R20, ImageNet ResNet-50 with the `imagenet_r50` gates (batch 32 of Imagenette at 160 px) and
   the CamVid PSPNet-R18 (batch 8, 192 px crops).
2. `warmup`: a gated ResNet-20 trained with batch-shaping only (λ = 0, γ falling from 0.75 to 0 over the run) under
   `reduction='sum'`, `'mean'`, and with γ = 0: the pooled Cramér–von Mises distance of the validation gates from
   Beta(0.6, 0.4), the share of conditional gates, and the per-layer histograms (figure in the CIFAR tutorial).
3. `bias`: the initial gate bias, 2 / 3 / 5, in the from-scratch recipe (γ = 0.75 sum, per-layer budget λ = 1 at
   ResNet-20's MACs) on a gated ResNet-32, short runs: accuracy before and after BN recalibration, MACs, conditional share.

    .venv/bin/python bench/calibration.py grads warmup bias --threads 1

Results: bench/results/calibration_<part>.json and .md; run folders bench/results/runs/calib_*.
"""
import json, os, sys, time, argparse, math
from pathlib import Path
import torch
from torch import nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'bench'))
from common import machine_info, write_results

SHARED = Path(os.environ.get('BSGATE_DATA', ROOT.parent / 'shared' / 'data'))
CIFAR = SHARED / 'cifar10' / 'train.tar.gz'
RES = ROOT / 'bench' / 'results'

def _dense(depth):
    from bsgate.models.resnet import cifar_resnet
    from bsgate.macs import dense_macs
    return dense_macs(cifar_resnet(depth, gate_layer=None), (3, 32, 32))

def grad_norms(preset:str, data, bs:int, size=None, target=None, seed:int=0) -> dict:
    "Norms of each term's gradient on the gate parameters (a GaterNet's: its gater's), at initialisation, on one real batch"
    from bsgate.learner import get_preset, LEARNERS
    from bsgate.train import preset_dls
    from bsgate.callbacks import find_gates, open_target
    from bsgate.shaping import batch_shaping_loss
    from bsgate.sparsity import l0_loss
    from bsgate.macs import gate_mac_weights
    p = get_preset(preset, bs=bs, **({'size': size} if size else {}))
    dls = preset_dls(p, str(data), limit=4 * bs, device='cpu')
    torch.manual_seed(seed)
    learn = LEARNERS[p.task][p.dataset](dls, p)
    model = learn.model
    side = p.size
    gm = gate_mac_weights(model, (3, side, side))
    x, y = dls.train.one_batch()
    x, y = x.as_subclass(torch.Tensor), y.as_subclass(torch.Tensor)
    model.train()
    out = model(x)
    gates = find_gates(model)
    params = [q for q in (model.gater if hasattr(model, 'gater') else nn.ModuleList(gates)).parameters()]
    probs, logits = [g.probs for g in gates], [g.logits.float() for g in gates]
    P = torch.cat(probs, 1)
    try: t = open_target(gm, target)
    except ValueError: t = None        # a GaterNet's gates (after conv2) switch no MACs: no budget to hold
    terms = {
        'task': lambda: learn.loss_func(out, y),
        'bas_mean_0.75': lambda: 0.75 * batch_shaping_loss(P, reduction='mean', validate=False),
        'bas_sum_0.75': lambda: 0.75 * batch_shaping_loss(P, reduction='sum', validate=False),
        'l0_0.5': lambda: 0.5 * l0_loss(logits),
    }
    if t is not None: terms.update({
        'budget_layer_1': lambda: 1. * sum(q.shape[1] * (q.mean() - t).clamp(min=0) for q in probs),
        'budget_mac_30': lambda: 30. * (gm.expected(probs) - target).clamp(min=0)})
    res = dict(preset=preset, bs=bs, size=side, n_gates=P.shape[1], n_layers=len(gates), target=target, open_target=t,
               open_prob=P.mean().item())
    for k, f in terms.items():
        gs = torch.autograd.grad(f(), params, retain_graph=True, allow_unused=True)
        res[k] = math.sqrt(sum(float(g.pow(2).sum()) for g in gs if g is not None))
    return res

def part_grads() -> dict:
    r20 = _dense(20)
    cases = [('cifar10_r20', CIFAR, 128, None, 0.5), ('cifar10_r56', CIFAR, 128, None, round(r20 / _dense(56), 4)),
             ('cifar10_r110', CIFAR, 128, None, round(r20 / _dense(110), 4)),
             ('imagenet_r50', SHARED / 'imagenette2-160', 32, 160, 0.5), ('camvid_pspnet_r18', SHARED / 'camvid', 8, 192, 0.6),
             ('cifar10_gaternet_r20_hybrid', CIFAR, 128, None, 0.5)]   # the hybrid: GaterNet's own recipe has no batch-shaping
    rows = []
    for c in cases:
        t0 = time.time()
        r = grad_norms(*c)
        r['wall_s'] = round(time.time() - t0, 1)
        rows.append(r)
        print(r, flush=True)
    keys = ['task', 'bas_mean_0.75', 'bas_sum_0.75', 'l0_0.5', 'budget_layer_1', 'budget_mac_30']
    md = ("Gradient norm on the gate parameters (GaterNet: its gater's) at initialisation, one real training batch\n\n"
          "| network | gates | task | γ=0.75 BaS mean | γ=0.75 BaS sum | λ=0.5 L0 (mean) | λ=1 budget 'layer' | λ=30 budget 'mac' | budget target |\n"
          "|---|---|---|---|---|---|---|---|---|\n" +
          "\n".join(f"| {r['preset']} | {r['n_gates']} | " + " | ".join(f"{r[k]:.3g}" if k in r else "n/a" for k in keys) + f" | {r['target']} |" for r in rows))
    res = dict(machine=machine_info(), rows=rows)
    write_results(RES / 'calibration_grads.json', res, md)
    return res

def _train(name, preset, **kw):
    from bsgate.train import train
    out = RES / 'runs' / f'calib_{name}'
    if (out / 'metrics.json').is_file(): return json.loads((out / 'metrics.json').read_text()), 0.
    t0 = time.time()
    resume = (out / 'checkpoint.pth').is_file()
    m = train(preset, data=str(CIFAR), out=str(out), quiet=True, resume=resume, **({} if resume else kw))
    return m, time.time() - t0

def _fit(name):
    from bsgate.analysis import load_run, collect_gates, prior_fit, summary
    rec = collect_gates(load_run(RES / 'runs' / f'calib_{name}', data=str(CIFAR)))
    pf = prior_fit(rec)
    s = summary(rec, threshold=0.01)
    return dict(cvm_pooled=float(pf['all']), cvm_per_gate_mean=float(pf.drop('all').mean()), conditional_thr=s['gates']['conditional'],
                open=s['gates']['open'])

def part_warmup(limit=10000, epochs=2) -> dict:
    "Batch-shaping alone on a gated ResNet-20: does the gate distribution move to the prior, under each reduction?"
    from bsgate.learner import get_preset
    import dataclasses
    arms = {'warmup_sum': dict(gamma=0.75), 'warmup_mean': dict(gamma=0.75), 'warmup_none': dict(gamma=0.)}
    rows = {}
    for name, kw in arms.items():
        p = dataclasses.replace(get_preset('cifar10_r20'), warmup=1.0, ramp_end=1.0, lam=0., bs=128, lr=0.1, lr_warmup=0.1, bn_recal=0,
                                bs_reduction='mean' if name == 'warmup_mean' else 'sum', epochs=epochs, **kw)
        m, wall = _train(name, p, limit=limit)
        rows[name] = dict(accuracy=m['accuracy'], **_fit(name), wall_s=round(wall, 1))
        print(name, rows[name], flush=True)
    md = ("Batch-shaping only (λ = 0; γ from 0.75 falling linearly to 0 over the run), gated ResNet-20, "
          f"{limit} CIFAR-10 images, {epochs} epochs; validation: the 5,000-image hold-out\n\n"
          "| arm | accuracy | CvM pooled | CvM per gate (mean) | conditional 1–99% | open |\n|---|---|---|---|---|---|\n" +
          "\n".join(f"| {k} | {v['accuracy']*100:.1f}% | {v['cvm_pooled']:.4f} | {v['cvm_per_gate_mean']:.4f} | {v['conditional_thr']*100:.0f}% | "
                    f"{v['open']*100:.0f}% |" for k, v in rows.items()))
    res = dict(machine=machine_info(), limit=limit, epochs=epochs, rows=rows)
    write_results(RES / 'calibration_warmup.json', res, md)
    return res

def part_bias(limit=10000, epochs=3) -> dict:
    "The initial gate bias in the from-scratch recipe (gated ResNet-32 held to ResNet-20's MACs)"
    target = round(0.95 * _dense(20) / _dense(32), 4)
    rows = {}
    for b in (2., 3., 5.):
        name = f'bias{b:g}'
        m, wall = _train(name, 'cifar10_r32', limit=limit, epochs=epochs, bs=128, lr=0.1, lr_warmup=1 / epochs, gamma=0.75, lam=1.,
                         mac_target=target, budget='layer', gate_bias=b)
        before = m['bn_recal']['before']
        rows[name] = dict(bias=b, accuracy=m['accuracy'], accuracy_before_recal=before['accuracy'], mac_frac=m['mac_frac'],
                          macs=m['macs'], conditional_thr=m['gates']['conditional_thr'], open=m['gates']['open'], wall_s=round(wall, 1))
        print(name, rows[name], flush=True)
    md = (f"Initial gate bias, gated ResNet-32 from scratch (γ = 0.75 sum, budget 'layer' λ = 1, target {target} of its dense MACs), "
          f"{limit} CIFAR-10 images, {epochs} epochs\n\n"
          "| bias (σ) | accuracy | before BN recal. | MAC fraction | conditional 1–99% | open |\n|---|---|---|---|---|---|\n" +
          "\n".join(f"| {v['bias']:g} ({1/(1+math.exp(-v['bias'])):.3f}) | {v['accuracy']*100:.1f}% | {v['accuracy_before_recal']*100:.1f}% | "
                    f"{v['mac_frac']:.3f} | {v['conditional_thr']*100:.0f}% | {v['open']*100:.0f}% |" for v in rows.values()))
    res = dict(machine=machine_info(), limit=limit, epochs=epochs, target=target, rows=rows)
    write_results(RES / 'calibration_bias.json', res, md)
    return res

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('parts', nargs='+', choices=['grads', 'warmup', 'bias'])
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--limit', type=int, default=10000)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    for part in a.parts:
        if part == 'grads': part_grads()
        elif part == 'warmup': part_warmup(a.limit)
        else: part_bias(a.limit)
