"""The runner end to end, in subprocesses as a user runs it: a run killed with SIGKILL, or stopped with SIGINT, and
resumed ends where an uninterrupted run ends; a bad checkpoint is refused; resume keeps the run's settings; a foreign
folder is never replaced; two gloo processes train as one; --help answers at once; the notebook's parameters are the settings."""
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


def _interrupt_then_resume(uninterrupted, run, sig):
    "Start a run, send `sig` between the 2nd checkpoint and the end, resume it: the result equals the uninterrupted run."
    p = subprocess.Popen([sys.executable, '-m', 'mlo_mae.train', '--out_dir', str(run), *ARGS],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    log = run / 'metrics.jsonl'
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2 * EVERY + 1: break
        time.sleep(0.02)
    assert p.poll() is None, 'the run ended before it could be interrupted'
    os.kill(p.pid, sig)
    err = p.communicate()[1]
    stopped_at = len(log.read_text().splitlines())
    assert stopped_at < STEPS
    r = cli('--out_dir', str(run), '--resume', *ARGS)
    assert r.returncode == 0, r.stderr[-2000:]
    assert metrics(run) == metrics(uninterrupted)
    a, b = weights(uninterrupted), weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fa, fb = (json.loads((d / 'final.json').read_text()) for d in (uninterrupted, run))
    assert fa['stage2_test_accuracy'] == fb['stage2_test_accuracy']
    return p.returncode, err, stopped_at


def test_sigkill_then_resume_matches_uninterrupted(uninterrupted, tmp_path):
    _interrupt_then_resume(uninterrupted, tmp_path / 'b', signal.SIGKILL)


def test_sigint_checkpoints_and_says_so_in_one_line(uninterrupted, tmp_path):
    run = tmp_path / 'i'
    rc, err, stopped_at = _interrupt_then_resume(uninterrupted, run, signal.SIGINT)
    assert rc == 130 and len(err.strip().splitlines()) == 1 and 'interrupted: SIGINT' in err and 'resume' in err, err


def test_sigterm_checkpoint_holds_the_iteration_it_stopped_at(tmp_path):
    run = tmp_path / 't'
    p = subprocess.Popen([sys.executable, '-m', 'mlo_mae.train', '--out_dir', str(run), *ARGS, '--max_steps', '1000',
                          '--epochs', '1000', '--checkpoint_every', '1000'], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, env=ENV)
    log = run / 'metrics.jsonl'
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 3): time.sleep(0.02)
    os.kill(p.pid, signal.SIGTERM)
    err = p.communicate()[1]
    assert p.returncode == 143 and "interrupted: SIGTERM" in err, err  # 128 + 15, as the shell reports a SIGTERM
    ck = torch.load(run / 'checkpoint.pt', weights_only=True)   # no step-based checkpoint was due: the signal wrote it
    assert ck['solver']['iteration'] == len(log.read_text().splitlines()) >= 3


def test_resume_with_only_the_folder_keeps_every_setting(tmp_path):
    run = tmp_path / 'r'
    r = cli('--out_dir', str(run), '--mask_ratio', '0.9', '--max_steps', '2', '--lr_t', '0.002', '--progress', 'false',
            '--num_workers', '0')
    assert r.returncode == 0, r.stderr[-2000:]
    r = cli('--out_dir', str(run), '--resume', '--max_steps', '3')
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.loads((run / 'config.json').read_text())
    assert (cfg['mask_ratio'], cfg['lr_t'], cfg['max_steps']) == (0.9, 0.002, 3)
    assert [json.loads(l)['mask_ratio'] for l in (run / 'metrics.jsonl').read_text().splitlines()] == [0.9] * 3
    r = cli('--out_dir', str(run), '--resume', '--max_steps', '4', '--mask_ratio', '0.75')
    assert r.returncode != 0 and 'mask_ratio=0.9 there, 0.75 now' in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_overwrite_replaces_only_a_run_folder(tmp_path):
    mine = tmp_path / 'mine'
    mine.mkdir(); (mine / 'thesis.tex').write_text('years of work')
    r = cli('--out_dir', str(mine), '--overwrite', '--max_steps', '1')
    assert r.returncode != 0 and 'not a run' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (mine / 'thesis.tex').read_text() == 'years of work'


