"""An emulated CUDA device on a CPU-only machine, to catch device bugs (a CPU tensor meeting a CUDA one) in CI.

`emulated_cuda()` is PyTorch's `FakeTensorMode`: tensors made or moved to `'cuda'` inside it are fake (shape, dtype and
device, no data), and an op that mixes devices raises `FakeTensorDeviceMismatchError` as CUDA would. PyTorch's C++
autograd engine needs a real CUDA context for CUDA tensors, so `backward(loss)` walks the graph in Python instead,
calling each node as the engine would and checking, as the engine does, that every gradient is on its input's device.

What the emulation cannot reach: anything that needs values (`.item()`, `.tolist()`, `nonzero`, boolean masks, data-
dependent shapes raise `DataDependentOutputException`), kernels themselves (cuDNN, TF32, fp16 overflow: only a GPU shows
those), NCCL, and fastai's `fit` (its recorder reads losses with `.item()`): those paths are split into the parts that
hold tensors (tested here) and the host-side parts (tested on the CPU).
"""
from __future__ import annotations
from contextlib import contextmanager
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

@contextmanager
def emulated_cuda():
    "A `FakeTensorMode` in which `'cuda'` tensors can be made on a CPU-only machine (real tensors may be read in)"
    with FakeTensorMode(allow_non_fake_inputs=True) as mode: yield mode

class GradDeviceError(RuntimeError): pass

def _check(g, meta, node, i):
    "What the C++ engine's `validate_outputs` does: device checked (CPU scalars excepted), shape summed, dtype cast"
    if g is None: return None
    if g.device != meta.device and not (g.device.type == 'cpu' and g.dim() == 0):
        raise GradDeviceError(f"{node.name()}: gradient {i} is on {g.device}, its input on {meta.device}")
    if tuple(g.shape) != tuple(meta.shape): g = g.sum_to_size(tuple(meta.shape))
    return g.to(meta.dtype) if g.dtype != meta.dtype else g

def backward(loss:torch.Tensor, grad:torch.Tensor|None=None):
    "`loss.backward()` by calling each autograd node from Python in topological order (accumulates into the leaves' `.grad`)"
    root = loss.grad_fn
    if root is None: raise ValueError("backward: the tensor has no grad_fn")
    order, seen, stack = [], set(), [(root, False)]
    while stack:   # iterative DFS: post-order, reversed = topological
        f, done = stack.pop()
        if done: order.append(f); continue
        if f in seen: continue
        seen.add(f); stack.append((f, True))
        stack.extend((nf, False) for nf, _ in f.next_functions if nf is not None and nf not in seen)
    pending = {root: [torch.ones_like(loss) if grad is None else grad]}
    for f in reversed(order):
        gin = pending.pop(f, None)
        if gin is None or all(g is None for g in gin): continue
        gin = [_check(g, m, f, i) for i, (g, m) in enumerate(zip(gin, f._input_metadata))]
        if type(f).__name__ == 'AccumulateGrad':
            v = f.variable
            v.grad = gin[0] if v.grad is None else v.grad + gin[0]
            continue
        outs = f.apply(*gin) if hasattr(f, "apply") else f(*gin)   # a Python `Function`'s node, or a C++ one
        if not isinstance(outs, (tuple, list)): outs = (outs,)
        for (nf, idx), g in zip(f.next_functions, outs):
            if nf is None or g is None: continue
            cur = pending.setdefault(nf, [None] * len(nf._input_metadata))
            cur[idx] = g if cur[idx] is None else cur[idx] + g
