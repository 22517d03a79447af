"""Training-step overhead of gating: gated CIFAR ResNet-56 with batch-shaping + L0 against the dense ResNet-56 (issue: training overhead).

One training step = forward + loss + backward + SGD step (momentum 0.9, Nesterov, weight decay 5e-4, none on the
gates), batch 128 of synthetic 32×32 images, on the CPU. Measured side by side in one process, interleaved:

(a) plain PyTorch loops, the models from `bsgate.models.resnet.cifar_resnet(56, gate_layer=...)`:
    dense         cross-entropy only, no gates
    gated         cross-entropy + γ·batch_shaping_loss(gate probabilities, (N, 1008)) + λ·l0_loss(gate logits),
                  γ = 0.75, λ = 0.5: the target
    gated_ce      the gated model with cross-entropy only (so gated − gated_ce = the two losses in the step)
    gated_open    the gated model with every gate forced open (`gate.override = ones`), losses included: no
                  Binary Concrete sampling and no gradient into the gates from the cross-entropy
    and, forward only (training mode, graph built): dense, gated, gated with the gates open, with the time spent
    inside the 27 gate modules measured by hooks; and the two losses alone (forward + backward) on leaf copies of the
    gate outputs.
(b) fastai: `cifar_learner(dls, 'cifar10_r56')` against `cifar_learner(dls, 'cifar10_r20_dense', depth=56)` on a
    `DataLoaders` of synthetic tensors (bs 128), timing every training batch of `learn.fit(1)` (interval between
    consecutive `before_batch` events: data, callbacks — GateCollector hooks, BatchShaping, L0Penalty, GateScheduler
    — forward, backward, step). The schedules are pinned at γ = 0.75, λ = 0.5 (both active: the worst case; the
    paper's schedules never have both non-zero at once), and validation is skipped.

    .venv/bin/python bench/train_overhead.py --quick          # batch 32, 2 rounds: ~30 s with 1 thread, minutes with 2 on a busy machine
    .venv/bin/python bench/train_overhead.py                  # the full tables (~6-10 minutes on 2 busy cores)
    .venv/bin/python bench/train_overhead.py --threads 1 --profile   # one thread; where the overhead goes

It prints markdown tables and writes bench/results/train_overhead.json and .md (`--out` to change; git-ignored).
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, time
from datetime import datetime, timezone
from pathlib import Path
import torch
from torch import nn
import torch.nn.functional as F
from bsgate.models.resnet import cifar_resnet
from bsgate.shaping import batch_shaping_loss
from bsgate.sparsity import l0_loss
from bsgate.callbacks import find_gates, gate_params

from common import machine_info, fmt_load, write_results  # bench/common.py

ROOT = Path(__file__).resolve().parent.parent
GAMMA, LAM, GOAL = 0.75, 0.5, 1.10

# ---------------------------------------------------------------------------------------------------- models, steps
def build(depth:int=56):
    "(dense, gated) CIFAR ResNets with the same non-gate weights"
    torch.manual_seed(0)
    gated = cifar_resnet(depth, gate_layer='channel').train()
    dense = cifar_resnet(depth, gate_layer=None).train()
    dense.load_state_dict({k: v for k, v in gated.state_dict().items() if '.gate' not in k})
    return dense, gated

def sgd(model, lr=0.1, wd=5e-4):
    "SGD, momentum 0.9, Nesterov; the gates without weight decay (as `NoGateWD` does in the Learner)"
    gp = {id(p) for p in gate_params(model)}
    groups = [dict(params=[p for p in model.parameters() if id(p) not in gp], weight_decay=wd)]
    if gp: groups.append(dict(params=[p for p in model.parameters() if id(p) in gp], weight_decay=0.))
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)

def aux_losses(gates) -> torch.Tensor:
    "γ · batch-shaping of the concatenated probabilities + λ · L0 of the per-layer logits (as the callbacks do)"
    p = torch.cat([g.probs for g in gates], 1)
    return GAMMA * batch_shaping_loss(p, validate=False) + LAM * l0_loss([g.logits.float() for g in gates])

def make_step(model, opt, x, y, losses:bool):
    gates = find_gates(model) if losses else []
    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        if gates: loss = loss + aux_losses(gates)
        loss.backward()
        opt.step()
        return loss.detach()
    return step

def set_open(model, open_:bool):
    for g in find_gates(model): g.override = torch.ones(g.nf) if open_ else None

def _mean_pool(x, ni:int):
    "The old `bsgate.gates._pool` (`x.mean((2, 3))`, whose backward materialises `grad.expand(...) / (H·W)`), for the before/after arms"
    if x.dim() == 4: x = x.mean((2, 3))
    if x.dim() != 2 or x.shape[1] != ni:
        raise ValueError(f"gate expected the block input with {ni} channels, shape (N, {ni}, H, W) or (N, {ni}); got {tuple(x.shape)}")
    return x

def with_mean_pool(fn):
    "`fn` run with the old mean pooling patched into `bsgate.gates` for the call only"
    import bsgate.gates as G
    def call():
        old, G._pool = G._pool, _mean_pool
        try: return fn()
        finally: G._pool = old
    return call

def set_fused(model, on:bool):
    "Turn the fused BN → ReLU → gate training path (`bsgate.blocks.bn_relu_gate`) on or off in every block of `model`"
    from bsgate.blocks import ResBlock
    for m in model.modules():
        if isinstance(m, ResBlock): m.fused = on

class GateTimer:
    "Time spent inside the gate modules' forwards (pre/post forward hooks), on `clock` (time.perf_counter or process_time)"
    def __init__(self, model, clock=time.perf_counter):
        self.total, self._t0, self.clock = 0., 0., clock
        self.handles = [h for g in find_gates(model) for h in (g.register_forward_pre_hook(self.pre), g.register_forward_hook(self.post))]
    def pre(self, m, i): self._t0 = self.clock()
    def post(self, m, i, o): self.total += self.clock() - self._t0
    def remove(self):
        for h in self.handles: h.remove()

# ---------------------------------------------------------------------------------------------------- timing
def interleave(fns:dict, repeats:int, warmup:int, block:int=1, setup:dict|None=None) -> dict:
    """Call each fn `block` times per round, the fns in a rotating order each round; `warmup` rounds untimed.
    Per fn: median / min / all of the per-call wall and CPU ms. `setup[name]()` runs (untimed) before each block."""
    names, setup = list(fns), setup or {}
    wall, cpu = {k: [] for k in names}, {k: [] for k in names}
    for r in range(warmup + repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            if k in setup: setup[k]()
            for _ in range(block):
                t0, c0 = time.perf_counter(), time.process_time()
                fns[k]()
                t1, c1 = time.perf_counter(), time.process_time()
                if r >= warmup: wall[k].append((t1 - t0) * 1e3); cpu[k].append((c1 - c0) * 1e3)
    return {k: summary(wall[k], cpu[k]) for k in names}

def summary(wall:list, cpu:list) -> dict:
    return dict(wall_ms=statistics.median(wall), cpu_ms=statistics.median(cpu), wall_min_ms=min(wall), cpu_min_ms=min(cpu),
                n=len(wall), wall_all=[round(v, 2) for v in wall], cpu_all=[round(v, 2) for v in cpu])

def ratios(r:dict, num:str, den:str) -> dict:
    "num/den on each clock: of the medians, and the median of the per-round ratios (robust to slow drifts)"
    out = {}
    for c in ('wall', 'cpu'):
        out[c] = r[num][f'{c}_ms'] / r[den][f'{c}_ms']
        out[f'{c}_paired'] = statistics.median(x / y for x, y in zip(r[num][f'{c}_all'], r[den][f'{c}_all']))
    return out

# ---------------------------------------------------------------------------------------------------- (a) plain loop
def plain(a, bs:int) -> dict:
    dense, gated = build(a.depth)
    torch.manual_seed(1)
    x, y = torch.randn(bs, 3, 32, 32), torch.randint(0, 10, (bs,))
    gates = find_gates(gated)
    od, og = sgd(dense), sgd(gated)
    steps = {'dense': make_step(dense, od, x, y, False), 'gated': make_step(gated, og, x, y, True),
             'gated_ce': make_step(gated, og, x, y, False), 'gated_open': make_step(gated, og, x, y, True)}
    if a.candidates:   # the fast path's parts: (fused, sum pool) = default (True, True); the old step (False, mean)
        steps['gated_old'] = with_mean_pool(make_step(gated, og, x, y, True))
        steps['gated_fused_meanpool'] = with_mean_pool(make_step(gated, og, x, y, True))
        steps['gated_unfused_sumpool'] = make_step(gated, og, x, y, True)
    unfused = {'gated_old', 'gated_unfused_sumpool'}
    def _setup(k):
        set_open(gated, k == 'gated_open'); set_fused(gated, k not in unfused)
    setup = {k: (lambda k=k: _setup(k)) for k in steps if k != 'dense'}
    print(f"(a) plain loop: {len(gates)} gate layers, {sum(g.nf for g in gates)} gates; steps, {a.repeats} rounds "
          f"of {a.block} after {a.warmup} warm-up round(s)", flush=True)
    t0 = time.time()
    r_step = interleave(steps, a.repeats, a.warmup, a.block, setup)
    set_open(gated, False); set_fused(gated, True)
    loss_end = {k: float(f()) for k, f in steps.items() if k in ('dense', 'gated')}
    print(f"    {time.time() - t0:.0f} s; " + ', '.join(f"{k} {v['wall_ms']:.0f} ms" for k, v in r_step.items()), flush=True)

    # forward only (training mode, graph built and dropped), with the gate modules timed by hooks in the gated forwards
    timer = GateTimer(gated, time.process_time if a.clock == 'cpu' else time.perf_counter)
    fwd_gate_ms = []
    def fwd_gated():
        timer.total = 0.
        gated(x)
        fwd_gate_ms.append(timer.total * 1e3)
    fwds = {'dense_fwd': lambda: dense(x), 'gated_fwd': fwd_gated, 'gated_open_fwd': lambda: gated(x)}
    setup = {'gated_fwd': lambda: set_open(gated, False), 'gated_open_fwd': lambda: set_open(gated, True)}
    t0 = time.time()
    r_fwd = interleave(fwds, a.repeats, a.warmup, a.block, setup)
    set_open(gated, False)
    timer.remove()
    n_skip = a.warmup * a.block  # the warm-up calls of the gated forward are in fwd_gate_ms too
    gate_ms = statistics.median(fwd_gate_ms[n_skip:]) if len(fwd_gate_ms) > n_skip else float('nan')

    # the losses alone, forward + backward, on leaf copies of the gate outputs
    gated(x)
    probs = [g.probs.detach().clone().requires_grad_() for g in gates]
    logits = [g.logits.detach().clone().requires_grad_() for g in gates]
    def losses():
        l = GAMMA * batch_shaping_loss(torch.cat(probs, 1), validate=False) + LAM * l0_loss([o.float() for o in logits])
        l.backward()
        for t in probs + logits: t.grad = None
    r_loss = interleave({'losses': losses}, a.repeats, a.warmup, 20)
    print(f"    forward {time.time() - t0:.0f} s; " + ', '.join(f"{k} {v['wall_ms']:.0f} ms" for k, v in r_fwd.items())
          + f"; gate modules {gate_ms:.1f} ms; losses {r_loss['losses']['wall_ms']:.2f} ms", flush=True)
    return dict(batch=bs, steps=r_step, forward=r_fwd, gate_modules_fwd_ms=gate_ms, losses=r_loss['losses'],
                final_loss=loss_end, ratio=ratios(r_step, 'gated', 'dense'),
                **({'ratio_old': ratios(r_step, 'gated_old', 'dense')} if 'gated_old' in r_step else {}))

# ---------------------------------------------------------------------------------------------------- (c) torch.compile
def compiled(a, bs:int) -> dict:
    "Dense and gated models each `torch.compile`d (default mode, static shapes), steps as in (a); compile time = first step"
    dense, gated = build(a.depth)
    torch.manual_seed(1)
    x, y = torch.randn(bs, 3, 32, 32), torch.randint(0, 10, (bs,))
    cd, cg = torch.compile(dense), torch.compile(gated)
    gates = find_gates(gated)
    def step(m, opt, losses):
        def f():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(x), y)
            if losses: loss = loss + aux_losses(gates)
            loss.backward(); opt.step()
        return f
    steps = {'dense_compiled': step(cd, sgd(dense), False), 'gated_compiled': step(cg, sgd(gated), True)}
    comp = {}
    for k, f in steps.items():
        t0 = time.perf_counter(); f(); comp[k] = time.perf_counter() - t0
        print(f"    {k}: compile + first step {comp[k]:.0f} s", flush=True)
    t0 = time.time()
    r = interleave(steps, a.repeats, a.warmup, a.block)
    print(f"(c) compiled {time.time() - t0:.0f} s; " + ', '.join(f"{k} {v['wall_ms']:.0f} ms" for k, v in r.items()), flush=True)
    return dict(batch=bs, steps=r, compile_s=comp, ratio=ratios(r, 'gated_compiled', 'dense_compiled'))

# ---------------------------------------------------------------------------------------------------- (b) fastai
def fastai_path(a, bs:int) -> dict:
    from fastai.data.core import DataLoaders
    from fastai.callback.core import Callback, CancelValidException
    from fastai.callback.schedule import SchedNo
    from torch.utils.data import TensorDataset
    from bsgate.learner import cifar_learner

    class BatchTimer(Callback):
        "Wall/CPU ms between consecutive training `before_batch` events (the last closed at `after_train`)"
        order = -1000
        def __init__(self): self.wall_ms, self.cpu_ms, self._t = [], [], None
        def _mark(self):
            t = (time.perf_counter(), time.process_time())
            if self._t is not None: self.wall_ms.append((t[0] - self._t[0]) * 1e3); self.cpu_ms.append((t[1] - self._t[1]) * 1e3)
            self._t = t
        def before_train(self): self._t = None
        def before_batch(self):
            if self.training: self._mark()
        def after_train(self): self._mark(); self._t = None

    class SkipValid(Callback):
        "Skip validation (after the other callbacks' `before_validate`, so their `after_validate` finds their state)"
        order = 1000
        def before_validate(self): raise CancelValidException()

    g = torch.Generator().manual_seed(0)
    n = bs * a.fastai_batches
    ds = lambda m: TensorDataset(torch.randn(m, 3, 32, 32, generator=g), torch.randint(0, 10, (m,), generator=g))
    dls = DataLoaders.from_dsets(ds(n), ds(bs), bs=bs, device='cpu', num_workers=0)
    torch.manual_seed(0)
    learners = {'dense': cifar_learner(dls, 'cifar10_r20_dense', depth=a.depth),
                'gated': cifar_learner(dls, f'cifar10_r{a.depth}')}
    if a.candidates:
        learners['gated_old'] = cifar_learner(dls, f'cifar10_r{a.depth}')
        set_fused(learners['gated_old'].model, False)
    if a.compile:   # `bsgate_train --compile`: training batches through torch.compile (the first fit, untimed, compiles)
        from bsgate.train import CompileTraining
        learners['dense_compiled'] = cifar_learner(dls, 'cifar10_r20_dense', depth=a.depth, cbs=[CompileTraining()])
        learners['gated_compiled'] = cifar_learner(dls, f'cifar10_r{a.depth}', cbs=[CompileTraining()])
    gl = learners['gated']
    for k in learners:
        if k.startswith('gated'): learners[k].gate_scheduler.scheds = {'gamma': SchedNo(GAMMA, GAMMA), 'lam': SchedNo(LAM, LAM)}
    timers = {}
    for k, l in learners.items():
        timers[k] = BatchTimer()
        l.add_cbs([timers[k], SkipValid()])
    print(f"(b) fastai: {a.fastai_batches} batches per fit(1), {a.repeats} rounds after {a.warmup} warm-up; "
          f"gated callbacks: {', '.join(type(c).__name__ for c in gl.cbs)}", flush=True)
    t0 = time.time()
    wall, cpu = {k: [] for k in learners}, {k: [] for k in learners}
    names = list(learners)
    def fit1(l): l.fit(1)
    for r in range(a.warmup + a.repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:
            l = learners[k]
            timers[k].wall_ms, timers[k].cpu_ms = [], []
            with l.no_bar(), l.no_logging(): (with_mean_pool(lambda: fit1(l)) if k == 'gated_old' else lambda: fit1(l))()
            if r >= a.warmup: wall[k] += timers[k].wall_ms; cpu[k] += timers[k].cpu_ms
    bs_loss = getattr(gl.batch_shaping, 'bs_loss', None)
    res = {k: summary(wall[k], cpu[k]) for k in names}
    per = a.fastai_batches
    def ratio(num):
        rat = {}
        for c, d in (('wall', wall), ('cpu', cpu)):  # per-fit medians paired by round for a drift-robust ratio
            rat[c] = res[num][f'{c}_ms'] / res['dense'][f'{c}_ms']
            rat[f'{c}_paired'] = statistics.median(statistics.median(d[num][i:i + per]) / statistics.median(d['dense'][i:i + per])
                                                   for i in range(0, len(d[num]), per))
        return rat
    rat = ratio('gated')
    if 'gated_compiled' in res:
        rc = res['gated_compiled']['cpu_ms'] / res['dense_compiled']['cpu_ms']
        print(f"    compiled: dense {res['dense_compiled']['cpu_ms']:.0f} ms, gated {res['gated_compiled']['cpu_ms']:.0f} ms CPU per batch (ratio {rc:.3f})", flush=True)
    out = dict(batch=bs, batches_per_fit=per, batches=res, ratio=rat, **({'ratio_old': ratio('gated_old')} if 'gated_old' in res else {}),
               **({'ratio_compiled': {c: res['gated_compiled'][f'{c}_ms'] / res['dense_compiled'][f'{c}_ms'] for c in ('wall', 'cpu')}}
                  if 'gated_compiled' in res else {}),
               bs_loss_last=None if bs_loss is None else float(bs_loss.detach()),
               gamma=GAMMA, lam=LAM, callbacks=[type(c).__name__ for c in gl.cbs])
    print(f"    {time.time() - t0:.0f} s; dense {res['dense']['wall_ms']:.0f} ms, gated {res['gated']['wall_ms']:.0f} ms "
          f"per batch (wall ratio {rat['wall']:.3f}, CPU ratio {rat['cpu']:.3f})", flush=True)
    return out

# ---------------------------------------------------------------------------------------------------- profile
def profile(a, bs:int, n:int=2, rounds:int=3) -> dict:
    """Self CPU time per op and step of the dense and the gated step (torch.profiler, which times on the wall clock):
    `rounds` alternating rounds of `n` profiled steps each, per op the round with the least time (other jobs only add)"""
    from torch.profiler import profile as prof, ProfilerActivity
    dense, gated = build(a.depth)
    x, y = torch.randn(bs, 3, 32, 32), torch.randint(0, 10, (bs,))
    steps = {'dense': make_step(dense, sgd(dense), x, y, False), 'gated': make_step(gated, sgd(gated), x, y, True)}
    for f in steps.values(): f()
    res = {k: {} for k in steps}
    for r in range(rounds):
        for name in (steps if r % 2 == 0 else list(steps)[::-1]):
            with prof(activities=[ProfilerActivity.CPU]) as p:
                for _ in range(n): steps[name]()
            for e in p.key_averages():
                t = e.self_cpu_time_total / n / 1e3
                old = res[name].get(e.key)
                if old is None or t < old[0]: res[name][e.key] = (t, e.count // n)
    keys = set(res['dense']) | set(res['gated'])
    rows = [dict(op=k, dense_ms=res['dense'].get(k, (0, 0))[0], gated_ms=res['gated'].get(k, (0, 0))[0],
                 dense_calls=res['dense'].get(k, (0, 0))[1], gated_calls=res['gated'].get(k, (0, 0))[1]) for k in keys]
    for r in rows: r['excess_ms'] = r['gated_ms'] - r['dense_ms']
    rows.sort(key=lambda r: -r['excess_ms'])
    tot = {k: sum(r[f'{k}_ms'] for r in rows) for k in ('dense', 'gated')}
    return dict(rows=rows, total_dense_ms=tot['dense'], total_gated_ms=tot['gated'], steps=n, rounds=rounds)

# ---------------------------------------------------------------------------------------------------- report
def tables(res:dict) -> str:
    m, pa, fa, c = res['machine'], res.get('plain'), res.get('fastai'), res['clock']
    other = 'cpu' if c == 'wall' else 'wall'
    cl = {'wall': 'wall', 'cpu': 'CPU'}
    head = (f"{m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']}, {m['threads']} thread(s), {m['platform']}; "
            f"load average {fmt_load(m['loadavg_start'])} at the start, {fmt_load(m['loadavg_end'])} at the end; "
            f"{res['elapsed_s']:.0f} s. ResNet-{res['args']['depth']}; medians; the ratios and the breakdown use the "
            f"{cl[c]} clock.\n")
    out = [head]
    verdict = lambda r: 'met' if r <= GOAL else 'NOT met'
    if pa:
        s, f = pa['steps'], pa['forward']
        d = s['dense'][f'{c}_ms']
        out += [f"**Training step (plain PyTorch loop, batch {pa['batch']})**\n",
                f"| step | {cl[c]} ms | vs dense | {cl[other]} ms | vs dense | min {cl[c]} ms | steps |", "|---|---|---|---|---|---|---|"]
        for k, lab in (('dense', 'dense'), ('gated', 'gated, CE + BS + L0'), ('gated_ce', 'gated, CE only'),
                       ('gated_open', 'gated, gates forced open, CE + BS + L0'),
                       ('gated_old', 'gated, CE + BS + L0, before issue 14: unfused, mean-pool gate input'),
                       ('gated_fused_meanpool', 'gated, CE + BS + L0, fused BN→ReLU→gate only (mean pool)'),
                       ('gated_unfused_sumpool', 'gated, CE + BS + L0, sum pool only (unfused)')):
            if k not in s: continue
            v = s[k]
            out.append(f"| {lab} | {v[f'{c}_ms']:.0f} | {v[f'{c}_ms'] / d:.3f} | {v[f'{other}_ms']:.0f} | "
                       f"{v[f'{other}_ms'] / s['dense'][f'{other}_ms']:.3f} | {v[f'{c}_min_ms']:.0f} | {v['n']} |")
        r = pa['ratio']
        out.append(f"\ngated / dense: **{r[c]:.3f}** ({cl[c]} clock; median of per-round ratios {r[f'{c}_paired']:.3f}; "
                   f"{cl[other]} clock {r[other]:.3f}); goal ≤ {GOAL:.2f}: **{verdict(r[c])}**.\n")
        g = s['gated'][f'{c}_ms']
        fw = {k: v[f'{c}_ms'] for k, v in f.items()}
        gm, lo = pa['gate_modules_fwd_ms'], pa['losses'][f'{c}_ms']
        fx = fw['gated_fwd'] - fw['dense_fwd']
        rest = (g - d) - fx - lo
        out += [f"**Where the gated step's extra {g - d:.0f} ms ({(g - d) / d:+.1%} of dense) go** "
                f"(forward only: training mode, graph built; gate modules timed by hooks)\n",
                "| part | ms | share of the gated step |", "|---|---|---|",
                f"| dense forward | {fw['dense_fwd']:.0f} | {fw['dense_fwd'] / g:.1%} |",
                f"| gated forward | {fw['gated_fwd']:.0f} | {fw['gated_fwd'] / g:.1%} |",
                f"| gated forward, gates forced open | {fw['gated_open_fwd']:.0f} | {fw['gated_open_fwd'] / g:.1%} |",
                f"| inside the {res['n_gate_layers']} gate modules (in the gated forward) | {gm:.1f} | {gm / g:.1%} |",
                f"| forward excess: gated − dense forward | {fx:.0f} | {fx / g:.1%} |",
                f"| BS + L0 losses alone, fwd + bwd (leaf inputs) | {lo:.2f} | {lo / g:.2%} |",
                f"| losses in the step: gated − gated CE only | {g - s['gated_ce'][f'{c}_ms']:.0f} | {(g - s['gated_ce'][f'{c}_ms']) / g:.1%} |",
                f"| backward + step excess (the rest) | {rest:.0f} | {rest / g:.1%} |", ""]
    if fa:
        b, r = fa['batches'], fa['ratio']
        out += [f"**Training batch through fastai `learn.fit` (batch {fa['batch']}, {fa['batches_per_fit']} batches per fit)**\n",
                f"| learner | {cl[c]} ms per batch | vs dense | {cl[other]} ms | vs dense | min {cl[c]} ms | batches |",
                "|---|---|---|---|---|---|---|",
                f"| `cifar_learner(dls, 'cifar10_r20_dense', depth={res['args']['depth']})` | {b['dense'][f'{c}_ms']:.0f} | 1.000 | "
                f"{b['dense'][f'{other}_ms']:.0f} | 1.000 | {b['dense'][f'{c}_min_ms']:.0f} | {b['dense']['n']} |",
                f"| `cifar_learner(dls, 'cifar10_r{res['args']['depth']}')`, γ = {fa['gamma']}, λ = {fa['lam']} | "
                f"{b['gated'][f'{c}_ms']:.0f} | {r[c]:.3f} | {b['gated'][f'{other}_ms']:.0f} | {r[other]:.3f} | "
                f"{b['gated'][f'{c}_min_ms']:.0f} | {b['gated']['n']} |"]
        if 'gated_old' in b:
            ro = fa['ratio_old']
            out.append(f"| the same, before issue 14 (unfused, mean-pool gate input) | {b['gated_old'][f'{c}_ms']:.0f} | {ro[c]:.3f} | "
                       f"{b['gated_old'][f'{other}_ms']:.0f} | {ro[other]:.3f} | {b['gated_old'][f'{c}_min_ms']:.0f} | {b['gated_old']['n']} |")
        if 'gated_compiled' in b:
            out.append(f"| `cifar_learner(.., 'cifar10_r20_dense', depth={res['args']['depth']})` + `CompileTraining` (`--compile`) | "
                       f"{b['dense_compiled'][f'{c}_ms']:.0f} | {b['dense_compiled'][f'{c}_ms'] / b['dense'][f'{c}_ms']:.3f} | "
                       f"{b['dense_compiled'][f'{other}_ms']:.0f} | | {b['dense_compiled'][f'{c}_min_ms']:.0f} | {b['dense_compiled']['n']} |")
            out.append(f"| `cifar_learner(.., 'cifar10_r{res['args']['depth']}')` + `CompileTraining` (`--compile`) | "
                       f"{b['gated_compiled'][f'{c}_ms']:.0f} | {b['gated_compiled'][f'{c}_ms'] / b['dense'][f'{c}_ms']:.3f} | "
                       f"{b['gated_compiled'][f'{other}_ms']:.0f} | | {b['gated_compiled'][f'{c}_min_ms']:.0f} | {b['gated_compiled']['n']} |")
            out.append(f"\ncompiled gated / compiled dense: **{fa['ratio_compiled'][c]:.3f}** ({cl[c]} clock); the first (untimed) "
                       f"fit of each compiled learner compiled it.")
        out += [f"\ngated / dense: **{r[c]:.3f}** ({cl[c]} clock; median of per-fit ratios {r[f'{c}_paired']:.3f}); "
                f"goal ≤ {GOAL:.2f}: **{verdict(r[c])}**.\n"]
    co = res.get('compiled')
    if co:
        s_, r = co['steps'], co['ratio']
        out += [f"**`torch.compile`d models, plain loop (batch {co['batch']}; both compiled, default mode)**\n",
                f"| step | {cl[c]} ms | vs compiled dense | compile + first step, s |", "|---|---|---|---|",
                f"| dense, compiled | {s_['dense_compiled'][f'{c}_ms']:.0f} | 1.000 | {co['compile_s']['dense_compiled']:.0f} |",
                f"| gated, compiled, CE + BS + L0 | {s_['gated_compiled'][f'{c}_ms']:.0f} | {r[c]:.3f} | {co['compile_s']['gated_compiled']:.0f} |", ""]
        if pa: out.append(f"Compiled against eager: dense {s_['dense_compiled'][f'{c}_ms'] / pa['steps']['dense'][f'{c}_ms']:.3f}×, "
                          f"gated {s_['gated_compiled'][f'{c}_ms'] / pa['steps']['gated'][f'{c}_ms']:.3f}× the eager step.\n")
    pr = res.get('profile')
    if pr:
        out += [f"**torch.profiler, self CPU ms per step** (batch {res['profile_batch']}, per op the least of {pr['rounds']} alternating rounds of {pr['steps']} steps; "
                f"totals: dense {pr['total_dense_ms']:.0f}, gated {pr['total_gated_ms']:.0f}), the ops with the largest gated excess\n",
                "| op | dense ms | gated ms | excess ms | calls dense → gated |", "|---|---|---|---|---|"]
        for r in pr['rows'][:15]:
            out.append(f"| `{r['op']}` | {r['dense_ms']:.1f} | {r['gated_ms']:.1f} | {r['excess_ms']:+.1f} | {r['dense_calls']} → {r['gated_calls']} |")
        out.append("")
    return '\n'.join(out)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--depth', type=int, default=56, help='CIFAR ResNet depth (20, 32, 44, 56, 110)')
    ap.add_argument('--repeats', type=int, default=8, help='timed rounds (every case runs --block steps per round)')
    ap.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    ap.add_argument('--block', type=int, default=1, help='consecutive steps of one case per round')
    ap.add_argument('--fastai-batches', type=int, default=3, help='training batches per learn.fit(1)')
    ap.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    ap.add_argument('--clock', default=None, choices=('wall', 'cpu'),
                    help="clock of the ratios: wall (perf_counter) or cpu (process_time: robust to other jobs with "
                         "--threads 1); default cpu with one thread, wall otherwise")
    ap.add_argument('--skip', default='', help="comma-separated parts to skip: plain, fastai")
    ap.add_argument('--candidates', action='store_true', help="also time the gated step before issue 14 (unfused, mean pool) and with "
                    "each fast-path part alone, in the plain loop and (the old step) through fastai")
    ap.add_argument('--compile', action='store_true', help="also time torch.compile'd dense and gated models: in the plain loop (compile "
                    "time reported) and through fastai with `CompileTraining` (bsgate_train --compile)")
    ap.add_argument('--profile', action='store_true', help='also profile a dense and a gated step (torch.profiler)')
    ap.add_argument('--quick', action='store_true', help='batch 32, 2 rounds, 2 fastai batches: a smoke run')
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'train_overhead.json'))
    a = ap.parse_args()
    if a.quick: a.batch, a.repeats, a.fastai_batches = 32, 2, 2
    torch.set_num_threads(a.threads)
    skip = set(filter(None, a.skip.split(',')))
    a.clock = a.clock or ('cpu' if a.threads == 1 else 'wall')
    res = dict(machine=machine_info(), args=vars(a), clock=a.clock, when=datetime.now(timezone.utc).isoformat(timespec='seconds'))
    m = res['machine']
    print(f"# {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']}, {m['threads']} threads, load average {fmt_load(m['loadavg_start'])}\n", flush=True)
    t0 = time.time()
    res['n_gate_layers'] = len(find_gates(cifar_resnet(a.depth, gate_layer='channel')))
    if 'plain' not in skip: res['plain'] = plain(a, a.batch)
    if 'fastai' not in skip: res['fastai'] = fastai_path(a, a.batch)
    if a.compile and 'plain' not in skip: res['compiled'] = compiled(a, a.batch)
    if a.profile:
        res['profile_batch'] = a.batch
        res['profile'] = profile(a, a.batch, 1 if a.quick else 2, 2 if a.quick else 3)
    res['machine']['loadavg_end'] = os.getloadavg()
    res['elapsed_s'] = time.time() - t0
    md = tables(res)
    write_results(a.out, res, md)

if __name__ == '__main__':
    main()
