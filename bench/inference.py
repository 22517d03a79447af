"""Real speed-up of `bsgate.inference.convert` on this CPU, against the goals of issue 15.

Times, side by side in one run and interleaved, the forms of each network:

- dense:     the plain network (no gates), eager PyTorch, NCHW, eval mode: what a user runs without bsgate
- folded:    `convert(dense)`: the same dense network through the converted engine (BatchNorm folded, channels-last
             where it helps), no gates: separates what folding/layout gain from what gating gains
- masked:    the gated network in eval mode: computes every channel, then multiplies by the {0, 1} gates (batch 1 only)
- converted: `convert(gated)`: computes only the channels the gates open

The gates are forced per image with `gate.override` to random patterns whose per-layer open rate is chosen so that
the MAC fraction measured by `bsgate.macs.MacCounter` on those very patterns is the requested one (30%, 50%, 70%).
At batch 1 every repeat uses the next of `--patterns` different patterns, so oneDNN's per-shape kernel cache sees
realistic variety. With `--checkpoint` (a published run folder, e.g. checkpoints/cifar10/r56_ft_bas), the trained
gates decide on real validation images (`--data`); at batch 1 each repeat takes the next image.

Every case is timed with each of `--threads` (1 and 2 by default) one after the other, and every timed case is
checked: the converted model's outputs against the masked model's (max relative error, goal ≤ 1e-5), on every
pattern or image cycled at batch 1, on the first pattern at larger batches.

    .venv/bin/python bench/inference.py --quick                     # ~30 s
    .venv/bin/python bench/inference.py                             # the goals table (~16 minutes on a 2-core Xeon)
    .venv/bin/python bench/inference.py --cases r56:32 --strategies auto,group,union --kinds per-image,shared --threads 1
    .venv/bin/python bench/inference.py --cases r50:1 --fractions 0.3 --threads 1 --profile

It prints a markdown table and writes JSON (machine, settings, every timing) to `--out` (bench/results/, git-ignored).
"""
from __future__ import annotations
import argparse, dataclasses, json, os, platform, statistics, time
from datetime import datetime, timezone
from pathlib import Path
import torch
from bsgate.models.resnet import cifar_resnet, resnet18, resnet50
from bsgate.macs import MacCounter
from bsgate.inference import convert, STRATEGIES

from common import machine_info  # bench/common.py

ROOT = Path(__file__).resolve().parent.parent
MODELS = {  # name: (factory, input size, gated stages)
    'r20': (lambda **kw: cifar_resnet(20, **kw), (3, 32, 32), (1,)),
    'r32': (lambda **kw: cifar_resnet(32, **kw), (3, 32, 32), (1,)),
    'r56': (lambda **kw: cifar_resnet(56, **kw), (3, 32, 32), (1,)),
    'r18': (lambda **kw: resnet18(**kw), (3, 224, 224), (1,)),
    'r50': (lambda **kw: resnet50(**kw), (3, 224, 224), (1, 2)),  # (1, 2): conv1 alone can go no lower than 32%
}
CIFAR = ('r20', 'r32', 'r56')
DEFAULT_CASES = 'r50:1,r18:1,r56:1,r56:256,r50:32'
DEFAULT_DATA = ROOT.parent / 'shared' / 'data' / 'cifar10' / 'train.tar.gz'
EXACT = 1e-5  # the largest relative error accepted between converted and masked outputs

def goal_margin(name:str, batch:int) -> float|None:
    "Issue 15's goal: converted / dense ≤ MAC fraction + this margin (None: no goal for this case)"
    if name in CIFAR: return 0.20 if batch == 1 else 0.10 if batch >= 256 else None
    return 0.10 if batch == 1 else 0.05 if batch == 32 and name == 'r50' else None

def build(name:str):
    "(dense, gated, counter): the same random weights with and without gates, and a MAC counter"
    make, size, gate_at = MODELS[name]
    torch.manual_seed(0)
    gated = make(gate_layer='channel', gate_at=gate_at).eval()
    dense = make().eval()
    dense.load_state_dict({k: v for k, v in gated.state_dict().items() if '.gate' not in k})
    return dense, gated, MacCounter(gated, size)

def build_checkpoint(folder:str, data, n:int):
    "(dense, gated, counter, images, name): a published run's gated model, its dense twin, and `n` validation images"
    from bsgate.analysis import load_run
    from bsgate.learner import build_model
    if not Path(folder).exists() and (ROOT / folder).exists(): folder = ROOT / folder
    learn = load_run(folder, data=data, limit=n, bs=n, device='cpu')
    gated = learn.model.eval()
    dense = build_model(dataclasses.replace(learn.preset, gate_layer=None)).eval()
    dense.load_state_dict({k: v for k, v in gated.state_dict().items() if '.gate' not in k})
    x = torch.cat([xb.as_subclass(torch.Tensor) for xb, _ in learn.dls.valid])[:n].contiguous()
    size = tuple(x.shape[1:])
    return dense, gated, MacCounter(gated, size), x, f"r{learn.preset.depth}"

