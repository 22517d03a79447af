"""Cost of the losses: batch-shaping + L0, forward + backward, for all the gates of ResNet-50, as a share of a training step (issue: loss cost).

The network is the `imagenet_r50` preset's (`bsgate.learner.build_model(get_preset('imagenet_r50'))`: ImageNet
ResNet-50 with channel gates at conv1 and conv2 of every Bottleneck, `gate_at=(1, 2)`: 32 gate layers, 7552 gates).
The loss is what the callbacks add: γ · batch_shaping_loss(concatenated gate probabilities (N, 7552)) + λ · l0_loss(the
32 per-layer (N, C) logits), γ = 0.75, λ = 0.5, `validate=False` (the callbacks' setting). Its inputs are leaf tensors of
the real shapes (logits ~ 2 + N(0, 1), probabilities their sigmoid), so the time is the losses' alone (the gates'
own sigmoid and backward belong to the gates). Timed side by side, interleaved in rotating order:

    step            a full training step of the gated ResNet-50 with the losses (eager): forward, CE + losses, backward,
                    SGD (momentum 0.9, Nesterov, wd 1e-4, none on the gates), at `--batch` images of `--size` px
    eager           the losses, forward + backward, at the step's batch and at the paper's batch (`--paper-batch`, 256)
    eager_bs/_l0    the two terms apart (eager)
    eager_validate  eager with batch_shaping_loss's default `validate=True` (value checks: one host read-back)
    compiled_cold   `torch.compile(losses, fullgraph=True, dynamic=False)`, library as it is, traced before any eager
                    call (the prior's CDF tables not yet cached for the device/dtype): a compile check only, never timed
    compiled        the same, traced after one eager call (tables cached)
    compiled_fixed  the same as compiled_cold, with the proposed one-line fix to `bsgate.shaping._bs_fwd` patched in
                    during the calls (only if compiled_cold fails: the empirical CDF `e` built without a view; README)

The share is loss time / step time at the step's batch; at the paper's batch it is the loss time at 256 over the
step time scaled linearly to 256 images (an estimate: the step is not run at 256 on this CPU).

    .venv/bin/python bench/loss_cost.py --quick          # batch 8 at 128 px, 2 rounds (~2-3 minutes, compiling included)
    .venv/bin/python bench/loss_cost.py                  # batch 16 at 224 px, 6 rounds (~5-8 minutes on 2 busy cores)
    .venv/bin/python bench/loss_cost.py --threads 1      # one thread: CPU-time clock, robust to other jobs

It prints a markdown table and writes bench/results/loss_cost.json and .md (`--out` to change; git-ignored).
"""
from __future__ import annotations
import argparse, contextlib, json, os, platform, statistics, time, traceback
from datetime import datetime, timezone
from pathlib import Path
import torch
import torch.nn.functional as F
import bsgate.shaping as shaping
from bsgate.shaping import batch_shaping_loss, DEFAULT_PRIOR
from bsgate.sparsity import l0_loss
from bsgate.learner import get_preset, build_model
from bsgate.callbacks import find_gates, gate_params

from common import machine_info, fmt_load, write_results  # bench/common.py

ROOT = Path(__file__).resolve().parent.parent
GAMMA, LAM, GOAL = 0.75, 0.5, 0.02
VARIANTS = ('eager', 'eager_bs', 'eager_l0', 'eager_validate', 'compiled_cold', 'compiled', 'compiled_fixed')

# ---------------------------------------------------------------------------------------------------- the losses
def losses(probs:list, logits:list, validate:bool=False):
    "γ · batch-shaping of the concatenated probabilities + λ · L0 of the per-layer logits, as the callbacks add them"
    return GAMMA * batch_shaping_loss(torch.cat(probs, 1), validate=validate) + LAM * l0_loss([l.float() for l in logits])

# distinct code objects, so that each compiled variant has its own dynamo cache entries
def losses_cold(probs, logits): return losses(probs, logits)
def losses_fixed(probs, logits): return losses(probs, logits)
COMPILE_TARGETS = {'compiled_cold': losses_cold, 'compiled': losses, 'compiled_fixed': losses_fixed}

def bs_only(probs, logits): return GAMMA * batch_shaping_loss(torch.cat(probs, 1), validate=False)
def l0_only(probs, logits): return LAM * l0_loss([l.float() for l in logits])