def test_a_ratio_that_leaves_nothing_to_reconstruct_is_refused(tmp_path):
    r = cli('--out_dir', str(tmp_path / 'z'), '--mask_ratio', '0')
    assert r.returncode != 0 and 'nothing is left to reconstruct' in r.stderr and not (tmp_path / 'z').exists()


def test_help_answers_at_once_and_lists_every_setting():
    from dataclasses import fields
    from mlo_mae.config import TrainConfig
    t = time.perf_counter()
    r = cli('--help')
    took = time.perf_counter() - t
    assert r.returncode == 0 and took < 2.0, took
    for f in fields(TrainConfig): assert f'--{f.name}' in r.stdout, f.name
    assert '--method NAME' in r.stdout and 'umae' in r.stdout
    r = cli('--method', 'umae', '--help')            # a method's own settings: flags of that method
    assert r.returncode == 0 and '--umae_weight' in r.stdout and '(default: 0.01)' in r.stdout, r.stdout[-500:]


def test_notebook_parameters_are_the_settings():
    "nbs/10_train.ipynb's parameters cell is every TrainConfig setting and every method's option, its default and its help, as declared (nothing else)."
    from dataclasses import fields
    from mlo_mae.config import METHODS, TrainConfig, MLOConfig
    nb = json.loads((Path(__file__).resolve().parents[1] / 'nbs' / '10_train.ipynb').read_text())
    cell = next(c for c in nb['cells'] if 'parameters' in c['metadata'].get('tags', []))
    own = [f for f in fields(TrainConfig) if f.name not in MLOConfig.__dataclass_fields__]
    method = [f for f in fields(TrainConfig) if f.name in MLOConfig.__dataclass_fields__ and f.name != 'options']
    line = lambda f: f"{f.name} = {f.default!r}  # {f.metadata['help']}"
    options = [(k, f, n) for n, cls in METHODS.items() for k, f in cls.options.items()]
    want = ['# fmt: off', '# the run (04_config)', *map(line, own), "# the method's settings (04_config, 05_mlo)", *map(line, method),
            "# each method's own settings (its options)", *(f"{k} = {f.default!r}  # {n}: {f.metadata['help']}" for k, f, n in options)]
    assert ''.join(cell['source']).splitlines() == want
    from papermill.translators import PythonTranslator   # papermill reads every one (a '=' in a help text once hid one)
    names = [f.name for f in own + method] + [k for k, _, _ in options]
    assert [p.name for p in PythonTranslator.inspect({'source': ''.join(cell['source'])})] == names


def test_existing_folder_is_never_overwritten(uninterrupted):
    before = (uninterrupted / 'final.json').read_text()
    r = cli('--out_dir', str(uninterrupted), *ARGS)
    assert r.returncode != 0 and 'exists: pass --resume to continue it or --overwrite' in r.stderr   # the CLI's words
    assert (uninterrupted / 'final.json').read_text() == before