def set_overrides(model, pattern):
    for g, o in zip(model.gate_modules(), pattern): g.override = o

def fraction_of(gated, counter, pattern) -> float:
    "Mean MAC fraction (of dense) of the images of `pattern`, by `bsgate.macs` (gate overhead included)"
    for g, o in zip(gated.gate_modules(), pattern): g.gates = o  # what the gate records in a forward
    return counter().fraction.mean().item()

def make_patterns(gated, counter, target:float, n:int, count:int, kind:str, seed:int=0) -> tuple:
    "`count` patterns of `n` images at the open rate whose measured MAC fraction is `target` (bisection); and the rate"
    g = torch.Generator().manual_seed(seed)
    u = [[torch.rand(1 if kind == 'shared' else n, gm.nf, generator=g).expand(n, gm.nf) for gm in gated.gate_modules()]
         for _ in range(count)]  # fixed uniforms: the fraction is monotone in the rate
    pats = lambda p: [[(v < p).float() for v in us] for us in u]
    frac = lambda p: statistics.mean(fraction_of(gated, counter, pt) for pt in pats(p))
    lo, hi = 0., 1.
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if frac(mid) < target else (lo, mid)
    p = (lo + hi) / 2
    return pats(p), p

def time_cases(fns:dict, xs:list, patterns:list, repeats:int, warmup:int) -> dict:
    "Median wall and CPU ms of each function, interleaved in a rotating order; before repeat i, input `xs[i % len]`, gates `patterns[i % len]`"
    names = list(fns)
    wall, cpu = {k: [] for k in names}, {k: [] for k in names}
    with torch.inference_mode():
        for i in range(warmup + repeats):
            pat, x = patterns[i % len(patterns)], xs[i % len(xs)]
            order = names[i % len(names):] + names[:i % len(names)]
            for k in order:
                model = fns[k]
                if pat is not None and hasattr(model, 'gate_modules') and model.gate_modules(): set_overrides(model, pat)
                t0, c0 = time.perf_counter(), time.process_time()
                model(x)
                t1, c1 = time.perf_counter(), time.process_time()
                if i >= warmup: wall[k].append((t1 - t0) * 1e3); cpu[k].append((c1 - c0) * 1e3)
    return {k: dict(wall_ms=statistics.median(wall[k]), cpu_ms=statistics.median(cpu[k]),
                    wall_all=[round(v, 3) for v in wall[k]]) for k in names}

def max_rel_err(gated, convs:list, xs:list, patterns:list) -> float:
    "Largest relative error of the converted models against the masked one, over every (input, pattern) cycled"
    err = 0.
    with torch.inference_mode():
        for j in range(max(len(xs), len(patterns))):
            x, pat = xs[j % len(xs)], patterns[j % len(patterns)]
            if pat is not None:
                for m in (gated, *convs): set_overrides(m, pat)
            ref = gated(x)
            err = max(err, *(((m(x) - ref).abs().max() / ref.abs().max()).item() for m in convs))
    return err

