"""Everything a GPU must show for bsgate, in one command of at most ~8 minutes (issue 14): `bash bench/gpu_check.sh`.

Parts, run in this order; each is timed, its failure recorded without stopping the others, and the whole check keeps
to `--budget-s` (a part that would not fit is recorded as skipped):

  env        GPU name, memory, capability; torch, CUDA, cuDNN, Python, fastai, fastcore; bsgate's commit if known
  travel     what the device call carries (bench/gpu_prepare.py's measurement, nothing deleted): the working tree in full
             and slim form (without the checkpoints the check does not read, `READS`) plus .whl/ and .gpudata/, against
             the 64 MiB limit; skipped where there is no git repository (the device's copy)
  features   on the device, TF32 off, relative tolerances: the fused BN→ReLU→gate node against the unfused block
             (outputs, gradients, BN buffers); the device CIFAR pipeline against the host one (validation batches); a
             fastai fit with AMP fp16 and its GradScaler (its scale read during the fit: fastai drops the scaler after
             it); `bsgate_train`'s train() with bf16 + channels_last; torch.compile of a gated ResNet (eval outputs equal
             eager, a training step runs)
  cifar      CIFAR-10, all 50,000 training images (45,000 + the fixed 5,000 hold-out), the calibrated recipe of
             bench/cifar_study.py: dense ResNet-20 and gated ResNet-32/56 held to 0.95 × ResNet-20's MACs, each for a
             fixed wall-clock budget (`--cifar-s`): a few timed batches give the epoch time, the run gets as many
             epochs as fit, its schedules scale with them; run folders (config.json, model.pth, metrics.json,
             history.json) under OUT/runs/
  ratio      gated / dense CIFAR ResNet-56 training step at batch 256 (batch-shaping + L0 in the gated step), fp32,
             bf16 and fp16 (GradScaler), eager and `torch.compile`d (both models compiled; compile time reported)
  inference  the published gated ResNet-32 (checkpoints/cifar10/r32_bas) converted (`bsgate.inference.convert`)
             against dense ResNet-20/32 and the masked gated model, eval, batch 1 and 256
  presets    a few full-size training steps through the Learner of `imagenet_r50` (224 px) and
             `cityscapes_pspnet_r50` (713 px crops) on synthetic batches, bf16: images/s and peak memory
  pipeline   bench/data_pipeline.py on the device: images/s of the data path alone and of a full step, both pipelines

Timed parts start with cuDNN's benchmark on and deterministic off (train() and fastai's `set_seed(reproducible=True)`
turn benchmark off globally); the flags each part ran with are in summary.json's `parts`.

OUT gets summary.json, summary.md (both rewritten after every part), and runs/ (the CIFAR run folders). `--dry-run` runs every part at toy sizes on
the CPU, on a fake CIFAR folder, in well under a minute (tests/test_gpu_check.py runs it in CI).

    python bench/gpu_check.py --out /tmp/gpu_check --data .gpudata/cifar10/train.tar.gz   # on the GPU (gpu_check.sh)
    .venv/bin/python bench/gpu_check.py --dry-run --out /tmp/gpu_dry                       # here, CPU, toy sizes
"""
from __future__ import annotations
import argparse, contextlib, copy, dataclasses, json, os, platform, shutil, statistics, subprocess, sys, tempfile, time, traceback
from pathlib import Path
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
PARTS = ('env', 'travel', 'emulated', 'features', 'ratio', 'presets', 'inference', 'pipeline', 'cifar', 'ratio_compiled')
TIMED = ('ratio', 'presets', 'inference', 'pipeline', 'cifar', 'ratio_compiled')   # cuDNN benchmark on, deterministic off
# The tracked data the check reads besides the code: the ONE list (bench/gpu_prepare.py --slim keeps these and leaves every
# other checkpoints/*/* run folder and bench/partial/ out of the device call). A part that reads another checkpoint adds it here.
R32_BAS = 'checkpoints/cifar10/r32_bas'   # the `inference` part
READS = (R32_BAS,)
FUSED_RTOL, COMPILE_RTOL, PIPELINE_RTOL = 1e-4, 1e-3, 1e-5

class Skip(Exception): "A part that does not apply here (recorded as skipped, not as an error)"

# ---------------------------------------------------------------------------------------------------- helpers
class Clock:
    "The check's deadline: `left()` seconds remain; `fits(s)` whether a part of about `s` seconds still fits"
    def __init__(self, budget_s:float): self.t0, self.budget = time.time(), budget_s
    def elapsed(self) -> float: return time.time() - self.t0
    def left(self) -> float: return self.budget - self.elapsed()
    def fits(self, s:float) -> bool: return self.left() >= s

def timed_fit(learn, dev, stop_after:int|None=None) -> list:
    "Fit one epoch of training batches (validation skipped); the clock before each batch and at the end, synced with `dev`"
    from fastai.callback.core import Callback, CancelFitException, CancelValidException
    class T(Callback):
        order = -1000
        def before_fit(self): self.t = []
        def before_batch(self):
            if not self.training: return
            sync(dev); self.t.append(time.perf_counter())
            if stop_after is not None and len(self.t) > stop_after: raise CancelFitException()
        def after_train(self): sync(dev); self.t.append(time.perf_counter())
    class SkipValid(Callback):
        order = 1000   # after the other callbacks' before_validate, so their after_validate finds their state
        def before_validate(self): raise CancelValidException()
    t = T(); learn.add_cbs([t, SkipValid()])
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    return t.t

def sync(dev):
    if torch.device(dev).type == 'cuda': torch.cuda.synchronize()

