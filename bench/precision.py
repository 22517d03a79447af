"""Training step time in fp32 against bf16 autocast (and channels-last, and `torch.compile` with `--compile`) on the CPU:
dense ResNet-20 and gated ResNet-32/56 (issue: evidence v3, item 1).

One training step = forward + loss + backward + SGD step (momentum 0.9, Nesterov, weight decay 5e-4), batch 128 of
synthetic 32×32 images; the gated models' loss is cross-entropy + γ·batch-shaping(gate probabilities) + λ·L0(gate
logits) with γ = 0.75, λ = 0.5 (both on: the worst case). Under autocast the gates, batch-shaping and L0 stay fp32 (the
gate itself runs in fp32; see 04_gates). The settings are interleaved round by round in one process, so a busy machine
slows them alike; the table gives each setting's median step and its ratio to fp32 of the same model, and the
gated/dense ratios under each setting.

    .venv/bin/python bench/precision.py --threads 1                # ~5 minutes on one quiet core
    .venv/bin/python bench/precision.py --threads 1 --compile      # adds torch.compile'd steps (minutes of compiling)

It prints the table and writes bench/results/precision.json and .md (`--out` to change).
"""
from __future__ import annotations
import argparse, os, statistics, time
from pathlib import Path
import torch
import torch.nn.functional as F
from bsgate.models.resnet import cifar_resnet
from bsgate.shaping import batch_shaping_loss
from bsgate.sparsity import l0_loss
from bsgate.callbacks import find_gates
from common import machine_info, fmt_load, write_results

MODELS = {'dense ResNet-20': dict(depth=20), 'gated ResNet-32': dict(depth=32, gate_layer='channel'),
          'gated ResNet-56': dict(depth=56, gate_layer='channel')}
SETTINGS = {'fp32': dict(bf16=False, cl=False), 'bf16': dict(bf16=True, cl=False), 'bf16 + channels-last': dict(bf16=True, cl=True)}

def make_step(model, bf16:bool, cl:bool, compiled:bool=False):
    "A closure that runs one training step on a fixed batch"
    gates = find_gates(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    fwd = torch.compile(model) if compiled else model
    x, y = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))
    if cl: model.to(memory_format=torch.channels_last); x = x.contiguous(memory_format=torch.channels_last)
    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            out = fwd(x)
        loss = F.cross_entropy(out.float(), y)
        if gates:
            loss = loss + 0.75 * batch_shaping_loss(torch.cat([g.probs for g in gates], 1).float(), validate=False) \
                        + 0.5 * l0_loss([g.logits.float() for g in gates])
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return step

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--rounds', type=int, default=5, help='interleaved rounds')
    ap.add_argument('--steps', type=int, default=3, help='timed steps per setting and round (after one warm-up step)')
    ap.add_argument('--compile', action='store_true', help='also torch.compile each setting')
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'precision.json'))
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    info = machine_info()
    settings = dict(SETTINGS)
    if a.compile: settings.update({f'{k} + compile': dict(v, compiled=True) for k, v in SETTINGS.items()})
    steps, times = {}, {}
    for mname, kw in MODELS.items():
        for sname, s in settings.items():
            torch.manual_seed(0)
            steps[mname, sname] = make_step(cifar_resnet(**kw).train(), s['bf16'], s['cl'], s.get('compiled', False))
            t0 = time.perf_counter(); steps[mname, sname]()   # warm-up (compiles when compiled)
            times[mname, sname] = dict(first_s=time.perf_counter() - t0, steps=[])
    for r in range(a.rounds):   # interleaved: every setting once per round
        for key, step in steps.items():
            for _ in range(a.steps):
                t0 = time.perf_counter(); step(); times[key]['steps'].append(time.perf_counter() - t0)
        print(f"round {r + 1}/{a.rounds} done", flush=True)
    med = {k: statistics.median(v['steps']) for k, v in times.items()}
    rows = []
    for (m, s), t in med.items():
        rows.append(f"| {m} | {s} | {t * 1000:.0f} ms | {t / med[m, 'fp32']:.2f} | "
                    f"{t / med['dense ResNet-20', s]:.2f} | {times[m, s]['first_s']:.1f} s |")
    md = (f"Training step, batch 128, {info['cpu']}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, "
          f"{a.rounds} interleaved rounds × {a.steps} steps, load average {fmt_load(info['loadavg_start'])} → "
          f"{fmt_load(os.getloadavg())}\n\n| model | setting | median step | vs fp32 (same model) | vs dense ResNet-20 (same setting) | first step |\n"
          "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    res = dict(machine=dict(info, loadavg_end=os.getloadavg()), args=vars(a),
               results={f'{m} | {s}': dict(median_s=med[m, s], vs_fp32=med[m, s] / med[m, 'fp32'],
                                            vs_dense_r20=med[m, s] / med['dense ResNet-20', s], **times[m, s])
                        for (m, s) in med})
    write_results(a.out, res, md)
    return res

if __name__ == '__main__': main()
