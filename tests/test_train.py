"""The runner end to end, in subprocesses as a user runs it: a run killed with SIGKILL and resumed ends
where an uninterrupted run ends; a bad checkpoint is refused; two gloo processes train as one."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch

STEPS, EVERY = 10, 3
ARGS = ['--max_steps', str(STEPS), '--checkpoint_every', str(EVERY), '--progress', 'false', '--num_workers', '0',
        '--device', 'cpu']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}  # one thread: bit-identical reductions run to run


def cli(*args, **kw):
    return subprocess.run([sys.executable, '-m', 'mlo_mae.train', *args], capture_output=True, text=True, env=ENV, **kw)


def metrics(run):
    "Per-step metrics without the timing fields (those differ run to run)."
    out = []
    for line in (run / 'metrics.jsonl').read_text().splitlines():
        d = json.loads(line)
        out.append({k: v for k, v in d.items() if k not in ('images_per_s', 'elapsed_s')})
    return out


def weights(run):
    return torch.load(run / 'checkpoint.pt', weights_only=True)['model']


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp('runs') / 'a'
    r = cli('--out_dir', str(run), *ARGS)
    assert r.returncode == 0, r.stderr[-2000:]
    return run


def test_sigkill_then_resume_matches_uninterrupted(uninterrupted, tmp_path):
    run = tmp_path / 'b'
    p = subprocess.Popen([sys.executable, '-m', 'mlo_mae.train', '--out_dir', str(run), *ARGS],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    log = run / 'metrics.jsonl'
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:  # kill between the 2nd checkpoint and the end
        if log.exists() and len(log.read_text().splitlines()) >= 2 * EVERY + 1: break
        time.sleep(0.02)
    assert p.poll() is None, 'the run ended before it could be killed'
    os.kill(p.pid, signal.SIGKILL); p.wait()
    killed_at = len(log.read_text().splitlines())
    assert killed_at < STEPS
    r = cli('--out_dir', str(run), '--resume', *ARGS)
    assert r.returncode == 0, r.stderr[-2000:]
    assert metrics(run) == metrics(uninterrupted)
    a, b = weights(uninterrupted), weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fa, fb = (json.loads((d / 'final.json').read_text()) for d in (uninterrupted, run))
    assert fa['stage2_test_accuracy'] == fb['stage2_test_accuracy']


def test_existing_folder_is_never_overwritten(uninterrupted):
    before = (uninterrupted / 'final.json').read_text()
    r = cli('--out_dir', str(uninterrupted), *ARGS)
    assert r.returncode != 0 and 'exists: pass resume=True' in r.stderr
    assert (uninterrupted / 'final.json').read_text() == before


def test_corrupt_or_mismatched_checkpoint_is_refused(uninterrupted, tmp_path):
    run = tmp_path / 'c'
    run.mkdir()
    for f in ('config.json', 'checkpoint.pt'): (run / f).write_bytes((uninterrupted / f).read_bytes())
    r = cli('--out_dir', str(run), '--resume', *ARGS, '--method', 'mae')
    assert r.returncode != 0 and 'made with other settings' in r.stderr and 'method' in r.stderr
    r = cli('--out_dir', str(run), '--resume', *ARGS, '--model', 'vit_tiny_patch2_32')
    assert r.returncode != 0 and 'made with other settings' in r.stderr
    ck = run / 'checkpoint.pt'
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    r = cli('--out_dir', str(run), '--resume', *ARGS)
    assert r.returncode != 0 and 'corrupt or truncated' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1  # one line, no traceback


def test_two_gloo_processes_train_as_one(tmp_path):
    common = ['--max_steps', '3', '--batch_size', '16', '--progress', 'false', '--num_workers', '0', '--device', 'cpu']
    single, ddp = tmp_path / 'single', tmp_path / 'ddp'
    r = cli('--out_dir', str(single), *common)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                        '-m', 'mlo_mae.train', '--out_dir', str(ddp), *common], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((ddp / 'final.json').read_text())
    assert summary['world_size'] == 2 and summary['ranks_in_sync']
    # the logged losses (averaged over ranks) and the hypergradients (reduced inside) are the global batch's
    for s, d in zip(metrics(single), metrics(ddp)):
        for k, tol in (('rec_loss', 1e-4), ('tr_loss', 1e-4), ('prob_mean', 1e-4), ('hypergrad_norm', 1e-3)):
            # the hypergradient, a difference quotient of float32 gradients, carries the weights' float noise (below)
            assert abs(s[k] - d[k]) <= tol * abs(s[k]), (s['step'], k, s[k], d[k])
    # weights: AdamW divides each gradient by its own running scale, so entries whose gradient is at rounding level
    # (the attention key bias has an exactly zero gradient: softmax ignores a shift) take noise-sized steps of up to
    # lr = 1e-3; everything else agrees far below one step
    a, b = weights(single), weights(ddp)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-4), (k, (a[k] - b[k]).abs().max())
    assert sum(int((a[k] - b[k]).abs().max() > 1e-6) for k in a) <= 8


def test_test_split_is_read_only_after_training(tmp_path, monkeypatch):
    "On a CIFAR-10-layout folder: every read of test_batch comes after the last training iteration."
    import mlo_mae.data as data
    from mlo_mae.mlo import MLOSolver
    from mlo_mae.train import train
    data.write_cifar_folder(tmp_path, 'cifar10', images_per_file=40)
    events, unpickle, step = [], data._unpickle, MLOSolver.step
    monkeypatch.setattr(data, '_unpickle', lambda p: (events.append(('read', Path(p).name)), unpickle(p))[1])
    monkeypatch.setattr(MLOSolver, 'step', lambda self, *a, **k: (events.append(('step', None)), step(self, *a, **k))[1])
    summary = train(dataset='cifar10', data_dir=str(tmp_path), preset='smoke', batch_size=8, max_steps=3,
                    out_dir=str(tmp_path / 'run'), progress=False, num_workers=0, device='cpu')
    steps = [i for i, e in enumerate(events) if e[0] == 'step']
    test_reads = [i for i, e in enumerate(events) if e == ('read', 'test_batch')]
    assert len(steps) == 3 and test_reads and min(test_reads) > max(steps)
    assert 0 <= summary['stage2_test_accuracy'] <= 100
