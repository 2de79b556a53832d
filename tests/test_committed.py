"""The committed numbers are what today's code produces: one cell of the README's CPU study (figures/study_cpu) is trained
and evaluated again from its own `study.json` and compared, measure by measure, with its committed row of study_runs.csv.
By default the cheapest cell (the untrained control, seed 0: every protocol but the training itself); with
MLO_MAE_SLOW=1 also MAE and MLO-MAE (seed 0: about 1 and 5 minutes of one CPU thread), the cells a solver change moves.
A drift fails here, with the measures that moved, the day it happens."""
import csv, json, os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT/'figures'/'study_cpu'
SLOW = bool(os.environ.get('MLO_MAE_SLOW'))
MOVING = ('stage2', 'knn', 'linear_probe', 'mask_iou', 'sigma_mean', 'sigma_std', 'steps', 'stage_one_steps', 't_steps')


def committed_row(method, seed):
    rows = list(csv.DictReader(open(STUDY/'study_runs.csv')))
    return next(r for r in rows if r['method'] == method and int(r['seed']) == seed)


def rerun(tmp_path, method, seed):
    from mlo_mae.study import run_study
    made = json.loads((STUDY/'study.json').read_text())
    keep = ('settings', 'dataset', 'preset', 'max_steps', 'budget_seconds', 'protocols', 'common', 'protocol_options')
    res = run_study(tmp_path, methods=[method], seeds=[seed], reference=method, threads=1, figure=False,
                    **{k: made[k] for k in keep})
    return res['rows'][0]


@pytest.mark.parametrize('method', ['untrained'] + (['mae', 'mlo_mae'] if SLOW else []))
def test_a_committed_study_cell_is_reproduced(tmp_path, monkeypatch, method):
    if not (STUDY/'study.json').exists(): pytest.skip('figures/study_cpu has no study.json')
    monkeypatch.chdir(ROOT)     # a study's settings name folders relative to the repository
    want, got = committed_row(method, 0), rerun(tmp_path, method, 0)
    assert got['run'] == want['run']                       # the same settings, hence the same cached-run name
    moved = {k: (want[k], got[k]) for k in MOVING if want.get(k) not in (None, '')
             and abs(float(want[k]) - float(got[k])) > 1e-3}
    assert not moved, f"{method}: committed vs today's code {moved}: regenerate the study (README, figures/study_cpu)"