def peak_mb(dev) -> float|None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.device(dev).type == 'cuda' else None

def reset_peak(dev):
    if torch.device(dev).type == 'cuda': torch.cuda.reset_peak_memory_stats()

def close(a, b, rtol:float) -> dict:
    "`a` against the reference `b`, relative: every |a - b| <= rtol·max|b| + rtol·|b| (`torch.testing.assert_close` with atol = rtol·max|b|)"
    a, b = a.detach().double(), b.detach().double()
    d, scale = (a - b).abs(), float(b.abs().max()) if b.numel() else 0.
    ok = bool(torch.isfinite(a).all() and torch.isfinite(b).all() and (d <= rtol * scale + rtol * b.abs()).all())
    mx = float(d.max()) if d.numel() else 0.
    return dict(max_abs=mx, scale=scale, max_rel=mx / scale if scale > 0 else (0. if mx == 0 else float('inf')), ok=ok)

def worst(cmps:dict) -> dict:
    "The worst (largest max_rel) of named `close` results, with its name; ok only if all are"
    if not cmps: return dict(max_rel=0., ok=True, n=0)
    k = max(cmps, key=lambda k: cmps[k]['max_rel'])
    return dict(cmps[k], worst=k, ok=all(c['ok'] for c in cmps.values()), n=len(cmps))

def tf32_state() -> dict:
    return dict(matmul=bool(torch.backends.cuda.matmul.allow_tf32), cudnn=bool(torch.backends.cudnn.allow_tf32))

@contextlib.contextmanager
def no_tf32():
    "TF32 off for cuBLAS and cuDNN while kernels are compared (fp32 must mean fp32); the previous settings restored after"
    before = tf32_state()
    torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False
    try: yield tf32_state()
    finally: torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before['matmul'], before['cudnn']

def cudnn_state() -> dict:
    return dict(benchmark=bool(torch.backends.cudnn.benchmark), deterministic=bool(torch.backends.cudnn.deterministic), tf32=tf32_state())

def timing_mode() -> dict:
    "cuDNN as a timing wants it: benchmark on, deterministic off (fastai's `set_seed(reproducible=True)`, which train() calls, turns them the other way)"
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
    return cudnn_state()

def log(*a): print(*a, flush=True)

def fake_cifar(root:Path, n:int=24) -> Path:
    "A CIFAR-layout folder (train/<class>/*.png, 10 classes, `n` images each) for the dry run"
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in range(10):
        d = root / 'train' / f'class{c}'; d.mkdir(parents=True, exist_ok=True)
        for i in range(n): Image.fromarray(np.clip(rng.normal(20 * c + 30, 50, (32, 32, 3)), 0, 255).astype(np.uint8)).save(d / f'{i}.png')
    return root

# ---------------------------------------------------------------------------------------------------- env
def part_env(a, dev) -> dict:
    import fastai, fastcore
    res = dict(device=str(dev), torch=torch.__version__, cuda=torch.version.cuda, python=platform.python_version(),
               fastai=fastai.__version__, fastcore=fastcore.__version__, numpy=np.__version__, platform=platform.platform(),
               cpu_count=os.cpu_count())
    if torch.device(dev).type == 'cuda':
        pr = torch.cuda.get_device_properties(dev)
        res.update(gpu=pr.name, gpu_memory_gib=round(pr.total_memory / 2**30, 1), capability=f'{pr.major}.{pr.minor}',
                   cudnn=torch.backends.cudnn.version(), bf16=torch.cuda.is_bf16_supported())
    try: res['commit'] = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', 'HEAD'], capture_output=True, text=True, timeout=10).stdout.strip() or None
    except Exception: res['commit'] = None
    f = ROOT / '.gpudata' / 'commit'   # written before the call (the device gets the working tree without .git)
    if not res['commit'] and f.is_file(): res['commit'] = f.read_text().strip()
    return res

# ---------------------------------------------------------------------------------------------------- travel
def part_travel(a) -> dict:
    "What the device call carries, full and slim (bench/gpu_prepare.py's measurement, `--check-only`: nothing made or deleted)"
    import gpu_prepare
    if not (ROOT / '.git').exists() or not shutil.which('git'): raise Skip('no git repository (the device gets the working tree without .git)')
    m = gpu_prepare.measure(ROOT, keep=READS, estimate=True)   # the limit: gpu_prepare.LIMIT_MIB (64 MiB)
    mib = lambda b: round(b / 2**20, 2)
    res = dict(limit_mib=gpu_prepare.LIMIT_MIB, full_mib=mib(m['full']), slim_mib=mib(m['slim']), now_mib=mib(m['now']),
               tracked_mib=mib(m['tracked']), untracked_mib=mib(m['untracked']), slim_leaves_out_mib=mib(m['dropped']),
               slim_leaves_out_runs=len(m['dropped_runs']), carry={k: dict(v, mib=mib(v['bytes'])) for k, v in m['carry'].items()},
               keep=list(READS), ok=m['slim'] < m['limit'])
    log(f"  travel: full {res['full_mib']} MiB, slim {res['slim_mib']} MiB (limit {gpu_prepare.LIMIT_MIB} MiB; "
        + ', '.join(f"{k} {v['mib']} MiB{' estimated' if v['estimated'] else ''}" for k, v in res['carry'].items()) + ')')
    return res