def test_corrupt_or_mismatched_checkpoint_is_refused(uninterrupted, tmp_path):
    run = tmp_path / 'c'
    run.mkdir()
    for f in ('config.json', 'checkpoint.pt'): (run / f).write_bytes((uninterrupted / f).read_bytes())
    r = cli('--out_dir', str(run), '--resume', *ARGS, '--method', 'mae')
    assert r.returncode != 0 and "method='mlo_mae' there, 'mae' now" in r.stderr
    r = cli('--out_dir', str(run), '--resume', *ARGS, '--model', 'vit_tiny_patch2_32')
    assert r.returncode != 0 and 'settings differ' in r.stderr and 'model=' in r.stderr
    cfg = json.loads((run / 'config.json').read_text()); cfg['mask_ratio'] = 0.5      # a config.json edited by hand
    (run / 'config.json').write_text(json.dumps(cfg))
    r = cli('--out_dir', str(run), '--resume', *ARGS)
    assert r.returncode != 0 and 'made with other settings' in r.stderr and 'mask_ratio' in r.stderr
    cfg['mask_ratio'] = 0.75; (run / 'config.json').write_text(json.dumps(cfg))
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
    # weights: AdamW moves every entry by at most about lr per step whatever its gradient (m/sqrt(v) is 1 at the first
    # step), so an entry whose gradient is at rounding level (the attention key bias has an exactly zero gradient;
    # T's weights get a difference quotient of float32 gradients) may differ by up to 2 * lr * steps between two
    # summation orders. That bounds every entry; a real divergence shows as many entries off, not a few.
    a, b = weights(single), weights(ddp)
    bound = 2 * 1e-3 * 3   # 2 x lr_mae (= lr_head = lr_t, the smoke preset) x 3 steps
    total = off = 0
    for k in a:
        d = (a[k].double() - b[k].double()).abs()
        assert d.max() <= bound, (k, float(d.max()))
        total += d.numel(); off += int((d > 1e-5).sum())
    assert off <= 0.01 * total, (off, total)   # measured: 0.1% (1,193 of 1.13M, mostly T's first layer); a divergence moves most


def test_test_split_is_read_only_after_training(tmp_path, monkeypatch):
    "On a CIFAR-10-layout folder: the test split is loaded only after the last training iteration (its files are only checked before)."
    import mlo_mae.data as data
    import mlo_mae.train as tr
    from mlo_mae.mlo import MLOSolver
    data.dataset_spec('cifar10').write_example(tmp_path, images_per_file=40)
    events, load, step = [], tr.load_dataset, MLOSolver.step
    monkeypatch.setattr(tr, 'load_dataset', lambda *a, **k: (events.append(('load', tuple(k.get('splits', ())))), load(*a, **k))[1])
    monkeypatch.setattr(MLOSolver, 'step', lambda self, *a, **k: (events.append(('step', None)), step(self, *a, **k))[1])
    summary = tr.train(dataset='cifar10', data_dir=str(tmp_path), preset='smoke', batch_size=8, max_steps=3,
                       out_dir=str(tmp_path / 'run'), progress=False, num_workers=0, device='cpu')
    steps = [i for i, e in enumerate(events) if e[0] == 'step']
    test_loads = [i for i, e in enumerate(events) if e[0] == 'load' and 'test' in e[1]]
    assert len(steps) == 3 and test_loads and min(test_loads) > max(steps)
    assert 0 <= summary['stage2_test_accuracy'] <= 100


def test_a_broken_test_batch_fails_before_training(tmp_path):
    "A truncated test_batch is named at once, before any folder is made (not after hours of training)."
    import mlo_mae.data as data
    folder = data.dataset_spec('cifar10').write_example(tmp_path, images_per_file=40) / 'cifar-10-batches-py'
    (folder / 'test_batch').write_bytes((folder / 'test_batch').read_bytes()[:500])
    r = cli('--dataset', 'cifar10', '--data_dir', str(tmp_path), '--preset', 'smoke', '--batch_size', '8',
            '--out_dir', str(tmp_path / 'run'), '--max_steps', '2')
    assert r.returncode != 0 and 'test_batch' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('name, value, says', [('mask_rato', '0.5', 'mask_rato is not a setting: did you mean mask_ratio?'),
                                               ('mask_ratio', 'high', "parameter mask_ratio: invalid float value: 'high'")])
