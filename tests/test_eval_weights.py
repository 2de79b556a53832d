"""Evaluations know which weights they measured: through the command lines, a run trained for 2 iterations and evaluated,
resumed to 4, is evaluated again without --overwrite (one line saying why, the file's step now 4), then refused as before;
a result file from before results recorded their weights is evaluated again."""
import json, subprocess, sys
from pathlib import Path

import pytest

from mlo_mae.runs import checkpoint_identity

ROOT = Path(__file__).resolve().parents[1]


def cli(module, *args):
    return subprocess.run([sys.executable, '-m', module, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp('weights') / 'run'
    r = cli('mlo_mae.train', '--out_dir', out, '--method', 'mae', '--max_steps', 2, '--num_workers', 0, '--threads', 1)
    assert r.returncode == 0, r.stderr
    return out


def test_a_resumed_run_is_evaluated_again(run):
    r = cli('mlo_mae.evaluate_run', run, '--protocol', 'knn', '--k', 5)
    assert r.returncode == 0, r.stderr
    first = json.loads((run / 'eval_knn.json').read_text())
    run_id = json.loads((run / 'mlo_mae_run.json').read_text())['run_id']
    assert (first['step'], first['checkpoint']) == (2, dict(run_id=run_id, step=2))
    r = cli('mlo_mae.train', '--out_dir', run, '--resume', '--max_steps', 4, '--num_workers', 0, '--threads', 1)
    assert r.returncode == 0, r.stderr
    assert checkpoint_identity(run) == dict(run_id=run_id, step=4)
    r = cli('mlo_mae.evaluate_run', run, '--protocol', 'knn', '--k', 5)
    assert r.returncode == 0, r.stderr
    note = r.stderr.strip().splitlines()[0]
    assert note == 'eval_knn.json measured step 2 of this run; the run is now at step 4: evaluated again, the file replaced'
    again = json.loads((run / 'eval_knn.json').read_text())
    assert (again['step'], again['checkpoint']) == (4, dict(run_id=run_id, step=4)) and json.loads(r.stdout) == again
    r = cli('mlo_mae.evaluate_run', run, '--protocol', 'knn', '--k', 5)
    assert r.returncode == 1 and 'exists: pass --overwrite' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert json.loads((run / 'eval_knn.json').read_text()) == again


def test_a_result_that_records_no_weights_is_evaluated_again(run):
    path = run / 'eval_similarity.json'
    path.write_text(json.dumps(dict(protocol='similarity', ratio=-1.0)))  # as written before results recorded weights
    r = cli('mlo_mae.evaluate_run', run, '--protocol', 'similarity')
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith('eval_similarity.json records no weights (written before evaluations did)')
    saved = json.loads(path.read_text())
    assert saved['checkpoint'] == checkpoint_identity(run) and saved['ratio'] > 0