# ---------------------------------------------------------------------------------------------------- emulated
def part_emulated(a, dev) -> dict:
    "Without a GPU: bsgate's device paths on an emulated CUDA device (tests/test_device.py, as CI runs them)"
    if dev.type == 'cuda': raise Skip('a real GPU: the other parts run these paths for real')
    if not (ROOT / 'tests' / 'test_device.py').is_file(): raise Skip('tests/test_device.py is not in this checkout')
    import subprocess
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', str(ROOT / 'tests' / 'test_device.py')],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    tail = [l for l in r.stdout.splitlines() if l.strip()][-1:] or ['']
    log(f"  emulated CUDA (tests/test_device.py): {tail[0]}")
    return dict(ok=r.returncode == 0, returncode=r.returncode, result=tail[0], output=r.stdout[-3000:] if r.returncode else '')

# ---------------------------------------------------------------------------------------------------- features
def part_features(a, dev, data) -> dict:
    from bsgate.blocks import ResBlock, can_fuse, conv1x1
    from bsgate.gates import ChannelGate
    from bsgate.models.resnet import cifar_resnet
    res = {}
    # 1. fused BN → ReLU → gate against the unfused block, on the device, fp32 with TF32 off (the unfused path runs cuDNN's
    #    BatchNorm and convolutions), each tensor against its own scale: the gradients reach magnitudes of 400–2100
    cmp = {}
    with no_tf32() as tf32:
        for exp in (1, 4):
            torch.manual_seed(0)
            ds = None if exp == 1 else nn.Sequential(conv1x1(32, 128), nn.BatchNorm2d(128))
            b1 = ResBlock(32, 32, expansion=exp, downsample=ds, gate_layer='channel').to(dev).train()
            b2 = copy.deepcopy(b1); b1.fused = False
            x = torch.randn(16, 32, 16, 16, device=dev)
            outs = []
            for b in (b1, b2):
                torch.manual_seed(1)
                y = b(x); (y * torch.linspace(-1, 1, y.numel(), device=dev).view_as(y)).sum().backward(); outs.append(y)
            sync(dev)
            # the unfused block (b1) is the reference
            grads = {n: close(p2.grad, p1.grad, FUSED_RTOL) for (n, p1), (_, p2) in zip(b1.named_parameters(), b2.named_parameters())
                     if p1.grad is not None or p2.grad is not None}
            bufs = {n: close(t2, t1, FUSED_RTOL) for (n, t1), (_, t2) in zip(b1.named_buffers(), b2.named_buffers())}
            cmp['basic' if exp == 1 else 'bottleneck'] = dict(out=close(outs[1], outs[0], FUSED_RTOL), grad=worst(grads), buffers=worst(bufs))
    ok = all(c['ok'] for d in cmp.values() for c in d.values())
    res['fused_vs_unfused'] = dict(rtol=FUSED_RTOL, tf32=tf32, compared=cmp, ok=ok,
                                   max_rel={k: {t: c['max_rel'] for t, c in d.items()} for k, d in cmp.items()},
                                   max_abs={k: {t: c['max_abs'] for t, c in d.items()} for k, d in cmp.items()},
                                   fused_applies=can_fuse(torch.randn(2, 4, 3, 3, device=dev), nn.BatchNorm2d(4).to(dev).train(), torch.ones(2, 4, device=dev)))
    log(f"  fused vs unfused (TF32 off, rtol {FUSED_RTOL}): max rel {res['fused_vs_unfused']['max_rel']}, "
        f"max abs {res['fused_vs_unfused']['max_abs']} -> {'ok' if ok else 'DIFFERENT'}")
    # 2. the device pipeline against the host one: validation batches (deterministic) equal
    from bsgate.data.cifar import cifar_dls
    from bsgate.data.cifar_gpu import cifar_device_dls
    lim = 256 if a.dry_run else 4096
    h = cifar_dls(data, bs=128, valid_pct=None, seed=42, limit=lim, device=dev)
    d_ = cifar_device_dls(data, bs=128, valid_pct=None, seed=42, limit=lim, device=dev)
    with no_tf32():
        c = worst({i: close(xd, xh, PIPELINE_RTOL) for i, ((xh, _), (xd, _)) in enumerate(zip(h.valid, d_.valid))})
    xb, _ = d_.one_batch()
    res['device_pipeline'] = dict(valid_max_abs_diff=c.get('max_abs', 0.), valid_max_rel=c['max_rel'], rtol=PIPELINE_RTOL, batches=c['n'],
                                  ok=c['ok'] and c['n'] > 0, batch_device=str(xb.device), n_train=len(d_.train.dataset))
    log(f"  device pipeline: valid max diff {res['device_pipeline']['valid_max_abs_diff']:.2e} (rel {c['max_rel']:.2e}), batches on {xb.device}")
    # 3. AMP fp16 with its GradScaler through fastai (CUDA only), and bf16. fastai's MixedPrecision.after_fit sets
    #    learn.scaler to None: the scale is read during the fit, after every batch (after MixedPrecision's update)
    from fastai.callback.core import Callback
    from bsgate.learner import cifar_learner
    from bsgate.train import DeviceMixedPrecision, train
    class ScaleRecorder(Callback):
        order = DeviceMixedPrecision.order + 1   # its before_fit makes learn.scaler; its after_step updates the scale
        def before_fit(self): self.scales, self.enabled, self.seen, self.steps = [], None, False, None
        def after_batch(self):
            sc = getattr(self.learn, 'scaler', None)
            if sc is None or not self.training: return
            self.seen, self.enabled = True, bool(sc.is_enabled())
            if self.enabled: self.scales.append(float(sc.get_scale()))
        def after_epoch(self):
            mp = next((c for c in self.learn.cbs if isinstance(c, DeviceMixedPrecision)), None)
            if mp is not None and getattr(mp, 'scales', None) is not None: self.steps = len(mp.scales)   # steps not skipped for overflow
    amp = {}
    for mode in ('fp16', 'bf16'):
        if mode == 'fp16' and torch.device(dev).type != 'cuda': amp[mode] = 'skipped: fp16 needs CUDA'; continue
        torch.manual_seed(0)
        learn = cifar_learner(d_, 'cifar10_r20')
        rec = ScaleRecorder()
        learn.add_cbs([DeviceMixedPrecision(mode), rec])
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        losses = [float(v) for v in learn.recorder.losses]
        sc = rec.scales
        r = dict(final_loss=losses[-1] if losses else None, finite=bool(losses) and all(np.isfinite(losses)),
                 scaler_seen=rec.seen, scaler_enabled=rec.enabled, batches=len(losses), steps_taken=rec.steps,
                 scaler_scale=sc[-1] if sc else None, scale_min=min(sc) if sc else None, scale_max=max(sc) if sc else None)
        if mode == 'fp16':   # the scaler must be on and its scale finite and positive after every batch
            r['scale_ok'] = bool(rec.seen and rec.enabled and sc and all(np.isfinite(v) and v > 0 for v in sc))
        r['ok'] = bool(r['finite'] and rec.seen and r.get('scale_ok', True))
        amp[mode] = r
    amp['ok'] = all(v['ok'] for v in amp.values() if isinstance(v, dict))
    res['amp'] = amp
    log(f"  amp: {amp}")
    # 4. bsgate_train's train() with bf16 + channels_last (the device pipeline, the default for CIFAR)
    with tempfile.TemporaryDirectory() as t:
        m = train('cifar10_r20', data=str(data), limit=lim, epochs=1, bs=128, bf16=True, channels_last=True, out=f'{t}/r', quiet=True,
                  bn_recal=2)
        cfg = json.loads(Path(t, 'r', 'config.json').read_text())
    res['train_bf16_channels_last'] = dict(accuracy=m['accuracy'], mac_frac=m.get('mac_frac'), pipeline=cfg.get('pipeline'),
                                          ok=bool(np.isfinite(m['valid_loss'])))
    log(f"  train bf16 + channels_last: {res['train_bf16_channels_last']}")
    # 5. torch.compile of a gated ResNet: eval outputs equal eager; a training step runs
    torch.manual_seed(0)
    model = cifar_resnet(20, gate_layer='channel').to(dev)
    with no_tf32() as tf32:   # inductor reads the TF32 flags when it compiles: compiled and eager both in true fp32
        cm = torch.compile(model, backend='eager' if a.dry_run else 'inductor', dynamic=False)
        x = torch.randn(32, 3, 32, 32, device=dev)
        t0 = time.perf_counter()
        model.eval()
        with torch.no_grad(): ye, yc = model(x), cm(x)
        model.train()
        loss = F.cross_entropy(cm(x), torch.randint(0, 10, (32,), device=dev)); loss.backward()
        sync(dev)
    c = close(yc, ye, COMPILE_RTOL)
    res['compile'] = dict(backend='eager' if a.dry_run else 'inductor', eval_max_abs_diff=c['max_abs'], eval_max_rel=c['max_rel'], rtol=COMPILE_RTOL,
                          tf32=tf32, train_loss=float(loss.detach()), ok=c['ok'] and bool(torch.isfinite(loss.detach())), seconds=round(time.perf_counter() - t0, 1))
    torch._dynamo.reset()   # the next compile of these forwards (other sizes) starts afresh, static
    log(f"  compile: {res['compile']}")
    res['ok'] = all(v.get('ok', True) for v in res.values() if isinstance(v, dict) and 'ok' in v)
    return res

