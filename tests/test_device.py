"""bsgate's device-sensitive paths on an emulated CUDA device (`device_emulation`): CI has no GPU, and a CPU tensor meeting
a CUDA one is invisible on a CPU. Each test moves a model or data to `'cuda'` inside `emulated_cuda()`, where mixing devices
raises as on a GPU. What the emulation cannot reach (values: `.item()`, `nonzero`; kernels; NCCL; fastai's `fit`) is listed
in tests/device_emulation.py and in the notebooks; `test_factories_name_a_device` guards the rest statically."""
from __future__ import annotations
import ast, os, re, sys, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from device_emulation import emulated_cuda, backward, GradDeviceError
from conftest import fake_cifar

warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated')
ROOT = Path(__file__).resolve().parent.parent
CUDA = torch.device('cuda', 0)
MISMATCH = (RuntimeError,)   # FakeTensorDeviceMismatchError is a RuntimeError; GradDeviceError too


def _small_gated(seed=0, **kw):
    from bsgate.models.resnet import GatedResNet
    torch.manual_seed(seed)
    return GatedResNet((1, 1), widths=(8, 16), stem='cifar', num_classes=3, gate_layer='channel', **kw)


def _on_cuda(*tensors) -> bool: return all(t.device == CUDA for t in tensors)


# ------------------------------------------------------------------------------------------------------------------
# The emulator itself: it must agree with PyTorch's engine and it must catch what a GPU would
def test_python_engine_matches_pytorch_on_cpu():
    m = _small_gated().train()
    x = torch.randn(6, 3, 8, 8)
    torch.manual_seed(1); m(x).logsumexp(1).mean().backward()
    ref = [p.grad.clone() for p in m.parameters()]
    m.zero_grad(set_to_none=True)
    torch.manual_seed(1); backward(m(x).logsumexp(1).mean())
    for (n, p), r in zip(m.named_parameters(), ref):
        torch.testing.assert_close(p.grad, r, rtol=1e-4, atol=1e-6, msg=lambda s: f"{n}: {s}")


def test_emulation_catches_mixed_devices():
    with emulated_cuda():
        a = torch.ones(4, 3, device='cuda')
        with pytest.raises(MISMATCH, match='cuda|cpu'): a * torch.ones(4, 3)             # forward: a CPU tensor meets a CUDA one
        class CPUGrad(torch.autograd.Function):                                           # backward: a gradient on the wrong device
            @staticmethod
            def forward(ctx, x): return x * 2
            @staticmethod
            def backward(ctx, g): return torch.ones(g.shape)                              # made on the CPU: a device bug
        w = torch.ones(4, 3, device='cuda', requires_grad=True)
        with pytest.raises(GradDeviceError, match='cpu'): backward(CPUGrad.apply(w).sum())


# ------------------------------------------------------------------------------------------------------------------
# Training: a gated forward/backward with batch-shaping and the L0 budget, through bsgate's own callbacks, and a step
def _drive(cbs, event):
    for cb in sorted(cbs, key=lambda c: getattr(c, 'order', 0)):
        f = getattr(cb, event, None)
        if f is not None: f()


def _gated_learner(model, dls_device='cpu'):
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from torch.utils.data import TensorDataset
    ds = TensorDataset(torch.randn(8, 3, 8, 8), torch.randint(0, 3, (8,)))
    dls = DataLoaders.from_dsets(ds, ds, bs=4, device=dls_device)
    return Learner(dls, model, loss_func=nn.CrossEntropyLoss())


