"""A 2 x 2 study (MAE and the untrained control, two seeds) on the embedded data with the smoke preset and a few iterations:
it trains and evaluates every run, a second call computes nothing, its summary is the hand computation from its per-run CSV,
and a study interrupted in the middle of a run continues where it stopped, to the same result."""
import csv, json, math, os, signal, statistics, time

import pytest
import torch

import mlo_mae.study as study
from mlo_mae.mlo import MLOSolver
from mlo_mae.runs import cached_run_state
from mlo_mae.train import RunInterrupted

QUICK = dict(methods=('mae', 'untrained'), seeds=(0, 1), max_steps=3, protocols=('stage2', 'knn', 'linear_probe'),
             protocol_options=dict(epochs=2), threads=1, device='cpu')


@pytest.fixture(scope='module')
def done(tmp_path_factory):
    root = tmp_path_factory.mktemp('study')
    torch.set_num_threads(1)
    t = time.perf_counter()
    res = study.run_study(root, **QUICK)
    took = time.perf_counter() - t
    return root, res, took


def rows_of(root):
    return list(csv.DictReader(open(root / 'study_runs.csv')))


def test_every_run_is_trained_evaluated_and_reported(done):
    root, res, took = done
    assert took < 60, took
    assert sorted(res['done'].values()) == ['trained'] * 4
    rows = rows_of(root)
    assert [(r['method'], r['seed']) for r in rows] == [('mae', '0'), ('mae', '1'), ('untrained', '0'), ('untrained', '1')]
    for r in rows:
        run = root / 'runs' / r['run']
        fin = json.loads((run / 'final.json').read_text())
        assert r['steps'] == '3' and float(r['train_seconds']) == pytest.approx(fin['train_seconds'], abs=1e-3)
        assert float(r['stage2']) == pytest.approx(fin['stage2_test_accuracy'], abs=1e-4)   # the CSV keeps 4 decimals
        assert float(r['knn']) == pytest.approx(json.loads((run / 'eval_knn.json').read_text())['accuracy'], abs=1e-4)
        assert json.loads((run / 'eval_linear_probe.json').read_text())['epochs'] == 2
    # the untrained control never takes a Stage I step; MAE takes unroll_steps (2) per iteration
    assert {r['method']: r['stage_one_steps'] for r in rows} == {'mae': '6', 'untrained': '0'}
    assert (root / 'study.png').stat().st_size > 0


def test_a_second_call_computes_nothing(done, monkeypatch):
    root, res, _ = done
    def fail(*a, **k): raise AssertionError('a finished study must not train or evaluate again')
    monkeypatch.setattr('mlo_mae.train.train', fail)  # _run_cell imports it when it runs
    monkeypatch.setattr(study, 'evaluate_run', fail)
    again = study.run_study(root, **QUICK)
    assert set(again['done'].values()) == {'reused'}
    assert again['rows'] == res['rows']


def test_summary_is_the_hand_computation_from_the_runs_csv(done):
    root, _, _ = done
    rows = rows_of(root)
    summary = list(csv.DictReader(open(root / 'study_summary.csv')))
    assert {(s['method'], s['measure']) for s in summary} == {(m, p) for m in ('mae', 'untrained') for p in ('stage2', 'knn', 'linear_probe')}
    for s in summary:
        mine = {r['seed']: float(r[s['measure']]) for r in rows if r['method'] == s['method']}
        ref = {r['seed']: float(r[s['measure']]) for r in rows if r['method'] == 'mae'}
        assert int(s['n']) == 2
        assert float(s['mean']) == pytest.approx(sum(mine.values()) / 2, abs=1e-4)
        a, b = mine.values()
        assert float(s['std']) == pytest.approx(abs(a - b) / math.sqrt(2), abs=1e-4)   # n - 1 = 1
        if s['method'] == 'mae': assert s['diff_mean'] == '' and s['n_pairs'] == '0'
        else:
            diffs = [mine[k] - ref[k] for k in ('0', '1')]
            assert int(s['n_pairs']) == 2
            assert float(s['diff_mean']) == pytest.approx(statistics.fmean(diffs), abs=1e-4)
            assert float(s['diff_std']) == pytest.approx(statistics.stdev(diffs), abs=1e-4)


def test_an_interrupted_study_resumes_to_the_same_result(done, tmp_path, monkeypatch):
    root, _, _ = done
    calls = dict(n=0)
    step = MLOSolver.step
    def interrupted_step(self, *a, **k):   # Ctrl-C during the 2nd iteration of the first run
        calls['n'] += 1
        if calls['n'] == 2: os.kill(os.getpid(), signal.SIGINT)
        return step(self, *a, **k)
    monkeypatch.setattr(MLOSolver, 'step', interrupted_step)
    other = tmp_path / 'study'
    with pytest.raises(RunInterrupted):
        study.run_study(other, **QUICK)
    monkeypatch.setattr(MLOSolver, 'step', step)
    first = study.plan_study(other, **{k: v for k, v in QUICK.items() if k not in ('threads', 'device')})[0]
    assert cached_run_state(first.out, first.cfg) == 'resumable' and not (other / 'study_runs.csv').exists()
    res = study.run_study(other, **QUICK)
    assert res['done'][first.out.name] == 'resumed' and list(res['done'].values()).count('trained') == 3
    steps = [json.loads(l)['step'] for l in (first.out / 'metrics.jsonl').read_text().splitlines()]
    assert steps == [1, 2, 3]
    # the resumed run is the run an uninterrupted study made: same folder name, same weights, same measurements
    timeless = lambda rows: [{k: v for k, v in r.items() if k != 'train_seconds'} for r in rows]
    assert timeless(res['rows']) == timeless(study.run_study(root, **QUICK)['rows'])
    a, b = (torch.load(d / 'runs' / first.out.name / 'checkpoint.pt', weights_only=True)['model'] for d in (root, other))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_result_of_other_weights_is_not_reused(done, monkeypatch):
    "An eval file of another run's weights (replaced since), or one recording none, is evaluated again, not read into the CSV."
    root, res, _ = done
    from mlo_mae.runs import checkpoint_identity
    def fail(*a, **k): raise AssertionError('a finished run must not train again')
    monkeypatch.setattr('mlo_mae.train.train', fail)  # _run_cell imports it when it runs
    run = root / 'runs' / res['rows'][0]['run']
    path = run / 'eval_knn.json'
    for stale in (dict(run_id='replaced-since', step=3), None):
        saved = json.loads(path.read_text())
        saved.update(accuracy=-1.0, checkpoint=stale)
        path.write_text(json.dumps(saved))
        again = study.run_study(root, **QUICK, figure=False)
        assert again['rows'] == res['rows']   # the knn column recomputed: the same number as before, not -1
        assert json.loads(path.read_text())['checkpoint'] == checkpoint_identity(run)
