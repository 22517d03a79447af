"""`bsgate_train` under `torchrun` on CPUs: two gloo processes, one thread each, on a tiny CIFAR folder.

What the maths says must agree, and is checked here:
- the data: each rank reads its block of every global batch of 2 × bs (`bsgate.distrib.shard_idxs`; tested against a
  single loader of bs 2b in nbs/10d_distrib.ipynb), so one epoch has as many steps as a single process with bs 2b;
- the outputs: rank 0 writes the run folder, once, and prints one line an epoch; config.json records the per-process bs;
- exact resume: a 2-process run killed (`kill -9` of rank 0) in its second epoch and resumed with `--resume` ends with
  the uninterrupted 2-process run's model.pth, bit for bit (gloo's sum of two ranks is exact and order-free);
- the divergence stop reaches every rank: both exit, torchrun fails, rank 0 names the batch, nothing final is written.

What is *not* equal, and why: against a single process with bs 2b the weights differ, because each rank's BatchNorm
normalises over its own b images (CPUs have no SyncBatchNorm) and its gate noise and crops come from its own
generators; on 80 random images even the validation losses of two such runs differ by 2× (BatchNorm's running
statistics), so no loss tolerance is implied. The check there is the schedule: the same epochs and the same number of
optimizer steps (one a global batch).
"""
import json, os, signal, subprocess, sys
from pathlib import Path
import pytest
import torch
from conftest import fake_cifar

ENV = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
ENV.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', IN_TEST='1')
ENV.pop('BSGATE_DEBUG', None)
EXE = Path(sys.executable).parent / 'bsgate_train'
DRIVER = r'''
import os, signal, sys
import bsgate.train as T
if os.environ.get('BSGATE_TEST_KILL') and os.environ.get('RANK') == '0':   # kill -9 rank 0 at the 2nd batch of epoch 2
    after_loss = T.StopOnNaN.after_loss
    def killed(self):
        if self.training and self.epoch == 1 and self.iter == 1: os.kill(os.getpid(), signal.SIGKILL)
        return after_loss(self)
    T.StopOnNaN.after_loss = killed
sys.argv = ['bsgate_train'] + sys.argv[1:]
T.train_main()
'''


def _torchrun(args, extra_env=None, n=2, script=None):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(n),
           str(script or EXE), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**ENV, **(extra_env or {})})


def _single(args):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=600, env=ENV)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('ddp')
    data = fake_cifar(root / 'cifar')
    common = ['cifar10_r20', '--data', data, '--epochs', 2, '--quiet', '--bn_recal', 5]
    two = _torchrun(common + ['--bs', 8, '--out', root / 'two'])
    one = _single(common + ['--bs', 16, '--out', root / 'one'])
    return dict(root=root, data=data, common=common, two=two, one=one)


def test_two_processes_train_and_rank0_writes(runs):
    r, out = runs['two'], runs['root'] / 'two'
    assert r.returncode == 0, r.stderr[-4000:]
    assert sorted(o.name for o in out.iterdir()) == sorted(['checkpoint.pth', 'checkpoint.prev.pth', 'config.json',
                                                     'history.json', 'metrics.json', 'model.pth'])
    assert json.loads((out / 'config.json').read_text())['bs'] == 8            # per process, as given
    lines = [l for l in r.stdout.splitlines() if l.startswith('epoch ')]
    assert [l.split(':')[0] for l in lines] == ['epoch 1/2', 'epoch 2/2'], r.stdout   # rank 0 prints, once
    m = json.loads((out / 'metrics.json').read_text())
    assert 0 <= m['accuracy'] <= 1 and 0 < m['mac_frac'] < 1.01 and m['bn_recal']['batches'] >= 1, m


def test_agrees_with_one_process_of_the_global_batch(runs):
    assert runs['one'].returncode == 0, runs['one'].stderr[-4000:]
    h2 = json.loads((runs['root'] / 'two' / 'history.json').read_text())
    h1 = json.loads((runs['root'] / 'one' / 'history.json').read_text())
    assert [o['epoch'] for o in h2] == [o['epoch'] for o in h1] == [0, 1]
    ck2 = torch.load(runs['root'] / 'two' / 'checkpoint.pth', weights_only=False)
    ck1 = torch.load(runs['root'] / 'one' / 'checkpoint.pth', weights_only=False)
    # the same number of optimizer steps: one per global batch (fastai's optimizers keep no step count: compare counts
    # of the smoothed loss, which sees one value a step)
    assert ck2['smooth']['count'] == ck1['smooth']['count'], (ck2['smooth'], ck1['smooth'])


def test_resume_after_kill_is_exact(runs):
    assert runs['two'].returncode == 0, runs['two'].stderr[-4000:]
    root, out = runs['root'], runs['root'] / 'killed'
    driver = root / 'driver.py'; driver.write_text(DRIVER)
    r = _torchrun(runs['common'] + ['--bs', 8, '--out', out], {'BSGATE_TEST_KILL': '1'}, script=driver)
    assert r.returncode != 0 and not (out / 'model.pth').exists(), r.stderr[-3000:]
    assert torch.load(out / 'checkpoint.pth', weights_only=False)['epoch'] == 1
    r = _torchrun(['cifar10_r20', '--data', runs['data'], '--quiet', '--out', out, '--resume'])
    assert r.returncode == 0, r.stderr[-4000:]
    w1, w2 = torch.load(root / 'two' / 'model.pth'), torch.load(out / 'model.pth')
    for k in w1: assert torch.equal(w1[k], w2[k]), k
    assert json.loads((out / 'metrics.json').read_text()) == json.loads((root / 'two' / 'metrics.json').read_text())


def test_divergence_stops_every_rank(runs):
    out = runs['root'] / 'diverged'
    r = _torchrun(['cifar10_r20', '--data', runs['data'], '--epochs', 1, '--bs', 8, '--lr', 1e30, '--quiet', '--out', out])
    assert r.returncode != 0
    said = [l for l in r.stderr.splitlines() if 'bsgate_train: error: training diverged' in l]
    assert len(said) == 1, r.stderr[-3000:]                                      # rank 0 says it, once
    assert not (out / 'model.pth').exists() and not (out / 'metrics.json').exists()