@pytest.mark.parametrize('budget', ['layer', 'mac', None])
def test_gated_training_step_on_device(budget):
    from bsgate.callbacks import GateCollector, BatchShaping, L0Penalty, NoGateWD, GateL1Penalty
    from bsgate.macs import gate_mac_weights
    m = _small_gated()
    gm = gate_mac_weights(m, (3, 8, 8))                       # the MAC model: built on the CPU, used on the device
    learn = _gated_learner(m)
    cbs = [GateCollector(), BatchShaping(0.75), L0Penalty(1., gm, 0.5 if budget else None, budget or 'layer'),
           GateL1Penalty(0.1), NoGateWD()]
    learn.add_cbs(cbs)
    learn.create_opt()
    _drive(cbs, 'before_fit'); _drive(cbs, 'before_train')      # host-side set-up (the budget's open fraction: a Python float)
    with emulated_cuda():
        m.to('cuda')
        learn.training = True
        x, y = torch.randn(8, 3, 8, 8, device='cuda'), torch.randint(0, 3, (8,), device='cuda')
        learn.xb, learn.yb = (x,), (y,)
        learn.pred = m(x)
        learn.loss_grad = learn.loss_func(learn.pred, y)
        learn.loss = learn.loss_grad.clone()
        _drive(cbs, 'after_loss')                               # adds γ·batch-shaping, λ·L0 (or the budget) and the L1 term
        assert _on_cuda(learn.loss_grad, learn.batch_shaping.bs_loss, learn.l0_penalty.l0)
        backward(learn.loss_grad)
        grads = [p.grad for p in m.parameters() if p.grad is not None]
        assert len(grads) == len(list(m.parameters())) and _on_cuda(*grads)
        learn.opt.step()                                        # fastai's SGD: momentum buffers made where the parameters are
        assert _on_cuda(*[v for s in learn.opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)])
        _drive(cbs, 'after_fit')


def test_gaternet_and_pspnet_on_device():
    from bsgate.models.gaternet import GaterNet
    from bsgate.models.pspnet import PSPNet, pspnet_loss
    torch.manual_seed(0)
    g = GaterNet(8, gater_depth=8, gate_at=(2,), shortcut='B').train()
    s = PSPNet(num_classes=3, depth=18, gate_layer='channel').train()
    with emulated_cuda():
        g.to('cuda'); s.to('cuda')
        out = g(torch.randn(4, 3, 32, 32, device='cuda'))
        backward(out.logsumexp(1).mean())
        assert _on_cuda(*[p.grad for p in g.parameters() if p.grad is not None])
        main, aux = s(torch.randn(2, 3, 64, 64, device='cuda'))
        t = torch.randint(0, 3, (2, 64, 64), device='cuda')
        # pspnet_loss checks the label ids with `.any()` (values: on the CPU in 06b); the same loss without the check
        backward(nn.functional.cross_entropy(main, t) + 0.4 * nn.functional.cross_entropy(aux, t))
        assert _on_cuda(*[p.grad for p in s.parameters() if p.grad is not None])


# ------------------------------------------------------------------------------------------------------------------
# Validation: per-image MACs and GateStats' per-batch path (every validation batch of a gated fit runs it)
def test_mac_counting_on_device():
    from bsgate.macs import MacCounter, block_masks
    from bsgate.models.resnet import cifar_resnet
    m = cifar_resnet(20, gate_layer='channel')
    counter = MacCounter(m, (3, 32, 32))                      # fvcore's trace (on the GPU in a real run; here before the move)
    with emulated_cuda():
        m.to('cuda').eval()
        m(torch.randn(8, 3, 32, 32, device='cuda'))
        for b in m.blocks: assert all(_on_cuda(a, o) for a, o in block_masks(b, 8))   # the masks follow the gates
        r = counter()
        assert r.macs.shape == (8,)


def test_gate_stats_per_batch_on_device():
    from bsgate.callbacks import GateStats
    m = _small_gated()
    learn = _gated_learner(m)
    st = GateStats(); learn.add_cb(st)
    from bsgate.macs import MacCounter
    st._counters = {(3, 8, 8): MacCounter(m, (3, 8, 8))}       # built on the CPU (`before_batch` builds it on the device in a run)
    with emulated_cuda():
        m.to('cuda').eval()
        learn.training = False
        st.before_validate()
        for _ in range(2):
            learn.xb = (torch.randn(4, 3, 8, 8, device='cuda'),)
            st.before_batch(); m(*learn.xb); st.after_batch()
        assert st._n == 8 and len(st._macs) == 2


