"""Faults that need a process of their own: `kill -9` at chosen moments of `bsgate_train`, SIGINT/SIGTERM in
`bsgate_train` and `bsgate_eval`, and two runs into one folder at once.

Each fault is injected, not timed: a small driver script patches one `bsgate.train` (or `bsgate.resume`) function so
that the process kills or signals itself at that exact moment (in the BatchNorm recalibration, half-way through writing a checkpoint, at a
given batch, while a checkpoint is saved), then runs the console script's main as `bsgate_train`/`bsgate_eval` do.
What the fault leaves is then resumed here and compared, bit for bit, with an uninterrupted run of the same command
(`nbs/11_train.ipynb` checks the same behaviours in-process, with exceptions standing in for the kills).
"""
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
from conftest import fake_cifar
import torch

DRIVER = r'''
import os, sys, signal, time
from pathlib import Path
import bsgate.train as T, bsgate.resume as R
fault, cmd, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
me = os.getpid()
def kill(): os.kill(me, signal.SIGKILL)
if fault == 'kill_in_recal':                       # kill -9 in the final phase, after the last epoch's checkpoint
    import bsgate.callbacks as C
    recal = C.recalibrate_bn
    def killed(*a, **k): kill(); return recal(*a, **k)
    C.recalibrate_bn = T.recalibrate_bn = killed    # what `train` calls, and what `Learner.recalibrate_bn` calls
elif fault == 'kill_in_ckpt':                      # kill -9 half-way through writing the second checkpoint
    save = T.torch_save
    def half(obj, path):
        if isinstance(obj, dict) and obj.get('epoch') == 2: Path(path).write_bytes(b'half a checkpoint'); kill()
        return save(obj, path)
    R.torch_save = half                          # where `Checkpoint` (bsgate.resume) finds it
elif fault in ('sigint_in_epoch', 'sigterm_in_epoch'):   # the signal at the second batch of the second epoch
    s = signal.SIGINT if fault == 'sigint_in_epoch' else signal.SIGTERM
    after_loss = T.StopOnNaN.after_loss
    def signalled(self):
        if self.training and self.epoch == 1 and self.iter == 1: os.kill(me, s)
        return after_loss(self)
    T.StopOnNaN.after_loss = signalled
elif fault == 'sigint_in_save':                    # SIGINT while the first checkpoint is being written
    save = T.torch_save
    def signalled(obj, path):
        if isinstance(obj, dict) and obj.get('epoch') == 1: os.kill(me, signal.SIGINT)
        return save(obj, path)
    R.torch_save = signalled
elif fault == 'sigint_in_eval':                    # Ctrl-C while bsgate_eval measures
    metrics = T._final_metrics
    def signalled(*a, **k): os.kill(me, signal.SIGINT); return metrics(*a, **k)
    T._final_metrics = signalled
elif fault == 'wait':                              # hold the run (and its folder's lock) until the file $BSGATE_TEST_GO exists
    go, load = Path(os.environ['BSGATE_TEST_GO']), T.preset_dls
    def waiting(*a, **k):
        Path(str(go) + '.started').touch()
        while not go.exists(): time.sleep(0.05)
        return load(*a, **k)
    T.preset_dls = waiting
sys.argv = [cmd] + argv
(T.train_main if cmd == 'bsgate_train' else T.evaluate_main)()
'''

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'IN_TEST': '1'}
ENV.pop('BSGATE_DEBUG', None)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    "The data, the driver, and the uninterrupted run every faulty one is compared with (one thread, as the drivers)"
    import bsgate.train as T
    root = tmp_path_factory.mktemp('faults')
    data = fake_cifar(root / 'cifar')
    driver = root / 'driver.py'; driver.write_text(DRIVER)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = root / 'ref'
        T.train('cifar10_r20', data=str(data), epochs=2, bs=32, quiet=True, out=str(ref))
        yield dict(T=T, root=root, data=data, driver=driver, ref=ref)
    finally: torch.set_num_threads(threads)


def _run(s, fault, cmd, *argv, wait=True, **env):
    args, env = [sys.executable, str(s['driver']), fault, cmd, *map(str, argv)], {**ENV, **env}
    if not wait: return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


def _train(s, fault, out, *extra, **kw):
    return _run(s, fault, 'bsgate_train', 'cifar10_r20', '--data', s['data'], '--epochs', 2, '--bs', 32, '--quiet', '--out', out, *extra, **kw)


def _resume(s, out):
    "`--resume` in this process, on one thread as the reference"
    threads = torch.get_num_threads(); torch.set_num_threads(1)
    try: return s['T'].train('cifar10_r20', data=str(s['data']), bs=None, quiet=True, out=str(out), resume=True)
    finally: torch.set_num_threads(threads)


def _same_run(out, ref):
    "The final outputs of `out` are those of `ref`, bit for bit (BatchNorm buffers included), and so is the history"
    w, r = torch.load(out / 'model.pth'), torch.load(ref / 'model.pth')
    assert list(w) == list(r)
    diff = [k for k in r if not torch.equal(w[k], r[k])]
    assert not diff, f"{len(diff)} tensors differ from the uninterrupted run's: {diff[:5]}"
    for f in ('metrics.json', 'history.json'):
        assert json.loads((out / f).read_text()) == json.loads((ref / f).read_text()), f


