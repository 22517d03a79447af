"""CIFAR-10 input pipelines side by side (issue 14): the host pipeline (`bsgate.data.cifar.cifar_dls`: NumPy lookup,
copy to the device, `IntToFloatTensor` → `PadCropFlip` → `Normalize`) against the device pipeline
(`bsgate.data.cifar_gpu.cifar_device_dls`: uint8 images already on the device, one gather for crop + flip, normalised
in place), on the real CIFAR-10 training archive (45,000 training images after the 10% hold-out).

Two measurements, each interleaved round by round in one process:
  data      images/s of the training loader alone: `--batches` batches per pipeline per round (augmented, shuffled)
  step      images/s of a full training batch through `learn.fit` (data, callbacks, forward, backward, SGD):
            `cifar_learner(dls, PRESET)` with the same weights for both pipelines, `--fit-batches` batches per fit(1),
            validation skipped; the interval between consecutive training `before_batch` events is timed

    .venv/bin/python bench/data_pipeline.py --threads 1                 # ~2-3 minutes on a busy 2-core CPU
    .venv/bin/python bench/data_pipeline.py --device cuda --batch 256   # on a GPU (bench/gpu_check.py runs this too)

Writes bench/results/data_pipeline.json and .md (`--out`).
"""
from __future__ import annotations
import argparse, os, statistics, time, sys
from datetime import datetime, timezone
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, fmt_load, write_results  # bench/common.py

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / 'shared' / 'data' / 'cifar10' / 'train.tar.gz'
PIPES = ('host', 'device')

def make_dls(pipe:str, data, bs:int, device, limit=None):
    from bsgate.data.cifar import cifar_dls
    from bsgate.data.cifar_gpu import cifar_device_dls
    fn = cifar_dls if pipe == 'host' else cifar_device_dls
    return fn(data, bs=bs, valid_pct=None, seed=42, limit=limit, device=device)

def sync(device):
    if torch.device(device).type == 'cuda': torch.cuda.synchronize()

def data_only(dls:dict, batches:int, rounds:int, device) -> dict:
    "images/s of `batches` training batches per pipeline per round, rounds alternating the order"
    its, res = {k: iter(v.train) for k, v in dls.items()}, {k: [] for k in dls}
    def take(k):
        nonlocal its
        n = 0
        for _ in range(batches):
            try: x, y = next(its[k])
            except StopIteration: its[k] = iter(dls[k].train); x, y = next(its[k])
            n += len(x)
        sync(device)
        return n
    for k in dls: take(k)   # warm-up
    for r in range(rounds):
        for k in (list(dls) if r % 2 == 0 else list(dls)[::-1]):
            t0 = time.perf_counter(); n = take(k); res[k].append(n / (time.perf_counter() - t0))
    return {k: dict(images_per_s=statistics.median(v), all=[round(o) for o in v]) for k, v in res.items()}

def train_step(dls:dict, preset:str, fit_batches:int, rounds:int, device) -> dict:
    "images/s of full training batches through `learn.fit(1)` (validation skipped), fits alternating between the pipelines"
    from fastai.callback.core import Callback, CancelValidException, CancelEpochException
    from bsgate.learner import cifar_learner
    class Timer(Callback):
        order = -1000
        def __init__(self, n): self.n, self.ms, self._t = n, [], None
        def before_train(self): self._t = None
        def before_batch(self):
            if not self.training: return
            sync(device)
            t = time.perf_counter()
            if self._t is not None: self.ms.append((t - self._t) * 1e3)
            self._t = t
            if len(self.ms) >= self.n: raise CancelEpochException()
        def before_validate(self): raise CancelValidException()
    learners, timers = {}, {}
    for k, d in dls.items():
        torch.manual_seed(0)
        learners[k] = cifar_learner(d, preset)
        timers[k] = Timer(fit_batches); learners[k].add_cb(timers[k])
    bs = dls['host'].train.bs
    for r in range(rounds + 1):
        for k in (PIPES if r % 2 == 0 else PIPES[::-1]):
            l, t = learners[k], timers[k]
            t.ms = []
            with l.no_bar(), l.no_logging(): l.fit(1)
            if r == 0: t.keep = []
            else: t.keep += t.ms
    return {k: dict(ms_per_batch=statistics.median(t.keep), images_per_s=bs * 1e3 / statistics.median(t.keep), n=len(t.keep))
            for k, t in timers.items()}

def tables(res) -> str:
    m, a = res['machine'], res['args']
    out = [f"{m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']}, {m['threads']} thread(s), device {a['device']}; load average "
           f"{fmt_load(m['loadavg_start'])} at the start, {fmt_load(m['loadavg_end'])} at the end; {res['elapsed_s']:.0f} s. "
           f"Batch {a['batch']}; medians of interleaved rounds.\n",
           "| pipeline | data alone, images/s | full training step (`" + a['preset'] + "`), images/s | ms per batch |",
           "|---|---|---|---|"]
    d, s = res.get('data', {}), res.get('step', {})
    for k in PIPES:
        out.append(f"| {k} | {d[k]['images_per_s']:,.0f} | " + (f"{s[k]['images_per_s']:,.0f} | {s[k]['ms_per_batch']:.1f} |" if s else "— | — |")
                   if k in d else f"| {k} | — | — | — |")
    if d: out.append(f"\ndevice / host: data alone {d['device']['images_per_s'] / d['host']['images_per_s']:.2f}×"
                     + (f", full step {s['device']['images_per_s'] / s['host']['images_per_s']:.3f}×" if s else '') + ".\n")
    return '\n'.join(out)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=str(DATA), help='CIFAR-10 folder or archive')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--batches', type=int, default=40, help='training batches per pipeline per round (data alone)')
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--preset', default='cifar10_r20', help='the learner of the full-step measurement')
    ap.add_argument('--fit-batches', type=int, default=4, help='timed training batches per fit(1) (full step)')
    ap.add_argument('--limit', type=int, default=None, help='at most this many images per split (toy runs)')
    ap.add_argument('--skip', default='', help='comma-separated: data, step')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'data_pipeline.json'))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    res = dict(machine=machine_info(), args=vars(a), when=datetime.now(timezone.utc).isoformat(timespec='seconds'))
    t0 = time.time()
    dls = {k: make_dls(k, a.data, a.batch, a.device, a.limit) for k in PIPES}
    skip = set(filter(None, a.skip.split(',')))
    if 'data' not in skip: res['data'] = data_only(dls, a.batches, a.rounds, a.device); print('data', res['data'], flush=True)
    if 'step' not in skip: res['step'] = train_step(dls, a.preset, a.fit_batches, a.rounds, a.device); print('step', res['step'], flush=True)
    res['machine']['loadavg_end'] = os.getloadavg()
    res['elapsed_s'] = time.time() - t0
    write_results(a.out, res, tables(res))
    return res

if __name__ == '__main__':
    main()