def test_bn_recalibration_is_pytorchs_cumulative_average():
    "recalibrate_bn keeps the batch count on the host (PyTorch's momentum=None reads it with float(): a GPU sync per layer)"
    from bsgate.callbacks import recalibrate_bn, _bns
    m1, m2 = _small_gated(), _small_gated()
    batches = [torch.randn(4, 3, 8, 8) for _ in range(3)]
    recalibrate_bn(m1, batches, 3)
    m2.eval()
    for b in _bns(m2): b.reset_running_stats(); b.momentum = None; b.train()
    with torch.no_grad():
        for x in batches: m2(x)
    for (n, a), b in zip(m1.named_buffers(), m2.buffers()): assert torch.equal(a, b), n


def test_bn_recalibration_on_device():
    from bsgate.callbacks import recalibrate_bn
    m = _small_gated()
    with emulated_cuda():
        m.to('cuda')
        batches = [(torch.randn(4, 3, 8, 8, device='cuda'), torch.zeros(4, dtype=torch.long, device='cuda')) for _ in range(3)]
        assert recalibrate_bn(m, batches, 2) == 2
        assert _on_cuda(*[b for b in m.buffers() if b.is_floating_point()])


def test_inference_convert_on_device():
    "convert() builds its copy where the model is (its forward needs values: `nonzero` per gate pattern, tested on the CPU)"
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv
    from bsgate.inference import convert
    from bsgate.models.resnet import cifar_resnet
    m = cifar_resnet(20, gate_layer='channel').eval()
    with FakeTensorMode(allow_non_fake_inputs=True, shape_env=ShapeEnv()):
        m.to('cuda')
        c = convert(m)
        ts = list(c.parameters()) + list(c.buffers())
        assert ts and _on_cuda(*[t for t in ts if t.numel()])


# ------------------------------------------------------------------------------------------------------------------
# Checkpoints: --resume must give the optimizer its state on the model's device
def test_resume_puts_optimizer_state_on_the_device(tmp_path):
    from bsgate.train import load_checkpoint, torch_save
    m = _small_gated()
    learn = _gated_learner(m)
    learn.create_opt()
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,))
    nn.functional.cross_entropy(m(x), y).backward(); learn.opt.step()      # momentum buffers exist (on the CPU)
    ck = tmp_path / 'checkpoint.pth'
    torch_save(dict(model=m.state_dict(), opt=learn.opt.state_dict(), epoch=1, n_epoch=2, history=[]), ck)
    learn2 = _gated_learner(_small_gated(seed=1), dls_device=CUDA)           # a GPU run's Learner (its data on 'cuda')
    with emulated_cuda():
        assert load_checkpoint(learn2, ck)[0] == 1
        if next(learn2.model.parameters()).device != CUDA: learn2.model.to(CUDA)   # what fastai's before_fit does next
        state = [v for s in learn2.opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
        assert state and _on_cuda(*state), {str(v.device) for v in state}
        for p in learn2.model.parameters(): p.grad = torch.ones_like(p)
        learn2.opt.step()                                                   # a CPU momentum buffer would meet a CUDA parameter


# ------------------------------------------------------------------------------------------------------------------
# Data: the device CIFAR pipeline keeps images, indices, augmentation and normalisation on the device
def test_device_cifar_pipeline_on_device():
    from bsgate.data.cifar_gpu import DeviceImages
    rng = np.random.default_rng(0)
    imgs, labels = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), np.arange(6) % 2
    import bsgate.data.cifar_gpu as G
    G_ti, G_tc = G.TensorImage, G.TensorCategory   # fastai's tensor subclasses cannot wrap a fake tensor: plain tensors here
    G.TensorImage = G.TensorCategory = lambda t: t
    try: _pipeline(DeviceImages, imgs, labels)
    finally: G.TensorImage, G.TensorCategory = G_ti, G_tc

def _pipeline(DeviceImages, imgs, labels):
    with emulated_cuda():
        tr = DeviceImages.from_arrays(imgs, labels, ['a', 'b'], 0, device='cuda', pad=4)
        va = DeviceImages.from_arrays(imgs, labels, ['a', 'b'], 1, device='cuda')
        for ds in (tr, va):
            x, y = ds.batch([0, 2, 3])
            assert x.shape == (3, 3, 32, 32) and _on_cuda(x, y)