# ---------------------------------------------------------------------------------------------------- cifar
def _arms(a):
    from cifar_study import RUNS, COMMON, GATED   # the calibrated recipe (bench/cifar_study.py)
    arms = {'r20_dense': ('cifar10_r20_dense', dict(COMMON), False),
            'r32_bas': ('cifar10_r32', dict(COMMON, **GATED), True),
            'r56_bas': ('cifar10_r56', dict(COMMON, **GATED), True)}
    return {k: v for k, v in arms.items() if k in a.cifar_arms.split(',')}

def _step_time(p, data, dev, a, pipeline) -> tuple[float, int, int]:
    "(seconds per training batch, training batches per epoch, validation batches) of preset `p`, from a few timed batches"
    from bsgate.train import preset_dls, DeviceMixedPrecision, ChannelsLast
    from bsgate.learner import LEARNERS
    dls = preset_dls(p, data, a.limit, 0, pipeline=pipeline)
    learn = LEARNERS[p.task][p.dataset](dls, p)
    if a.amp: learn.add_cb(DeviceMixedPrecision(a.amp))
    if a.channels_last: learn.add_cb(ChannelsLast())
    n_warm, n = (1, 2) if a.dry_run else (5, 15)
    t = timed_fit(learn, dev, stop_after=n_warm + n)
    ts = t[n_warm:] if len(t) > n_warm + 1 else t
    dt = (ts[-1] - ts[0]) / max(1, len(ts) - 1)
    return dt, len(dls.train), len(dls.valid)

