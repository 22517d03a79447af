"""Where a gated run's accuracy goes: the study's trained runs scored under four gate modes on their own validation images.

- `inference`: `logit > 0`, BatchNorm as published (recalibrated under these gates) — the reported number;
- `sampled`: the training relaxation (hard Binary Concrete draws, τ = 2/3), BatchNorm as published — what training saw;
- `open`: every gate forced open (the full network the gates select from), BatchNorm as published;
- `open_recal`: every gate open, BatchNorm re-estimated on 100 training batches with the gates open.

If `open_recal` is near the dense network's accuracy, the weights are intact and the loss is the gating's; if it is far
below, gated training damaged the network itself. CPU, one thread:

    .venv/bin/python bench/gate_modes.py r32_ft_bas r32_ft_l0 r32_bas --threads 1   # runs under bench/results/runs/study2_<name>
"""
import json, os, sys, time, argparse
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'bench'))
from common import machine_info, write_results

DATA = Path(os.environ.get('BSGATE_DATA', ROOT.parent / 'shared' / 'data')) / 'cifar10' / 'train.tar.gz'
RES = ROOT / 'bench' / 'results'

def gates_of(model): 
    from bsgate.gates import ChannelGate
    return [m for m in model.modules() if isinstance(m, ChannelGate)]

def score(learn, mode:str, seed:int=0) -> float:
    "Validation accuracy of `learn` with its gates in `mode`"
    gs = gates_of(learn.model)
    for g in gs: g.override = torch.ones(1, g.nf) if mode.startswith('open') else None
    if mode == 'sampled':   # gates draw as in training; everything else (BatchNorm) in eval mode
        torch.manual_seed(seed)
        orig = learn.model.eval
        learn.model.eval = lambda: (orig(), [setattr(g, 'training', True) for g in gs])[0]   # the gate's own BN stays in eval
    try:
        with learn.no_bar(): return float(learn.validate()[1])
    finally:
        if mode == 'sampled': del learn.model.eval
        for g in gs: g.override = None

def run(name:str) -> dict:
    from bsgate.analysis import load_run
    folder = RES / 'runs' / f'study2_{name}'
    t0 = time.time()
    learn = load_run(folder, data=str(DATA))
    r = dict(inference=score(learn, 'inference'), sampled=score(learn, 'sampled'), open=score(learn, 'open'))
    sd = {k: v.clone() for k, v in learn.model.state_dict().items()}
    for g in gates_of(learn.model): g.override = torch.ones(1, g.nf)
    try: learn.recalibrate_bn(100)
    finally:
        for g in gates_of(learn.model): g.override = None
    r['open_recal'] = score(learn, 'open_recal')
    learn.model.load_state_dict(sd)
    r['wall_s'] = round(time.time() - t0, 1)
    print(name, {k: round(v, 4) for k, v in r.items()}, flush=True)
    return r

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('names', nargs='+')
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--out', default=str(RES / 'gate_modes.json'))
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    info = machine_info()
    res = dict(machine=info, runs={n: run(n) for n in a.names})
    res['machine']['loadavg_end'] = os.getloadavg()
    md = ("| run | inference gates | sampled gates | all open | all open, BN re-estimated |\n|---|---|---|---|---|\n" +
          "\n".join(f"| {n} | {r['inference']*100:.1f}% | {r['sampled']*100:.1f}% | {r['open']*100:.1f}% | {r['open_recal']*100:.1f}% |"
                    for n, r in res['runs'].items()))
    write_results(a.out, res, md)