# ------------------------------------------------------------------------------------------------------------------
# Several GPUs: each torchrun process puts its data on its own GPU, and only rank 0 deletes a run's files
class _Stop(Exception): pass

def test_each_rank_builds_its_data_on_its_own_gpu(tmp_path, monkeypatch):
    import bsgate.train as T
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda d: calls.append(('set_device', torch.device(d))))
    def dls(*a, device=None, **k): calls.append(('dls', device)); raise _Stop
    monkeypatch.setattr(T, 'preset_dls', dls)
    for k, v in dict(WORLD_SIZE='2', RANK='1', LOCAL_RANK='1').items(): monkeypatch.setenv(k, v)
    with pytest.raises(_Stop): T.train('cifar10_r20', data=str(tmp_path), out=str(tmp_path / 'run'), epochs=1)
    assert calls == [('set_device', torch.device('cuda', 1)), ('dls', torch.device('cuda', 1))], calls


def test_only_rank0_deletes_with_force(tmp_path, monkeypatch):
    import bsgate.train as T
    data, out = fake_cifar(tmp_path / 'data'), tmp_path / 'run'
    out.mkdir()
    for f in ('model.pth', 'metrics.json'): (out / f).write_text('an earlier run')
    def stop(*a, **k): raise _Stop
    monkeypatch.setitem(T.LEARNERS['classification'], 'cifar10', stop)   # called right after the deletion
    for k, v in dict(WORLD_SIZE='2', RANK='1', LOCAL_RANK='1').items(): monkeypatch.setenv(k, v)
    with pytest.raises(_Stop): T.train('cifar10_r20', data=str(data), out=str(out), epochs=1, force=True, pipeline='host')
    assert (out / 'model.pth').is_file() and (out / 'metrics.json').is_file()    # rank 1 left them to rank 0
    monkeypatch.setenv('RANK', '0'); monkeypatch.setenv('WORLD_SIZE', '1')
    with pytest.raises(_Stop): T.train('cifar10_r20', data=str(data), out=str(out), epochs=1, force=True, pipeline='host')
    assert not (out / 'model.pth').exists() and not (out / 'metrics.json').exists()


# ------------------------------------------------------------------------------------------------------------------
# Kernels: GPU runs autotune unless asked not to, the choice is recorded, and the process's own flags come back
def test_kernel_choice_is_recorded_and_restored(tmp_path, monkeypatch):
    import json
    import bsgate.train as T
    data = fake_cifar(tmp_path / 'data')
    seen = []
    orig = T.LEARNERS['classification']['cifar10']
    def spy(*a, **k):
        seen.append((torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)); raise _Stop
    monkeypatch.setitem(T.LEARNERS['classification'], 'cifar10', spy)
    before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    for det, want in ((False, (False, True)), (True, (True, False))):
        out = tmp_path / f'run_{det}'
        with pytest.raises(_Stop): T.train('cifar10_r20', data=str(data), out=str(out), epochs=1, deterministic=det, pipeline='host')
        assert seen[-1] == want
        assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == before   # put back
        cfg = json.loads((out / 'config.json').read_text())
        assert cfg['deterministic'] is det and cfg['precision'] == 'fp32'
    # a resumed run keeps its own choice, and refuses another
    with pytest.raises(ValueError, match='--deterministic differs'):
        T.train('cifar10_r20', data=str(data), out=str(tmp_path / 'run_False'), resume=True, deterministic=True)
    with pytest.raises(ValueError, match="precision"):
        T.train('cifar10_r20', data=str(data), out=str(tmp_path / 'run_False'), resume=True, bf16=True)


def test_seeding_leaves_the_kernels_alone():
    from bsgate.train import EpochSeed
    b = torch.backends.cudnn
    saved = (b.deterministic, b.benchmark)
    try:
        b.deterministic, b.benchmark = False, True                 # a GPU run's autotuned kernels
        cb = EpochSeed(3); cb.epoch = 0; cb._seed(0)
        assert (b.deterministic, b.benchmark) == (False, True)
        cb = EpochSeed(3, reproducible=True); cb.epoch = 0; cb._seed(0)   # asked for: fastai's deterministic kernels
        assert (b.deterministic, b.benchmark) == (True, False)
    finally: b.deterministic, b.benchmark = saved