def part_cifar(a, dev, data, out:Path, clock:Clock) -> dict:
    from bsgate.train import train, default_pipeline
    from bsgate.learner import get_preset
    from cifar_study import MARGIN, dense_of
    res = {}
    runs = out / 'runs'; runs.mkdir(parents=True, exist_ok=True)
    for name, (preset, kw, held) in _arms(a).items():
        if not clock.fits(a.cifar_s + 30): res[name] = dict(skipped=f'time: {clock.left():.0f} s left'); continue
        t0 = time.time()
        try:
            if held: kw = dict(kw, mac_target=round(MARGIN * dense_of(20) / dense_of(get_preset(preset).depth), 4))
            p = get_preset(preset, **{**{k: v for k, v in kw.items() if k != 'lr_warmup'}, **({'bs': 16} if a.dry_run else {})})
            pipe = default_pipeline(p)
            cudnn = timing_mode()   # the previous arm's train() left benchmark off (set_seed(reproducible=True))
            dt, nb, nv = _step_time(p, data, dev, a, pipe)
            epoch_s = dt * (nb + 0.35 * nv)            # validation: 2× batch, forward only
            fixed = 10 if a.dry_run else 25             # data set-up, final validation and BN recalibration
            epochs = max(1, int((a.cifar_s - fixed) / epoch_s))
            log(f"  {name}: {dt * 1e3:.1f} ms per batch, {nb} batches per epoch, ~{epoch_s:.1f} s per epoch -> {epochs} epochs")
            cli = {k: kw[k] for k in ('bs', 'lr', 'gamma', 'lam', 'mac_target', 'gate_bias', 'budget') if k in kw}
            if a.dry_run: cli['bs'] = 16
            t1 = time.time()
            m = train(preset, data=str(data), out=str(runs / f'gpu_{name}'), epochs=epochs, lr_warmup=1 / epochs if epochs > 1 else 0., limit=a.limit,
                      quiet=True, force=True, bf16=a.amp == 'bf16', fp16=a.amp == 'fp16', channels_last=a.channels_last, **cli)
            for f in ('checkpoint.pth', 'checkpoint.prev.pth'): (runs / f'gpu_{name}' / f).unlink(missing_ok=True)   # model.pth is kept
            res[name] = dict(preset=preset, epochs=epochs, ms_per_batch=round(dt * 1e3, 2), train_s=round(time.time() - t1, 1),
                             wall_s=round(time.time() - t0, 1), accuracy=m['accuracy'], mac_frac=m.get('mac_frac'), macs=m.get('macs'),
                             bn_recal_before=(m.get('bn_recal') or {}).get('before', {}).get('accuracy'), pipeline=pipe,
                             images_per_s=round(p.bs / dt), cudnn_timing=cudnn, cudnn_after_train=cudnn_state())
            log(f"  {name}: accuracy {m['accuracy']:.4f}, MAC fraction {m.get('mac_frac')}, {time.time() - t0:.0f} s")
        except Exception as e:
            res[name] = dict(error=f'{type(e).__name__}: {e}', traceback=traceback.format_exc()[-2000:]); log(f"  {name}: FAILED {e}")
    return res

# ---------------------------------------------------------------------------------------------------- ratio
def part_ratio(a, dev, clock:Clock, modes:list, dtypes:list) -> dict:
    from train_overhead import build, sgd, aux_losses, interleave, ratios
    from bsgate.callbacks import find_gates
    bs, depth = (8, 20) if a.dry_run else (a.ratio_batch, 56)
    if torch.device(dev).type != 'cuda': dtypes = [d for d in dtypes if d != 'fp16']
    res = dict(batch=bs, depth=depth, cases={})
    torch.manual_seed(1)
    x, y = torch.randn(bs, 3, 32, 32, device=dev), torch.randint(0, 10, (bs,), device=dev)
    for mode in modes:
        for dt in dtypes:
            key = f'{mode}_{dt}'
            if not a.dry_run and not clock.fits(90 if mode == 'compiled' else 10): res['cases'][key] = dict(skipped=f'time: {clock.left():.0f} s left'); continue
            try:
                dense, gated = (m.to(dev) for m in build(depth))
                gates = find_gates(gated)
                models = {'dense': dense, 'gated': gated}
                if mode == 'compiled': models = {k: torch.compile(m, backend='eager' if a.dry_run else 'inductor', dynamic=False) for k, m in models.items()}
                ac = (torch.autocast(torch.device(dev).type, dtype=torch.bfloat16 if dt == 'bf16' else torch.float16)
                      if dt != 'fp32' else contextlib.nullcontext())
                def make(k, m, opt):
                    scaler = torch.amp.GradScaler('cuda') if dt == 'fp16' else None
                    def step():
                        opt.zero_grad(set_to_none=True)
                        with (torch.autocast(torch.device(dev).type, dtype=torch.bfloat16 if dt == 'bf16' else torch.float16) if dt != 'fp32' else contextlib.nullcontext()):
                            loss = F.cross_entropy(m(x), y)
                        if k == 'gated': loss = loss + aux_losses(gates)   # in fp32, as the callbacks do
                        if scaler is not None: scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
                        else: loss.backward(); opt.step()
                        sync(dev)
                    return step
                steps = {k: make(k, m, sgd(dense if k == 'dense' else gated)) for k, m in models.items()}
                comp = {}
                for k, f in steps.items():
                    t0 = time.perf_counter(); f(); comp[k] = round(time.perf_counter() - t0, 1)
                r = interleave(steps, 2 if a.dry_run else a.ratio_repeats, 1, 1 if a.dry_run else 5)
                res['cases'][key] = dict(dense_ms=r['dense']['wall_ms'], gated_ms=r['gated']['wall_ms'],
                                         ratio=ratios(r, 'gated', 'dense')['wall'], first_step_s=comp,
                                         dense_images_per_s=round(bs * 1e3 / r['dense']['wall_ms']))
                log(f"  {key}: dense {r['dense']['wall_ms']:.2f} ms, gated {r['gated']['wall_ms']:.2f} ms, ratio {res['cases'][key]['ratio']:.3f} (first steps {comp} s)")
            except Exception as e:
                res['cases'][key] = dict(error=f'{type(e).__name__}: {e}', traceback=traceback.format_exc()[-2000:]); log(f"  {key}: FAILED {e}")
            finally:
                if mode == 'compiled': torch._dynamo.reset()
    return res