def _bs_fwd_fixed(x, prior):
    "`bsgate.shaping._bs_fwd` with `e` built without a view (`unsqueeze(1).div(N + 1)`): what torch.compile needs"
    N = x.shape[0]
    xs, idx = x.sort(dim=0)
    Fc = prior.cdf(xs)
    e = torch.arange(1, N + 1, device=x.device, dtype=x.dtype).unsqueeze(1).div(N + 1)
    return xs, idx, Fc, e

@contextlib.contextmanager
def fixed_fwd():
    old = shaping._bs_fwd
    shaping._bs_fwd = _bs_fwd_fixed
    try: yield
    finally: shaping._bs_fwd = old

def leaf_inputs(n:int, widths:list, seed:int=0):
    g = torch.Generator().manual_seed(seed)
    logits = [(2 + torch.randn(n, c, generator=g)).requires_grad_() for c in widths]
    probs = [torch.sigmoid(l).detach().requires_grad_() for l in logits]
    return probs, logits

def loss_call(fn, probs, logits, ctx=contextlib.nullcontext):
    "forward + backward of `fn` on the leaves, grads cleared"
    def call():
        with ctx():
            l = fn(probs, logits)
            l.backward()
        for t in probs + logits: t.grad = None
        return l
    return call

def try_compile(fn, probs, logits, ctx=contextlib.nullcontext) -> tuple:
    "(compiled fn or None, compile seconds, error string or None, max |Δ| of loss and grads against eager)"
    c = torch.compile(fn, fullgraph=True, dynamic=False)
    t0 = time.perf_counter()
    try:
        with ctx():
            lc = c(probs, logits); lc.backward()
    except Exception as e:
        msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        for t in probs + logits: t.grad = None
        return None, time.perf_counter() - t0, msg, None
    secs = time.perf_counter() - t0
    gc = [t.grad.clone() for t in probs + logits]
    for t in probs + logits: t.grad = None
    le = fn(probs, logits); le.backward()
    diff = max([(lc - le).abs().item()] + [(a - t.grad).abs().max().item() for a, t in zip(gc, probs + logits)])
    for t in probs + logits: t.grad = None
    return c, secs, None, diff

# ---------------------------------------------------------------------------------------------------- timing
def summary(wall:list, cpu:list) -> dict:
    return dict(wall_ms=statistics.median(wall), cpu_ms=statistics.median(cpu), wall_min_ms=min(wall), cpu_min_ms=min(cpu),
                n=len(wall), wall_all=[round(v, 4) for v in wall], cpu_all=[round(v, 4) for v in cpu])

def interleave(fns:dict, blocks:dict, repeats:int, warmup:int) -> dict:
    "Each round, every fn in a rotating order, `blocks[name]` calls in a row timed together (per-call mean kept)"
    names = list(fns)
    wall, cpu = {k: [] for k in names}, {k: [] for k in names}
    for r in range(warmup + repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            n = blocks.get(k, 1)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n): fns[k]()
            t1, c1 = time.perf_counter(), time.process_time()
            if r >= warmup: wall[k].append((t1 - t0) * 1e3 / n); cpu[k].append((c1 - c0) * 1e3 / n)
        print(f"    round {r + 1}/{warmup + repeats}{' (warm-up)' if r < warmup else ''}: "
              + ', '.join(f"{k} {wall[k][-1]:.2f}" for k in names if wall[k] and r >= warmup), flush=True)
    return {k: summary(wall[k], cpu[k]) for k in names}