def profile(folded, converted, xs, patterns, name, frac, n=8):
    "Where the time goes: torch.profiler self-CPU time per op of the folded dense and the converted model"
    from torch.profiler import profile as prof, ProfilerActivity
    with torch.inference_mode():
        for label, model in (('folded dense', folded), ('converted', converted)):
            with prof(activities=[ProfilerActivity.CPU]) as p:
                for i in range(n):
                    if patterns[0] is not None and model.gate_modules(): set_overrides(model, patterns[i % len(patterns)])
                    model(xs[i % len(xs)])
            print(f"\n## {name}, batch 1, MAC fraction {frac:.3f}: {label}, {n} forwards\n")
            print(p.key_averages().table(sort_by='self_cpu_time_total', row_limit=12))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cases', default=DEFAULT_CASES, help=f"comma-separated model:batch of forced-pattern cases, models of {sorted(MODELS)}")
    ap.add_argument('--models', default=None, help='with --batch: every model at every batch size (instead of --cases)')
    ap.add_argument('--batch', default=None, help='comma-separated batch sizes (with --models)')
    ap.add_argument('--fractions', default='0.3,0.5,0.7', help='target MAC fractions of dense (forced patterns)')
    ap.add_argument('--checkpoint', default='checkpoints/cifar10/r56_ft_bas',
                    help="comma-separated published run folders (config.json + model.pth): the trained gates on real images; '' for none")
    ap.add_argument('--checkpoint-batch', default='1,256', help='batch sizes of the checkpoint cases')
    ap.add_argument('--data', default=str(DEFAULT_DATA), help='the CIFAR-10 archive or folder the checkpoints validate on')
    ap.add_argument('--repeats', type=int, default=None, help='timed repeats per case (default: 60 at batch 1, 20 for 224 px; 4 at batch > 1, 2 for r50)')
    ap.add_argument('--patterns', type=int, default=16, help='distinct gate patterns (or images) cycled at batch 1')
    ap.add_argument('--kinds', default='per-image', help="pattern kinds for batch > 1: per-image (each image its own) and/or shared")
    ap.add_argument('--strategies', default='auto', help=f"converted-model batch strategies to time, of {STRATEGIES}")
    ap.add_argument('--threads', default='1,2', help='comma-separated torch thread counts, each timed on every case')
    ap.add_argument('--quick', action='store_true', help='r56 and r50 at batch 1, fraction 0.5, one thread, no checkpoint, fewer repeats')
    ap.add_argument('--clock', default='wall', choices=('wall', 'cpu'),
                    help="the table's clock: wall (perf_counter) or cpu (process_time: robust to other jobs with --threads 1)")
    ap.add_argument('--profile', action='store_true', help='also print torch.profiler op tables of folded and converted at batch 1')
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'inference.json'))
    a = ap.parse_args()
    if a.quick: a.cases, a.fractions, a.checkpoint, a.threads, a.repeats = 'r56:1,r50:1', '0.5', '', '1', a.repeats or 10
    if a.models: cases = [(m, int(b)) for m in a.models.split(',') for b in (a.batch or '1').split(',')]
    else: cases = [(c.split(':')[0], int(c.split(':')[1]) if ':' in c else 1) for c in a.cases.split(',') if c]
    for m, _ in cases:
        if m not in MODELS: ap.error(f"unknown model {m!r}; choose from {sorted(MODELS)}")
    threads = [int(t) for t in a.threads.split(',')]
    fractions = [float(f) for f in a.fractions.split(',')]
    strategies, kinds = a.strategies.split(','), a.kinds.split(',')
    ckpts = [c for c in (a.checkpoint or '').split(',') if c]
    for s in strategies:
        if s not in STRATEGIES: ap.error(f"unknown strategy {s!r}; choose from {STRATEGIES}")
    machine = machine_info()
    print(f"# {machine['cpu']}, {machine['cpu_count']} CPUs, torch {machine['torch']}, threads {threads}, "
          f"load average {' '.join(f'{v:.2f}' for v in machine['loadavg_start'])}\n", flush=True)
    ck = f'_{a.clock}_ms'
    rows, t_start = [], time.time()

    def run_case(name, bs, kind, target, dense, gated, folded, convs, xs, patterns, frac, rate, size_px):
        big = size_px >= 224 and bs > 1
        repeats = a.repeats or (60 if bs == 1 and size_px < 224 else 20 if bs == 1 else 2 if big else 4)
        warmup = 1 if bs > 1 else min(a.patterns, 8)
        fns = {'dense': dense, 'folded': folded, **({'masked': gated} if bs == 1 else {}),
               **{f'converted[{s}]': m for s, m in convs.items()}}
        err = max_rel_err(gated, list(convs.values()), xs if bs == 1 else xs[:1], patterns if bs == 1 else patterns[:1])
        margin = goal_margin(name, bs)
        for t in threads:
            torch.set_num_threads(t)
            r = time_cases(fns, xs, patterns, repeats, warmup)
            row = dict(model=name, batch=bs, kind=kind, threads=t, target=target, open_rate=rate, mac_fraction=frac,
                       repeats=repeats, max_rel_err=err, exact=err <= EXACT, goal_margin=margin,
                       **{f'{k}_{m}': v[m] for k, v in r.items() for m in ('wall_ms', 'cpu_ms')},
                       samples={k: v['wall_all'] for k, v in r.items()})
            for s in strategies:
                row[f'ratio[{s}]'] = row[f'converted[{s}]{ck}'] / row[f'dense{ck}']
                row[f'ratio_folded[{s}]'] = row[f'converted[{s}]{ck}'] / row[f'folded{ck}']
            row['goal'] = None if margin is None else frac + margin
            row['met'] = None if margin is None else row[f'ratio[{strategies[0]}]'] <= row['goal']
            rows.append(row)
            print(f"{name} batch {bs} {kind} {t} thr. MAC fraction {frac:.3f} ({a.clock}): dense {row[f'dense{ck}']:.2f} ms, "
                  f"folded {row[f'folded{ck}']:.2f}, " + (f"masked {row[f'masked{ck}']:.2f}, " if bs == 1 else '')
                  + ', '.join(f"converted[{s}] {row[f'converted[{s}]{ck}']:.2f}" for s in strategies)
                  + f" -> ratio {row[f'ratio[{strategies[0]}]']:.3f}" + ('' if margin is None else f" (goal {row['goal']:.3f})")
                  + f", max rel. error {err:.1e}", flush=True)
        torch.set_num_threads(threads[0])
        if a.profile and bs == 1: profile(folded, convs[strategies[0]], xs, patterns, name, frac)

    built = {}
    for name, bs in cases:
        if name not in built:
            dense, gated, counter = build(name)
            built = {name: (dense, gated, counter, convert(dense), {s: convert(gated, strategy=s) for s in strategies})}
        dense, gated, counter, folded, convs = built[name]
        size = MODELS[name][1]
        torch.manual_seed(1)
        x = torch.randn(bs, *size)
        for kind in (['per-image'] if bs == 1 else kinds):
            for target in fractions:
                patterns, rate = make_patterns(gated, counter, target, bs, a.patterns if bs == 1 else 2, kind)
                frac = statistics.mean(fraction_of(gated, counter, p) for p in patterns)
                run_case(name, bs, kind, target, dense, gated, folded, convs, [x], patterns, frac, rate, size[-1])
    built = None
    for folder in ckpts:
        bss = [int(b) for b in a.checkpoint_batch.split(',')]
        dense, gated, counter, images, name = build_checkpoint(folder, a.data, max(max(bss), a.patterns))
        run = Path(folder).name
        for g in gated.gate_modules(): g.override = None
        folded, convs = convert(dense), {s: convert(gated, strategy=s) for s in strategies}
        for bs in bss:
            xs = [images[j:j + 1] for j in range(a.patterns)] if bs == 1 else [images[:bs]]
            with torch.inference_mode(): gated(torch.cat(xs))
            frac = counter().fraction.mean().item()
            run_case(name, bs, f'trained {run}', None, dense, gated, folded, convs, xs, [None], frac, None, images.shape[-1])
    machine['loadavg_end'] = os.getloadavg()
    s0 = strategies[0]
    print(f"\n{a.clock} clock, median of the repeats; goal: converted[{s0}] / dense ≤ MAC fraction + margin\n")
    md = ("| model | batch | patterns | threads | MAC fraction | dense ms | folded ms | masked ms | "
          + ' | '.join(f'converted[{s}] ms' for s in strategies)
          + ' | converted / dense | converted / folded | goal | met | max rel. error |\n|' + '---|' * (13 + len(strategies)) + '\n')
    for r in rows:
        md += (f"| {r['model']} | {r['batch']} | {r['kind']} | {r['threads']} | {r['mac_fraction']:.3f} | {r[f'dense{ck}']:.2f} | "
               f"{r[f'folded{ck}']:.2f} | " + (f"{r[f'masked{ck}']:.2f}" if f'masked{ck}' in r else '—') + ' | '
               + ' | '.join(f"{r[f'converted[{t}]{ck}']:.2f}" for t in strategies)
               + f" | {r[f'ratio[{s0}]']:.3f} | {r[f'ratio_folded[{s0}]']:.3f} | "
               + ('—' if r['goal'] is None else f"≤ {r['goal']:.3f}") + ' | '
               + ('—' if r['met'] is None else 'yes' if r['met'] else f"**no** (+{r[f'ratio[{s0}]'] - r['goal']:.2f})")
               + f" | {r['max_rel_err']:.1e} |\n")
    print(md)
    n_goal = [r for r in rows if r['met'] is not None]
    print(f"goals met: {sum(r['met'] for r in n_goal)} of {len(n_goal)}; exact (≤ {EXACT:g}) on all {len(rows)} timed cases: "
          f"{all(r['exact'] for r in rows)} (largest {max((r['max_rel_err'] for r in rows), default=0):.1e})")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in machine['loadavg_end'])}; {time.time() - t_start:.0f} s.")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(machine=machine, args=vars(a), when=datetime.now(timezone.utc).isoformat(timespec='seconds'),
                                   rows=rows), indent=1))
    out.with_suffix('.md').write_text(md)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    if not all(r['exact'] for r in rows): raise SystemExit(f"converted outputs differ from the masked model's by more than {EXACT:g}")

if __name__ == '__main__':
    main()