# ---------------------------------------------------------------------------------------------------- inference
def part_inference(a, dev) -> dict:
    from bsgate.inference import convert
    from bsgate.models.resnet import cifar_resnet
    ck = ROOT / R32_BAS   # listed in READS: bench/gpu_prepare.py --slim keeps it
    from bsgate.train import read_config
    from bsgate.learner import build_model
    p, _ = read_config(ck / 'config.json', 'gpu_check')
    gated = build_model(p); gated.load_state_dict(torch.load(ck / 'model.pth', map_location='cpu')); gated = gated.to(dev).eval()
    conv = convert(gated).to(dev).eval()
    models = {'dense_r20': cifar_resnet(20, gate_layer=None).to(dev).eval(), 'dense_r32': cifar_resnet(32, gate_layer=None).to(dev).eval(),
              'masked_r32': gated, 'converted_r32': conv}
    res = {}
    for bs in ((1, 8) if a.dry_run else (1, 256)):
        x = torch.randn(bs, 3, 32, 32, device=dev)
        n = 3 if a.dry_run else (200 if bs == 1 else 30)
        row = {}
        with torch.no_grad():
            for k, m in models.items():
                for _ in range(2 if a.dry_run else 10): m(x)
                sync(dev); t0 = time.perf_counter()
                for _ in range(n): m(x)
                sync(dev); row[k] = (time.perf_counter() - t0) / n * 1e3
        row['converted_vs_dense_r20'] = row['converted_r32'] / row['dense_r20']
        res[f'batch{bs}'] = {k: round(v, 4) for k, v in row.items()}
        log(f"  inference batch {bs}: " + ', '.join(f'{k} {v:.3f}' for k, v in res[f'batch{bs}'].items()))
    return res

# ---------------------------------------------------------------------------------------------------- presets
def part_presets(a, dev, clock:Clock) -> dict:
    from fastai.data.core import DataLoaders
    from torch.utils.data import TensorDataset
    from bsgate.learner import get_preset, LEARNERS
    from bsgate.train import DeviceMixedPrecision, ChannelsLast
    cases = {'imagenet_r50': dict(bs=4 if a.dry_run else 128, size=32 if a.dry_run else 224),
             'cityscapes_pspnet_r50': dict(bs=2 if a.dry_run else 16, size=48 if a.dry_run else 713)}
    res = {}
    for name, c in cases.items():
        if not clock.fits(45): res[name] = dict(skipped=f'time: {clock.left():.0f} s left'); continue
        try:
            p = get_preset(name, bs=c['bs'], size=c['size'])
            nb = 1 if a.dry_run else 8
            g = torch.Generator().manual_seed(0)
            n = c['bs'] * (nb + 3)
            x = torch.randn(n, 3, c['size'], c['size'], generator=g)
            y = (torch.randint(0, p.num_classes, (n, c['size'], c['size']), generator=g) if p.task == 'segmentation'
                 else torch.randint(0, p.num_classes, (n,), generator=g))
            ds = TensorDataset(x, y)
            dls = DataLoaders.from_dsets(ds, TensorDataset(x[:c['bs']], y[:c['bs']]), bs=c['bs'], device=dev, num_workers=0, drop_last=True)
            learn = LEARNERS[p.task][p.dataset](dls, p)
            if a.amp: learn.add_cb(DeviceMixedPrecision(a.amp))
            if a.channels_last: learn.add_cb(ChannelsLast())
            reset_peak(dev)
            t = timed_fit(learn, dev)
            d = np.diff(t)[2:] if len(t) > 4 else np.diff(t)
            ms = float(np.median(d)) * 1e3
            res[name] = dict(bs=c['bs'], size=c['size'], ms_per_batch=round(ms, 2), images_per_s=round(c['bs'] * 1e3 / ms, 1),
                             peak_memory_mb=peak_mb(dev), batches=len(d), amp=a.amp, channels_last=a.channels_last)
            log(f"  {name}: {res[name]}")
            del learn, dls, ds, x, y
            if torch.device(dev).type == 'cuda': torch.cuda.empty_cache()
        except Exception as e:
            res[name] = dict(error=f'{type(e).__name__}: {e}', traceback=traceback.format_exc()[-2000:]); log(f"  {name}: FAILED {e}")
    return res

# ---------------------------------------------------------------------------------------------------- pipeline
def part_pipeline(a, dev, data, out:Path) -> dict:
    import data_pipeline
    args = ['--data', str(data), '--device', str(dev), '--out', str(out / 'data_pipeline.json'), '--threads', str(torch.get_num_threads())]
    args += (['--limit', '512', '--batches', '2', '--rounds', '1', '--fit-batches', '2', '--batch', '32'] if a.dry_run
             else ['--batch', '256', '--batches', '40', '--rounds', '3', '--fit-batches', '6'])
    r = data_pipeline.main(args)
    return {k: r[k] for k in ('data', 'step') if k in r}