# ---------------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--batch', type=int, default=16, help='images per training step (and the loss batch compared with it)')
    ap.add_argument('--size', type=int, default=224, help='image side of the training step')
    ap.add_argument('--paper-batch', type=int, default=256, help="the paper's batch: losses timed alone at it (0: skip)")
    ap.add_argument('--preset', default='imagenet_r50', help='the preset whose network (and gate_at, wd) is used')
    ap.add_argument('--repeats', type=int, default=6, help='timed rounds')
    ap.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    ap.add_argument('--loss-iters', type=int, default=20, help='loss calls per round and variant (timed together)')
    ap.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    ap.add_argument('--clock', default=None, choices=('wall', 'cpu'),
                    help="clock of the table: wall or cpu (process_time); default cpu with one thread, wall otherwise")
    ap.add_argument('--no-compile', action='store_true', help='skip torch.compile')
    ap.add_argument('--quick', action='store_true', help='batch 8 at 128 px, 2 rounds, 5 loss calls: a smoke run')
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'loss_cost.json'))
    a = ap.parse_args()
    if a.quick: a.batch, a.size, a.repeats, a.loss_iters = 8, 128, 2, 5
    torch.set_num_threads(a.threads)
    a.clock = a.clock or ('cpu' if a.threads == 1 else 'wall')
    machine = machine_info()
    print(f"# {machine['cpu']}, {machine['cpu_count']} CPUs, torch {machine['torch']}, {machine['threads']} threads, "
          f"load average {fmt_load(machine['loadavg_start'])}\n", flush=True)
    t_start = time.time()

    p = get_preset(a.preset)
    torch.manual_seed(0)
    model = build_model(p).train()
    gates = find_gates(model)
    widths = [g.nf for g in gates]
    print(f"{a.preset}: {p.arch}{p.depth}, gate_at={p.gate_at}, {len(gates)} gate layers, {sum(widths)} gates; "
          f"step at batch {a.batch}, {a.size} px", flush=True)
    gp = {id(q) for q in gate_params(model)}
    opt = torch.optim.SGD([dict(params=[q for q in model.parameters() if id(q) not in gp], weight_decay=p.wd),
                           dict(params=[q for q in model.parameters() if id(q) in gp], weight_decay=0.)],
                          lr=p.lr, momentum=p.momentum, nesterov=p.nesterov)
    torch.manual_seed(1)
    x, y = torch.randn(a.batch, 3, a.size, a.size), torch.randint(0, p.num_classes, (a.batch,))
    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss = loss + GAMMA * batch_shaping_loss(torch.cat([g.probs for g in gates], 1), validate=False) \
                    + LAM * l0_loss([g.logits.float() for g in gates])
        loss.backward()
        opt.step()
    # the real gate outputs have the leaves' shapes
    with torch.no_grad(): model(x[:2])
    assert [tuple(g.probs.shape[1:]) for g in gates] == [(c,) for c in widths]

    batches = [a.batch] + ([a.paper_batch] if a.paper_batch and a.paper_batch != a.batch else [])
    fns, compile_info, inputs = {'step': step}, {}, {}
    for n in batches:
        probs, logits = inputs[n] = leaf_inputs(n, widths)
        fns[f'eager@{n}'] = loss_call(losses, probs, logits)
        fns[f'eager_bs@{n}'] = loss_call(bs_only, probs, logits)
        fns[f'eager_l0@{n}'] = loss_call(l0_only, probs, logits)
        fns[f'eager_validate@{n}'] = loss_call(lambda pr, lo: losses(pr, lo, validate=True), probs, logits)
    if not a.no_compile:
        # `BetaPrior` copies its CDF tables to the input's device/dtype on first use (`prior._tables`, a dict cache).
        # compiled_cold: the library as it is, compiled before any eager call has filled that cache (as when a training
        # step is compiled from its first batch); compiled: the same after one eager call; compiled_fixed: with the
        # proposed `_bs_fwd` fix, cold, if the cold compile failed. Failed traces leave nothing in dynamo's caches.
        for n in batches:
            for name in ('compiled_cold', 'compiled', 'compiled_fixed'):
                if name == 'compiled_fixed' and compile_info[f'compiled_cold@{n}']['ok']: continue
                ctx = fixed_fwd if name == 'compiled_fixed' else contextlib.nullcontext
                if name == 'compiled': fns[f'eager@{n}']()  # fills the cache
                else: DEFAULT_PRIOR._cache.clear()
                print(f"compiling the losses at batch {n} ({name}) ...", flush=True)
                c, secs, err, diff = try_compile(COMPILE_TARGETS[name], *inputs[n], ctx)
                compile_info[f'{name}@{n}'] = dict(ok=c is not None, compile_s=round(secs, 1), error=err, max_abs_diff=diff)
                print(f"    {'ok' if c else 'FAILED'} in {secs:.1f} s" + (f": {err}" if err else f", max |compiled − eager| {diff:.1e}"), flush=True)
                if c is not None: fns[f'{name}@{n}'] = loss_call(c, *inputs[n], ctx)  # compiled_cold too, now that it compiles
    fns = {k: fns[k] for k in ['step'] + [f'{v}@{n}' for n in batches for v in VARIANTS] if k in fns}
    # the paper batch's losses take ~50× longer: fewer calls per round there
    blocks = {k: a.loss_iters if k.endswith(f'@{a.batch}') else max(2, a.loss_iters // 5) for k in fns if k != 'step'}
    print(f"timing: {a.repeats} rounds after {a.warmup} warm-up; loss variants {a.loss_iters} calls per round", flush=True)
    r = interleave(fns, blocks, a.repeats, a.warmup)
    machine['loadavg_end'] = os.getloadavg()
    elapsed = time.time() - t_start

    c = a.clock
    step_ms = r['step'][f'{c}_ms']
    rows = []
    for n in batches:
        step_n = step_ms * n / a.batch
        for v in VARIANTS:
            k = f'{v}@{n}'
            if k in r:
                ms = r[k][f'{c}_ms']
                rows.append(dict(variant=v, batch=n, ms=ms, wall_ms=r[k]['wall_ms'], cpu_ms=r[k]['cpu_ms'],
                                 step_ms=step_n, step_estimated=n != a.batch, share=ms / step_n))
            elif k in compile_info and not compile_info[k]['ok']:
                rows.append(dict(variant=v, batch=n, ms=None, error=compile_info[k]['error'], step_ms=step_n,
                                 step_estimated=n != a.batch, share=None))
    res = dict(machine=machine, args=vars(a), clock=c, when=datetime.now(timezone.utc).isoformat(timespec='seconds'),
               preset=a.preset, gate_at=p.gate_at, gate_layers=len(gates), gates=sum(widths), widths=widths,
               elapsed_s=elapsed, step=r['step'], timings=r, compile=compile_info, rows=rows)

    cl = {'wall': 'wall', 'cpu': 'CPU'}[c]
    m = machine
    md = [f"{m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']}, {m['threads']} thread(s), {m['platform']}; load average "
          f"{fmt_load(m['loadavg_start'])} at the start, {fmt_load(m['loadavg_end'])} at the end; {elapsed:.0f} s. "
          f"{cl} clock, medians of {a.repeats} rounds (losses: mean of {a.loss_iters} calls per round at batch {a.batch}, "
          f"{max(2, a.loss_iters // 5)} at {a.paper_batch}).\n",
          f"Gated ResNet-50 of `{a.preset}` (gate_at={p.gate_at}): {len(gates)} gate layers, {sum(widths)} gates. "
          f"Training step (eager, losses included) at batch {a.batch}, {a.size}×{a.size} px: **{step_ms:.0f} ms** "
          f"(min {r['step'][f'{c}_min_ms']:.0f}).\n",
          "| losses (fwd + bwd) | batch | ms | step ms | share of the step | goal ≤ 2% |", "|---|---|---|---|---|---|"]
    labels = {'eager': 'BS + L0, eager', 'eager_bs': '  of which batch-shaping', 'eager_l0': '  of which L0',
              'eager_validate': 'BS + L0, eager, `validate=True`',
              'compiled_cold': 'BS + L0, `torch.compile`, before any eager call (cold prior-table cache)',
              'compiled': 'BS + L0, `torch.compile`, after one eager call', 'compiled_fixed': 'BS + L0, `torch.compile`, cold, with the `_bs_fwd` fix'}
    for row in rows:
        step_txt = f"{row['step_ms']:.0f}" + (' (est.)' if row['step_estimated'] else '')
        if row['ms'] is None:
            md.append(f"| {labels[row['variant']]} | {row['batch']} | compile failed: {row['error'][:100]}… (full text in the JSON) | {step_txt} | — | — |")
        else:
            met = ('met' if row['share'] <= GOAL else '**NOT met**') if row['variant'] in ('eager', 'compiled', 'compiled_fixed') else ''
            md.append(f"| {labels[row['variant']]} | {row['batch']} | {row['ms']:.2f} | {step_txt} | {row['share']:.2%} | {met} |")
    if compile_info:
        md.append("\ntorch.compile (fullgraph=True, dynamic=False): " + '; '.join(
            f"{k}: {'ok' if v['ok'] else 'FAILED'} ({v['compile_s']} s" + (f", max |compiled − eager| {v['max_abs_diff']:.1e})" if v['ok'] else ')')
            for k, v in compile_info.items()))
    md = '\n'.join(md) + '\n'
    write_results(a.out, res, md)

if __name__ == '__main__':
    main()