def _one_line(stderr: str) -> str:
    "The script's own output on stderr: one line, no traceback"
    assert 'Traceback' not in stderr, stderr[-3000:]
    lines = [l for l in stderr.strip().splitlines() if l.startswith('bsgate_')]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_kill9_in_the_final_phase_resumes_to_the_same_model(setup):
    s = setup; out = s['root'] / 'kill_final'
    r = _train(s, 'kill_in_recal', out)
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    left = sorted(o.name for o in out.iterdir())
    assert [n for n in left if n != '.lock'] == ['checkpoint.prev.pth', 'checkpoint.pth', 'config.json', 'history.json'], left
    assert torch.load(out / 'checkpoint.pth', weights_only=False)['epoch'] == 2   # the kill came after the last epoch's checkpoint
    _resume(s, out)
    _same_run(out, s['ref'])
    assert '.lock' in left and not (out / '.lock').exists()   # the dead process's lock file: free (the kernel dropped the lock), then removed


def test_kill9_during_a_checkpoint_save_leaves_a_temporary_file_the_next_start_removes(setup):
    s = setup; out = s['root'] / 'kill_save'
    r = _train(s, 'kill_in_ckpt', out)
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    tmp = sorted(o.name for o in out.glob('.checkpoint.pth.*.tmp'))
    assert len(tmp) == 1, sorted(o.name for o in out.iterdir())
    assert torch.load(out / 'checkpoint.pth', weights_only=False)['epoch'] == 1
    _resume(s, out)
    assert not list(out.glob('.*.tmp')), sorted(o.name for o in out.iterdir())
    _same_run(out, s['ref'])
    umask = os.umask(0); os.umask(umask)
    assert {oct(f.stat().st_mode & 0o777) for f in out.iterdir()} == {oct(0o666 & ~umask)}   # not mkstemp's 0600


@pytest.mark.parametrize('sig', ['sigint', 'sigterm'])
def test_a_signal_during_training_ends_with_one_line_and_resumes_exactly(setup, sig):
    s = setup; out = s['root'] / f'{sig}_epoch'
    r = _train(s, f'{sig}_in_epoch', out)
    signum = signal.SIGINT if sig == 'sigint' else signal.SIGTERM
    assert r.returncode == 128 + signum, r.stderr[-3000:]
    assert _one_line(r.stderr) == (f"bsgate_train: stopped by {signum.name}: {out / 'checkpoint.pth'} holds epochs 1-1 of 2, intact; "
                                   f"continue with: bsgate_train cifar10_r20 --out {out} --resume --data {s['data']}")
    assert torch.load(out / 'checkpoint.pth', weights_only=False)['epoch'] == 1
    assert not (out / '.lock').exists()
    _resume(s, out)
    _same_run(out, s['ref'])   # the history too: the resumed epoch's train_loss is the uninterrupted one's


def test_sigint_while_a_checkpoint_is_written_waits_for_it(setup):
    s = setup; out = s['root'] / 'sigint_save'
    r = _train(s, 'sigint_in_save', out)
    assert r.returncode == 130, r.stderr[-3000:]
    assert 'holds epochs 1-1 of 2, intact' in _one_line(r.stderr)
    assert torch.load(out / 'checkpoint.pth', weights_only=False)['epoch'] == 1
    assert len(json.loads((out / 'history.json').read_text())) == 1   # written with the checkpoint it describes
    assert sorted(o.name for o in out.iterdir()) == ['checkpoint.pth', 'config.json', 'history.json']


def test_ctrl_c_in_bsgate_eval_is_one_line(setup):
    s = setup
    r = _run(s, 'sigint_in_eval', 'bsgate_eval', '--checkpoint', s['ref'], '--data', s['data'], '--split', 'train')
    assert r.returncode == 130, r.stderr[-3000:]
    assert _one_line(r.stderr) == 'bsgate_eval: stopped by SIGINT'
    assert r.stdout == ''


def test_two_runs_into_one_folder(setup):
    s = setup; out, go = s['root'] / 'two', s['root'] / 'go'
    first = _run(s, 'wait', 'bsgate_train', 'cifar10_r20', '--data', s['data'], '--epochs', 1, '--bs', 32, '--bn_recal', 0, '--quiet', '--out', out,
                 wait=False, BSGATE_TEST_GO=str(go))
    try:
        t0 = time.time()
        while not Path(str(go) + '.started').exists():   # the first run holds the folder's lock, and waits
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.time() - t0 < 300, 'the first run did not start'
            time.sleep(0.1)
        busy = f"{out} is in use by bsgate_train (pid {first.pid} on {socket.gethostname()}, since "
        second = [_train(s, 'none', out, *extra, wait=False) for extra in ([], ['--resume'])]   # a new run, and a --resume
        for r in second:
            _, err = r.communicate(timeout=600)
            assert r.returncode == 1, err[-3000:]
            line = _one_line(err)
            assert line.startswith(f"bsgate_train: error: {busy}") and line.endswith('wait until it ends, or give another --out'), line
        assert sorted(o.name for o in out.iterdir()) == ['.lock']   # the second runs wrote nothing
        go.touch()
        _, err = first.communicate(timeout=600)
        assert first.returncode == 0, err[-3000:]
    finally:
        if first.poll() is None: first.kill()
    assert sorted(o.name for o in out.iterdir()) == ['checkpoint.pth', 'config.json', 'history.json', 'metrics.json', 'model.pth']
    assert json.loads((out / 'config.json').read_text())['epochs'] == 1