# ---------------------------------------------------------------------------------------------------- summary
def summary_md(res:dict) -> str:
    e = res.get('env', {})
    out = [f"# bsgate GPU check\n", f"{e.get('gpu', e.get('device'))} ({e.get('gpu_memory_gib', '?')} GiB, capability {e.get('capability', '-')}); "
           f"torch {e.get('torch')}, CUDA {e.get('cuda')}, cuDNN {e.get('cudnn', '-')}, Python {e.get('python')}, fastai {e.get('fastai')}; "
           f"commit {e.get('commit')}; {res['elapsed_s']:.0f} s{' (dry run: toy sizes, CPU)' if res['dry_run'] else ''}.\n",
           "| part | status | seconds | cuDNN benchmark / deterministic, TF32 matmul / cuDNN |", "|---|---|---|---|"]
    for k, v in res['parts'].items():
        c = v.get('cudnn') or {}
        flags = f"{c['benchmark']} / {c['deterministic']}, {c['tf32']['matmul']} / {c['tf32']['cudnn']}" if c else ''
        out.append(f"| {k} | {v['status']} | {v.get('seconds', 0):.0f} | {flags} |")
    t = res.get('travel') or {}
    if t:
        out += ["\n## What the device call carries (working tree + carried paths)\n",
                f"- slim (`bench/gpu_prepare.py --slim`: keeps {', '.join(t['keep'])}, leaves out {t['slim_leaves_out_runs']} other run folders "
                f"and bench/partial/, {t['slim_leaves_out_mib']} MiB): **{t['slim_mib']} MiB** of {t['limit_mib']} MiB",
                f"- full: {t['full_mib']} MiB (tracked {t['tracked_mib']}, untracked {t['untracked_mib']}, "
                + ', '.join(f"{k} {v['mib']}{' estimated' if v['estimated'] else ''}" for k, v in t['carry'].items()) + ")"]
    f = res.get('features') or {}
    if f:
        fu, amp = f.get('fused_vs_unfused', {}), f.get('amp', {})
        out += ["\n## Features\n", f"- fused BN→ReLU→gate vs unfused, TF32 off, rtol {fu.get('rtol')} (max relative error per tensor kind): "
                f"{fu.get('max_rel')}; max abs {fu.get('max_abs')}; ok {fu.get('ok')}",
                f"- device pipeline vs host, validation batches: {f.get('device_pipeline')}",
                *[f"- AMP {k}: {v}" for k, v in amp.items() if k != 'ok'],
                f"- train() bf16 + channels_last: {f.get('train_bf16_channels_last')}", f"- torch.compile: {f.get('compile')}"]
    c = res.get('cifar') or {}
    if c:
        out += ["\n## CIFAR-10, fixed wall-clock budget per run\n", "| run | epochs | accuracy | MAC fraction | ms/batch | images/s | train s |", "|---|---|---|---|---|---|---|"]
        for k, v in c.items():
            if 'epochs' in v: out.append(f"| {k} | {v['epochs']} | {v['accuracy']:.4f} | {v.get('mac_frac')} | {v['ms_per_batch']} | {v['images_per_s']} | {v['train_s']} |")
            else: out.append(f"| {k} | {v.get('skipped') or v.get('error', '')[:120]} | | | | | |")
    r = res.get('ratio') or res.get('ratio_compiled') or {}
    if r:
        out += [f"\n## Gated / dense training step (ResNet-{r['depth']}, batch {r['batch']})\n", "| case | dense ms | gated ms | ratio | first steps (s) |", "|---|---|---|---|---|"]
        for k, v in {**(res.get('ratio') or {}).get('cases', {}), **(res.get('ratio_compiled') or {}).get('cases', {})}.items():
            if 'ratio' in v: out.append(f"| {k} | {v['dense_ms']:.2f} | {v['gated_ms']:.2f} | {v['ratio']:.3f} | {v['first_step_s']} |")
            else: out.append(f"| {k} | {v.get('skipped') or v.get('error', '')[:120]} | | | |")
    i = res.get('inference') or {}
    if i:
        out += ["\n## Inference (ms per batch, eval)\n", "| batch | " + ' | '.join(next(iter(i.values())).keys()) + " |", "|---" * (1 + len(next(iter(i.values())))) + "|"]
        for k, v in i.items(): out.append(f"| {k} | " + ' | '.join(f'{o:.3f}' for o in v.values()) + " |")
    p = res.get('presets') or {}
    if p:
        out += ["\n## Full-size presets (synthetic batches, training)\n", "| preset | batch | size | ms/batch | images/s | peak MiB |", "|---|---|---|---|---|---|"]
        for k, v in p.items():
            if 'ms_per_batch' in v: out.append(f"| {k} | {v['bs']} | {v['size']} | {v['ms_per_batch']} | {v['images_per_s']} | {v['peak_memory_mb'] and round(v['peak_memory_mb'])} |")
            else: out.append(f"| {k} | {v.get('skipped') or v.get('error', '')[:120]} | | | | |")
    d = res.get('pipeline') or {}
    if d: out += ["\n## Data pipeline\n", f"```\n{json.dumps(d, indent=1)[:1500]}\n```"]
    return '\n'.join(out) + '\n'