# ------------------------------------------------------------------------------------------------------------------
# Statically: every tensor factory on a runtime path names its device, or is on this list with the reason
FACTORIES = {'zeros', 'ones', 'full', 'empty', 'arange', 'tensor', 'rand', 'randn', 'randint', 'eye', 'linspace', 'as_tensor'}
HOST_BY_DESIGN = {   # (file, code on the line): why a CPU tensor is right there
    ('analysis.py', 'torch.linspace(0.005, 0.995'): 'analysis of host-side gate statistics',
    ('analysis.py', 'torch.as_tensor(by).double()'): "the user's per-image difficulty values, compared with host-side records",
    ('analysis.py', 'torch.as_tensor(np.asarray(o), dtype=torch.float32)'): 'un-normalising an image already moved to the host for display',
    ('segmentation.py', 'int(torch.randint(0, img.shape[1] - ch + 1, ()))'): 'host-side crop offsets (Python ints)',
    ('callbacks.py', 'torch.randn(m, 3, size, size, generator=g)'): 'synthetic data set for examples (host data, fastai moves batches)',
    ('callbacks.py', 'torch.zeros(g.nf, dtype=torch.float64)'): "GateStats' host accumulators (the gates are added with .cpu())",
    ('callbacks.py', 'torch.randint(0, n_classes, (m,), generator=g)'): 'synthetic data set for examples',
    ('inference.py', "register_buffer('_none', torch.zeros(0"): 'a buffer: it moves with the module',
    ('macs.py', 'torch.zeros(1, *input_size)'): "fvcore_counts moves the input to the model's device",
    ('macs.py', 'torch.full((1,), float(self.total), dtype=torch.float64)'): 'per-image MAC results live on the host',
    ('macs.py', 'torch.full((n,), float(self.total), dtype=torch.float64)'): 'per-image MAC results live on the host (terms .cpu()d)',
    ('macs.py', 'torch.full((g.nf,), w / g.nf, dtype=torch.float64)'): 'the MAC model; L0Penalty moves it to the gates once',
    ('shaping.py', 'torch.tensor(x, dtype=dtype)'): 'an accuracy check against SciPy on the host',
    ('shaping.py', 'torch.randn(n, 1, generator=g)'): 'a demonstration fit on the host',
    ('segmentation.py', 'torch.empty(1).uniform_'): 'host-side augmentation parameters (a Python float)',
    ('segmentation.py', 'torch.rand(()) < 0.5'): 'host-side augmentation coin',
    ('cifar_gpu.py', 'torch.as_tensor(np.asarray(labels'): 'host labels, moved with .to(device)',
    ('cifar_gpu.py', 'torch.as_tensor(np.asarray(idxs'): 'host indices, moved with .to(device)',
}

def _factory_calls():
    for f in sorted((ROOT / 'bsgate').rglob('*.py')):
        if f.name == '_modidx.py': continue
        src = f.read_text(); lines = src.splitlines()
        for node in ast.walk(ast.parse(src)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == 'torch'
                    and not any(k.arg == 'device' for k in node.keywords)):
                yield f, node.lineno, lines[node.lineno - 1].strip()

def test_factories_name_a_device():
    bad = [f"{f.relative_to(ROOT)}:{n}: {line}" for f, n, line in _factory_calls()
           if not any(f.name == fn and code in line for fn, code in HOST_BY_DESIGN)]
    assert not bad, "tensor factories without device= (name the device, or add the line to HOST_BY_DESIGN with the reason):\n" + "\n".join(bad)
    assert HOST_BY_DESIGN, "the allow-list must exist"
    seen = {(f.name, code) for f, _, line in _factory_calls() for fn, code in HOST_BY_DESIGN if f.name == fn and code in line}
    assert not set(HOST_BY_DESIGN) - seen, f"stale HOST_BY_DESIGN entries: {sorted(set(HOST_BY_DESIGN) - seen)}"