def test_a_bad_papermill_parameter_is_refused_before_any_work(tmp_path, name, value, says):
    "papermill -p with a typo or a wrongly typed value: one line naming it, no run folder (before, a typo trained at 0.75)."
    nb = Path(__file__).resolve().parents[1] / 'nbs' / '10_train.ipynb'
    r = subprocess.run([sys.executable, '-m', 'papermill', str(nb), str(tmp_path / 'out.ipynb'), '-p', name, value,
                        '-p', 'out_dir', str(tmp_path / 'run'), '--cwd', str(tmp_path)], capture_output=True, text=True, env=ENV)
    assert r.returncode != 0 and says in r.stderr + r.stdout, r.stderr[-2000:]
    assert not (tmp_path / 'run').exists()


def test_a_bad_flag_is_refused_before_torch_and_leaves_nothing(tmp_path):
    "A setting's own rule is checked before torch is imported (measured 0.3 s, was 3-10 s), and --lr_mae inf leaves no folder."
    t = time.perf_counter()
    r = cli('--out_dir', str(tmp_path / 'z'), '--lr_mae', 'inf')
    took = time.perf_counter() - t
    assert r.returncode != 0 and 'lr_mae must be a finite number > 0' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert took < 2.0 and not (tmp_path / 'z').exists(), took


def test_two_runs_started_together_cannot_share_a_folder(tmp_path):
    "Seeds 0 and 1 into one --out_dir at once: exactly one trains, the other is refused in one line naming the holder's PID."
    run = tmp_path / 'shared'
    ps = [subprocess.Popen([sys.executable, '-m', 'mlo_mae.train', '--out_dir', str(run), '--seed', str(s), '--max_steps', '4',
                            '--checkpoint_every', '2', '--progress', 'false', '--num_workers', '0', '--device', 'cpu'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for s in (0, 1)]
    errs = [p.communicate()[1] for p in ps]
    ok = [p.returncode == 0 for p in ps]
    assert sorted(ok) == [False, True], errs
    winner, loser = ok.index(True), ok.index(False)
    err = errs[loser].strip()
    assert len(err.splitlines()) == 1 and (f'in use by process {ps[winner].pid}' in err or 'exists: pass --resume' in err), err
    # the folder is the winner's alone: its seed in config.json and in the checkpoint, its 4 iterations logged
    cfg = json.loads((run / 'config.json').read_text())
    ck = torch.load(run / 'checkpoint.pt', weights_only=True)
    assert cfg['seed'] == ck['config']['seed'] == winner and ck['solver']['iteration'] == 4
    assert [json.loads(l)['step'] for l in (run / 'metrics.jsonl').read_text().splitlines()] == [1, 2, 3, 4]
    assert json.loads((run / 'final.json').read_text())['steps'] == 4


@pytest.mark.parametrize('files', [{'config.json': '{"lr": 0.1}'},
                                   {'config.json': '{"lr": 0.1}', 'metrics.jsonl': '{"step": 1, "loss": 2.0}\n'}])
def test_a_folder_this_package_did_not_make_is_never_written_nor_deleted(tmp_path, files):
    "A user's own config.json alone (it was overwritten), or another tool's config.json + metrics.jsonl (deleted under --overwrite): refused."
    other = tmp_path / 'other'
    other.mkdir()
    for k, v in files.items(): (other / k).write_text(v)
    for flags in (['--overwrite'],):   # a plain start and --resume: nbs/06_runs (plan_run) tests them without a process each
        r = cli('--out_dir', str(other), '--max_steps', '1', '--progress', 'false', *flags)
        assert r.returncode != 0 and 'never written into nor deleted' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert {p.name: p.read_text() for p in other.iterdir()} == files and not (tmp_path / 'other.replaced').exists()


# a file-size limit the checkpoint (13 MB) exceeds and config.json, metrics.jsonl do not; SIGXFSZ ignored: write fails
LIMITED = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
           "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY)); "
           "sys.argv[0] = 'mlo_mae.train'; runpy.run_module('mlo_mae.train', run_name='__main__', alter_sys=True)")


def limited_cli(*args):
    return subprocess.run([sys.executable, '-c', LIMITED, *args], capture_output=True, text=True, env=ENV)


def test_a_first_checkpoint_that_cannot_be_written_leaves_no_folder_and_the_same_command_runs(tmp_path):
    run = tmp_path / 'w'
    r = limited_cli('--out_dir', str(run), *ARGS)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(err) == 1, r.stderr[-2000:]
    assert 'no checkpoint of this run was written yet' in err[0] and 'run the same command again' in err[0], err
    assert 'intact' not in err[0] and not run.exists(), (err, run.exists() and sorted(p.name for p in run.iterdir()))
    r = cli('--out_dir', str(run), *ARGS)
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_failed_replacement_puts_the_replaced_run_back(uninterrupted, tmp_path):
    import shutil
    run = tmp_path / 'r'
    shutil.copytree(uninterrupted, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.name != 'run.lock'}
    r = limited_cli('--out_dir', str(run), *ARGS, '--overwrite', '--seed', '1')
    assert r.returncode == 1 and 'no checkpoint of this run was written yet' in r.stderr, r.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name != 'run.lock'} == before
    assert not (tmp_path / 'r.replaced').exists()