def write_summary(res:dict, out:Path) -> str:
    "summary.json and summary.md, each written whole to a temporary file and renamed (a kill mid-write leaves the previous one)"
    try: md = summary_md(res)
    except Exception as e: md = f"# bsgate GPU check\n\nsummary.md failed ({type(e).__name__}: {e}); parts: {json.dumps(res.get('parts'), default=str)}\n"
    for name, text in (('summary.json', json.dumps(res, indent=1, default=str)), ('summary.md', md)):
        tmp = out / f'.{name}.tmp'; tmp.write_text(text); os.replace(tmp, out / name)
    return md

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'gpu_check'))
    ap.add_argument('--data', default=str(ROOT / '.gpudata' / 'cifar10' / 'train.tar.gz'), help='CIFAR-10 archive or folder')
    ap.add_argument('--parts', default=','.join(PARTS))
    ap.add_argument('--budget-s', type=float, default=530, help='the whole check keeps to this (parts that would not fit are skipped)')
    ap.add_argument('--cifar-s', type=float, default=60, help='wall-clock seconds per CIFAR run (epochs chosen to fit)')
    ap.add_argument('--cifar-arms', default='r20_dense,r32_bas,r56_bas')
    ap.add_argument('--amp', default='bf16', choices=('bf16', 'fp16', ''), help='mixed precision of the CIFAR runs and presets')
    ap.add_argument('--channels-last', action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument('--ratio-batch', type=int, default=256)
    ap.add_argument('--ratio-dtypes', default='fp32,bf16,fp16', help='dtypes of the eager ratio')
    ap.add_argument('--compile-dtypes', default='bf16,fp32,fp16', help='dtypes of the compiled ratio, in order, as time allows (~2 compiles each)')
    ap.add_argument('--ratio-repeats', type=int, default=4)
    ap.add_argument('--limit', type=int, default=None, help='images per split of the CIFAR runs (toy runs)')
    ap.add_argument('--dry-run', action='store_true', help='every part at toy sizes on the CPU, on a fake CIFAR folder')
    a = ap.parse_args(argv)
    dev = torch.device('cpu') if a.dry_run or not torch.cuda.is_available() else torch.device('cuda')
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    tmp = None
    if a.dry_run:
        tmp = Path(tempfile.mkdtemp(prefix='gpu_dry_'))
        os.environ.setdefault('BSGATE_CACHE', str(tmp / 'cache'))
        data = fake_cifar(tmp / 'cifar')
        a.cifar_s, a.limit, a.budget_s, a.ratio_repeats = 12, 120, max(a.budget_s, 600), 2
        a.amp, a.channels_last = 'bf16', True
    else: data = Path(a.data)
    if dev.type == 'cuda': torch.backends.cudnn.benchmark = True
    clock = Clock(a.budget_s)
    res = dict(dry_run=a.dry_run, args=vars(a), parts={}, when=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
    want = [p for p in a.parts.split(',') if p]
    calls = {'env': lambda: part_env(a, dev), 'travel': lambda: part_travel(a), 'emulated': lambda: part_emulated(a, dev), 'features': lambda: part_features(a, dev, data),
             'cifar': lambda: part_cifar(a, dev, data, out, clock),
             'ratio': lambda: part_ratio(a, dev, clock, ['eager'], [d for d in a.ratio_dtypes.split(',') if d]),
             'ratio_compiled': lambda: part_ratio(a, dev, clock, ['compiled'], [d for d in a.compile_dtypes.split(',') if d]),
             'inference': lambda: part_inference(a, dev), 'presets': lambda: part_presets(a, dev, clock),
             'pipeline': lambda: part_pipeline(a, dev, data, out)}
    need = {'env': 1, 'travel': 1, 'emulated': 1, 'features': 60, 'cifar': 60, 'ratio': 20, 'inference': 15, 'presets': 40, 'pipeline': 30, 'ratio_compiled': 60}
    try:
        for name in PARTS:
            if name not in want: continue
            if not a.dry_run and not clock.fits(need[name]):
                res['parts'][name] = dict(status=f'skipped (time: {clock.left():.0f} s left)'); continue
            log(f"== {name} ({clock.elapsed():.0f} s in)")
            cudnn = timing_mode() if name in TIMED else cudnn_state()
            t0 = time.time()
            try:
                res[name] = calls[name]()
                bad = name in ('features', 'travel', 'emulated') and not res[name].get('ok', True)
                errs = sorted(k for k, v in (res[name].get('cases', res[name]) if isinstance(res[name], dict) else {}).items()
                              if isinstance(v, dict) and 'error' in v)
                res['parts'][name] = dict(status='CHECK FAILED' if bad else f"errors in {', '.join(errs)}" if errs else 'ok', seconds=time.time() - t0,
                                          cudnn=cudnn)
            except Skip as e:
                res['parts'][name] = dict(status=f'skipped ({e})', seconds=time.time() - t0)
            except Exception as e:
                res['parts'][name] = dict(status=f'error: {type(e).__name__}: {str(e)[:200]}', seconds=time.time() - t0, cudnn=cudnn,
                                          traceback=traceback.format_exc()[-3000:])
                log(traceback.format_exc())
                try: torch.set_autocast_enabled(dev.type, False); torch.clear_autocast_cache()   # a part that failed under autocast
                except Exception: pass
            res['elapsed_s'] = clock.elapsed()
            write_summary(res, out)   # after every part: a killed run keeps what it had
        res['elapsed_s'] = clock.elapsed()
        md = write_summary(res, out)
        log(md)
    finally:   # a dry run leaves no fake CIFAR folder behind, also when interrupted
        if tmp: shutil.rmtree(tmp, ignore_errors=True)
    failed = [k for k, v in res['parts'].items() if not (v['status'] == 'ok' or v['status'].startswith('skipped'))]
    return res, failed

if __name__ == '__main__':
    _, failed = main()
    sys.exit(1 if failed else 0)
