"""Real speed-up of `bsgate.inference.convert` on this CPU (issue: real speed-up).

Times, side by side in one run and interleaved, four forms of each network:

- dense:     the plain network (no gates), eager PyTorch, NCHW, eval mode: what a user runs without bsgate
- folded:    `convert(dense)`: the same dense network through the converted engine (BatchNorm folded, channels-last
             where it helps), no gates: separates what folding/layout gain from what gating gains
- masked:    the gated network in eval mode: computes every channel, then multiplies by the {0, 1} gates
- converted: `convert(gated)`: computes only the channels the gates open

The gates are forced per image with `gate.override` to random patterns whose per-layer open rate is chosen so that
the MAC fraction measured by `bsgate.macs.MacCounter` on those very patterns is the requested one (30%, 50%, 70%).
At batch 1 every repeat uses the next of `--patterns` different patterns, so oneDNN's per-shape kernel cache sees
realistic variety. With `--checkpoint`, the gates come from the trained gated model instead (one case per batch size).

    .venv/bin/python bench/inference.py --quick                # ~20 s
    .venv/bin/python bench/inference.py --threads 1            # the full table (~4 minutes on 2 cores)
    .venv/bin/python bench/inference.py --models r56 --batch 32 --strategies auto,group,union --kinds per-image,shared

It prints a markdown table and writes JSON (machine, settings, every timing) to `--out` (bench/results/, git-ignored).
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, time
from datetime import datetime, timezone
from pathlib import Path
import torch
from bsgate.models.resnet import cifar_resnet, resnet50
from bsgate.macs import MacCounter
from bsgate.inference import convert, STRATEGIES

from common import machine_info  # bench/common.py

ROOT = Path(__file__).resolve().parent.parent
MODELS = {  # name: (factory, input size, gated stages)
    'r20': (lambda **kw: cifar_resnet(20, **kw), (3, 32, 32), (1,)),
    'r56': (lambda **kw: cifar_resnet(56, **kw), (3, 32, 32), (1,)),
    'r50': (lambda **kw: resnet50(**kw), (3, 224, 224), (1, 2)),  # (1, 2): conv1 alone can go no lower than 32%
}

def build(name:str, checkpoint:str|None=None):
    "(dense, gated, counter): the same weights (a checkpoint's, if given) with and without gates, and a MAC counter"
    make, size, gate_at = MODELS[name]
    torch.manual_seed(0)
    gated = make(gate_layer='channel', gate_at=gate_at).eval()
    if checkpoint:
        sd = torch.load(checkpoint, map_location='cpu', weights_only=True)
        for k in ('model', 'state_dict'):
            if isinstance(sd, dict) and isinstance(sd.get(k), dict): sd = sd[k]
        gated.load_state_dict(sd)
    dense = make().eval()
    dense.load_state_dict({k: v for k, v in gated.state_dict().items() if '.gate' not in k})
    return dense, gated, MacCounter(gated, size)

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

def time_cases(fns:dict, x, patterns:list, repeats:int, warmup:int) -> dict:
    "Median wall and CPU ms of each function, interleaved in a rotating order; `patterns[i % len]` set before repeat i"
    names = list(fns)
    wall, cpu = {k: [] for k in names}, {k: [] for k in names}
    with torch.inference_mode():
        for i in range(warmup + repeats):
            pat = patterns[i % len(patterns)]
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

def profile(folded, converted, x, patterns, name, frac, n=8):
    "Where the time goes: torch.profiler self-CPU time per op of the folded dense and the converted model"
    from torch.profiler import profile as prof, ProfilerActivity
    with torch.inference_mode():
        for label, model in (('folded dense', folded), ('converted', converted)):
            with prof(activities=[ProfilerActivity.CPU]) as p:
                for i in range(n):
                    if patterns[0] is not None and model.gate_modules(): set_overrides(model, patterns[i % len(patterns)])
                    model(x)
            print(f"\n## {name}, batch 1, MAC fraction {frac:.3f}: {label}, {n} forwards\n")
            print(p.key_averages().table(sort_by='self_cpu_time_total', row_limit=12))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--models', default='r20,r56,r50', help=f"comma-separated, of {sorted(MODELS)}")
    ap.add_argument('--fractions', default='0.3,0.5,0.7', help='target MAC fractions of dense (ignored with --checkpoint)')
    ap.add_argument('--batch', default='1,32', help='comma-separated batch sizes')
    ap.add_argument('--repeats', type=int, default=None, help='timed repeats per case (default: 60 at batch 1, 5 at batch > 1; fewer for r50)')
    ap.add_argument('--patterns', type=int, default=16, help='distinct gate patterns cycled at batch 1')
    ap.add_argument('--kinds', default='per-image', help="pattern kinds for batch > 1: per-image (each image its own) and/or shared")
    ap.add_argument('--strategies', default='auto', help=f"converted-model batch strategies to time, of {STRATEGIES}")
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s, here the core count)')
    ap.add_argument('--checkpoint', default=None, help='state dict of a trained gated model (one --models entry): its own gates')
    ap.add_argument('--quick', action='store_true', help='r20 and r50, fraction 0.5, batch 1, fewer repeats')
    ap.add_argument('--clock', default='wall', choices=('wall', 'cpu'),
                    help="the table's clock: wall (perf_counter) or cpu (process_time: robust to other jobs with --threads 1)")
    ap.add_argument('--profile', action='store_true', help='also print torch.profiler op tables of folded and converted at batch 1')
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'inference.json'))
    a = ap.parse_args()
    if a.quick: a.models, a.fractions, a.batch = 'r20,r50', '0.5', '1'
    if a.threads: torch.set_num_threads(a.threads)
    models, batches = a.models.split(','), [int(b) for b in a.batch.split(',')]
    fractions = [None] if a.checkpoint else [float(f) for f in a.fractions.split(',')]
    strategies, kinds = a.strategies.split(','), a.kinds.split(',')
    if a.checkpoint and len(models) != 1: ap.error('--checkpoint needs exactly one model in --models')
    for s in strategies:
        if s not in STRATEGIES: ap.error(f"unknown strategy {s!r}; choose from {STRATEGIES}")
    machine = machine_info()
    print(f"# {machine['cpu']}, {machine['cpu_count']} CPUs, torch {machine['torch']}, {machine['threads']} threads, "
          f"load average {' '.join(f'{v:.2f}' for v in machine['loadavg_start'])}\n")
    rows, t_start = [], time.time()
    for name in models:
        dense, gated, counter = build(name, a.checkpoint)
        size = MODELS[name][1]
        folded = convert(dense)
        convs = {s: convert(gated, strategy=s) for s in strategies}
        for bs in batches:
            big = name == 'r50' and bs > 1
            repeats = a.repeats or (60 if bs == 1 and name != 'r50' else 20 if bs == 1 else 3 if big else 5)
            warmup = 1 if big else min(a.patterns, 16) if bs == 1 else 2
            torch.manual_seed(1)
            x = torch.randn(bs, *size)
            for kind in (['trained'] if a.checkpoint else ['per-image'] if bs == 1 else kinds):
                for target in fractions:
                    if target is None:  # the trained gates decide
                        for g in gated.gate_modules(): g.override = None
                        with torch.inference_mode(): gated(x)
                        frac, rate, patterns = counter().fraction.mean().item(), None, [None]
                    else:
                        patterns, rate = make_patterns(gated, counter, target, bs, a.patterns if bs == 1 else 2, kind)
                        frac = statistics.mean(fraction_of(gated, counter, p) for p in patterns)
                    fns = {'dense': dense, 'folded': folded, 'masked': gated, **{f'converted[{s}]': m for s, m in convs.items()}}
                    if target is not None: set_overrides(gated, patterns[0])
                    r = time_cases(fns, x, patterns, repeats, warmup)
                    row = dict(model=name, batch=bs, kind=kind, target=target, open_rate=rate, mac_fraction=frac,
                               repeats=repeats, **{f'{k}_{m}': v[m] for k, v in r.items() for m in ('wall_ms', 'cpu_ms')},
                               samples={k: v['wall_all'] for k, v in r.items()})
                    ck = f'_{a.clock}_ms'
                    for s in strategies:
                        row[f'ratio[{s}]'] = row[f'converted[{s}]{ck}'] / row[f'dense{ck}']
                        row[f'ratio_folded[{s}]'] = row[f'converted[{s}]{ck}'] / row[f'folded{ck}']
                    with torch.inference_mode():  # sanity: the converted model computes the masked model's outputs
                        if target is not None:
                            for m in (gated, *convs.values()): set_overrides(m, patterns[0])
                        ref = gated(x)
                        row['max_rel_err'] = max(((m(x) - ref).abs().max() / ref.abs().max()).item() for m in convs.values())
                    rows.append(row)
                    if a.profile and bs == 1: profile(folded, convs[strategies[0]], x, patterns, name, frac)
                    best = min(strategies, key=lambda s: row[f'converted[{s}]{ck}'])
                    print(f"{name} batch {bs} {kind} MAC fraction {frac:.3f} ({a.clock}): dense {row[f'dense{ck}']:.2f} ms, "
                          f"folded {row[f'folded{ck}']:.2f}, masked {row[f'masked{ck}']:.2f}, "
                          + ', '.join(f"converted[{s}] {row[f'converted[{s}]{ck}']:.2f}" for s in strategies)
                          + f" -> ratio {row[f'ratio[{best}]']:.3f}, max rel. error {row['max_rel_err']:.1e}", flush=True)
    machine['loadavg_end'] = os.getloadavg()
    ck = f'_{a.clock}_ms'
    print(f"\n{a.clock} clock, median of the repeats\n")
    print(f"| model | batch | patterns | MAC fraction | dense ms | folded ms | masked ms | "
          + ' | '.join(f'converted[{s}] ms' for s in strategies)
          + ' | converted / dense | converted / folded | target (fraction + 0.10) | met |')
    print('|' + '---|' * (10 + len(strategies)))
    for r in rows:
        s = strategies[0]
        ratio, target = r[f'ratio[{s}]'], r['mac_fraction'] + 0.10
        met = ('yes' if ratio <= target else 'no') if r['batch'] == 1 else f"({'yes' if ratio <= target else 'no'})"
        print(f"| {r['model']} | {r['batch']} | {r['kind']} | {r['mac_fraction']:.3f} | {r[f'dense{ck}']:.2f} | "
              f"{r[f'folded{ck}']:.2f} | {r[f'masked{ck}']:.2f} | "
              + ' | '.join(f"{r[f'converted[{t}]{ck}']:.2f}" for t in strategies)
              + f" | {ratio:.3f} | {r[f'ratio_folded[{s}]']:.3f} | {target:.3f} | {met} |")
    print(f"\nload average at the end: {' '.join(f'{v:.2f}' for v in machine['loadavg_end'])}; "
          f"{time.time() - t_start:.0f} s. The target applies at batch 1 (the ratio of converted[{strategies[0]}]).")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(machine=machine, args=vars(a), when=datetime.now(timezone.utc).isoformat(timespec='seconds'),
                                   rows=rows), indent=1))
    print(f"wrote {out}")

if __name__ == '__main__':
    main()