def test_a_checkpoint_that_cannot_be_written_names_the_one_kept(uninterrupted, tmp_path):
    import shutil
    run = tmp_path / 'k'
    shutil.copytree(uninterrupted, run)
    r = limited_cli('--out_dir', str(run), '--resume', *ARGS, '--max_steps', str(STEPS + EVERY))
    err = r.stderr.strip().splitlines()  # the resume's line on the re-planned schedule, then the error
    assert r.returncode == 1 and len(err) == 2 and 're-planned' in err[0], r.stderr[-2000:]
    assert f'checkpoint of iteration {STEPS} is intact' in err[1] and f'--resume continues from {STEPS}' in err[1], err
    assert torch.load(run / 'checkpoint.pt', weights_only=True)['solver']['iteration'] == STEPS


def test_resume_with_a_larger_max_steps_extends_a_finished_run_and_says_the_schedule_is_replanned(uninterrupted, tmp_path):
    import shutil
    run = tmp_path / 'e'
    shutil.copytree(uninterrupted, run)
    r = cli('--out_dir', str(run), '--resume', *ARGS)     # nothing to extend: refused in one line
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and 'nothing to extend' in r.stderr, r.stderr
    r = cli('--out_dir', str(run), '--resume', *ARGS, '--max_steps', str(STEPS + 2))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)['steps'] == STEPS + 2 and len(metrics(run)) == STEPS + 2
    assert f'now {STEPS + 2} iterations long (was {STEPS})' in r.stderr and 're-planned' in r.stderr, r.stderr


def test_a_truncated_jpeg_is_named_before_the_run_folder_exists(tmp_path):
    "A JPEG cut to half its bytes passes a header check; the full decode before training names it, and no folder is made."
    import numpy as np
    from PIL import Image
    import mlo_mae.train as tr
    from mlo_mae.data import dataset_spec
    root = dataset_spec('imagefolder').write_example(tmp_path / 'data', classes=('a', 'b'), per_class=12, size=28)
    bad = root / 'train' / 'a' / 'photo.jpg'
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (28, 28, 3), dtype=np.uint8)).save(bad, quality=95)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with Image.open(bad) as im:
        im.verify()   # the header alone looks fine: only decoding finds it
    out = tmp_path / 'run'
    with pytest.raises(ValueError) as e:
        tr.train(dataset='imagefolder', data_dir=str(root), preset='smoke', batch_size=4, max_steps=2,
                 out_dir=str(out), progress=False, num_workers=0, device='cpu')
    msg = str(e.value)
    assert str(bad) in msg and 'not a readable image' in msg and '\n' not in msg, msg
    assert not out.exists()
