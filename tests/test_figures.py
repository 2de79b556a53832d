"""tools/make_figures.py end to end, as a user runs it: every figure notebook executes through papermill, the
parameters reach the notebooks, the figures land in --out_dir and nothing is written into nbs/ or figures/."""
import csv, importlib.util, json, os, statistics, subprocess, sys

import pytest
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT/'tools'/'make_figures.py'
ENV = {k: v for k, v in os.environ.items() if k != 'IN_TEST'}


def tool(*args, env=None, **kw):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, env=env or ENV, **kw)


def load_tool():
    spec = importlib.util.spec_from_file_location('make_figures', TOOL)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def listing(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob('*')) if folder.exists() else []


def test_a_notebook_runs_under_in_test(tmp_path):
    """IN_TEST: a notebook runs its quick version in a temporary folder of its own; only the executed copy lands in --out_dir.
    (Every figure notebook's quick version also runs under nbdev_test; this checks the route through papermill.)"""
    nbs, figures = listing(ROOT/'nbs'), listing(ROOT/'figures')
    r = tool('--out_dir', tmp_path, '--only', '43', env={**ENV, 'IN_TEST': '1'}, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path/'notebooks').iterdir()) == [load_tool().NOTEBOOKS['43']]
    assert not list(tmp_path.glob('*.png')) and not (tmp_path/'runs').exists()
    assert listing(ROOT/'nbs') == nbs and listing(ROOT/'figures') == figures


def test_given_runs_reach_the_notebooks(tmp_path):
    "Run folders passed on the command line are what the figures are drawn from: no small run is trained."
    sys.path.insert(0, str(ROOT))
    from mlo_mae.figures import small_run
    runs = {m: small_run(tmp_path/'mine', m, max_steps=1) for m in ('untrained', 'mae', 'mlo_mae')}
    out = tmp_path/'out'
    r = tool('--out_dir', out, '--runs_mae', runs['mae'], '--runs_mlo', runs['mlo_mae'], '--runs_untrained', runs['untrained'],
             '--only', '41', '42', timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ['fig4_masks.json', 'fig4_masks.png', 'fig5_gradcam.json', 'fig5_gradcam.png', 'notebooks']
    fig4 = json.loads((out/'fig4_masks.json').read_text())
    assert fig4['run'] == str(runs['mlo_mae'])
    assert sorted(fig4['stage2_accuracy']) == ['mae', 'mlo_mae', 'untrained']   # the control beside MLO-MAE, no prior given
    fig5 = json.loads((out/'fig5_gradcam.json').read_text())
    assert fig5['runs']['mae']['run'] == str(runs['mae']) and fig5['runs']['untrained']['run'] == str(runs['untrained'])
    # a second run replaces the figures and says so, one line per file
    r = tool('--out_dir', out, '--runs_mae', runs['mae'], '--runs_mlo', runs['mlo_mae'], '--only', '41', timeout=600)
    assert r.returncode == 0
    executed = json.loads((out/'notebooks'/'41_fig_masks.ipynb').read_text())
    text = ''.join(''.join(o.get('text', '')) for c in executed['cells'] for o in c.get('outputs', []))
    assert text.count('replacing') == 2 and 'fig4_masks.png' in text


def test_parameters_and_refusals(tmp_path, capsys):
    mod = load_tool()
    a = mod.parse_args(['--out_dir', str(tmp_path), '--steps', '7', '--mask_ratios', '0.5', '--unroll_steps', '1', '3'])
    p = mod.notebook_parameters(a)
    assert p['41'] == dict(out_dir=str(tmp_path.resolve()), steps=7)
    assert p['45'] == dict(out_dir=str(tmp_path.resolve()), steps=7, mask_ratios=[0.5], unroll_steps=[1, 3], seeds=[0])
    specs = mod.runs_to_train(a, p)
    assert len(specs) == 7 and all(kw['max_steps'] == 7 for _, kw in specs)   # control, MAE, MLO-MAE, BLO-MAE, 0.5, 1 and 3 steps
    assert sorted(m for m, kw in specs if set(kw) == {'max_steps'}) == ['blo_mae', 'mae', 'mlo_mae', 'untrained']
    a2 = mod.parse_args(['--out_dir', str(tmp_path), '--steps', '7', '--mask_ratios', '0.5', '--unroll_steps', '1', '--seeds', '0', '1'])
    assert len(mod.runs_to_train(a2, mod.notebook_parameters(a2))) == 6 + 3   # seed 1: the control, 0.5, 1 step
    assert mod.runs_to_train(mod.parse_args(['--only', '45']), {'45': {'runs': {}}}) == []
    for args, msg in ((['--runs_mae', tmp_path], 'give both --runs_mae and --runs_mlo'),
                      (['--runs_mae', tmp_path, '--runs_mlo', tmp_path], 'is not a finished run folder'),
                      (['--steps', '0'], '--steps must be >= 1'), (['--only', '44'], 'invalid choice'),
                      (['--study', tmp_path], 'is not a study folder'), (['--seeds', '0', '0'], '--seeds must not repeat'),
                      (['--study', tmp_path, '--runs_mae', tmp_path], 'give it or --runs_mae, not both')):
        with pytest.raises(SystemExit) as e: mod.parse_args([str(a) for a in args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and msg in err, err
    r = tool('--steps', '0', timeout=120)   # the command line itself: status 2, argparse's message
    assert r.returncode == 2 and '--steps must be >= 1' in r.stderr, r.stderr


def test_a_study_gives_every_seed_and_the_control(tmp_path):
    """--study: the compared methods come from a 2-seed study (mean and standard deviation over its seeds, seed 0 drawn), the
    untrained control is in every comparison, and only what the study lacks is trained (BLO-MAE and the sweep points)."""
    sys.path.insert(0, str(ROOT))
    from mlo_mae.study import run_study
    study = tmp_path/'study'
    run_study(study, methods=('untrained', 'mae', 'mlo_mae'), seeds=(0, 1), max_steps=1, protocols=('stage2', 'knn'), threads=1,
              figure=False)
    listed = list(csv.DictReader(open(study/'study_runs.csv')))
    acc = {(r['method'], int(r['seed'])): float(r['stage2']) for r in listed}
    folder = {(r['method'], int(r['seed'])): str(study/'runs'/r['run']) for r in listed}
    mod = load_tool()
    a = mod.parse_args(['--study', str(study), '--steps', '1', '--mask_ratios', '0.5', '--unroll_steps', '1'])
    assert mod.study_has(a) == ('untrained', 'mae', 'mlo_mae')
    specs = mod.runs_to_train(a, mod.notebook_parameters(a))
    assert sorted((m, tuple(sorted(kw))) for m, kw in specs) == [('blo_mae', ('max_steps',)), ('mlo_mae', ('mask_ratio', 'max_steps')),
                                                                  ('mlo_mae', ('max_steps', 'unroll_steps'))]
    out = tmp_path/'out'
    r = tool('--out_dir', out, '--study', study, '--steps', 1, '--mask_ratios', 0.5, '--unroll_steps', 1, '--jobs', 1, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"{len(specs)} small runs of 1 iterations" in r.stdout

    def stats(method):   # mean and sample standard deviation over the two seeds, from the study's own CSV
        xs = [acc[method, 0], acc[method, 1]]
        return statistics.fmean(xs), statistics.stdev(xs)

    # Figure 2: the control and MAE beside MLO-MAE, each over the study's seeds; BLO-MAE (not in the study) one small run
    fig2 = {r['method']: r for r in csv.DictReader(open(out/'fig2_blo_vs_mlo.csv')) if r['source'] != 'paper'}
    assert sorted(fig2) == ['blo_mae', 'mae', 'mlo_mae', 'untrained']
    for m in ('untrained', 'mae', 'mlo_mae'):
        mean, std = stats(m)
        assert fig2[m]['n_seeds'] == '2' and fig2[m]['source'] == 'ours (study)'
        assert abs(float(fig2[m]['accuracy']) - mean) < 0.006 and abs(float(fig2[m]['std']) - std) < 0.006
    assert fig2['blo_mae']['n_seeds'] == '1' and fig2['blo_mae']['std'] == ''
    # Figure 3 and Table 7: one small run per point (said in the note), the study's control as the line
    for name in ('fig3_mask_ratio', 'table7_unroll_steps'):
        rows = [r for r in csv.DictReader(open(out/f'{name}.csv')) if r['source'] != 'paper']
        control = [r for r in rows if r['x'] == 'control']
        assert len(control) == 1 and control[0]['source'] == 'control (study)'
        assert abs(float(control[0]['accuracy']) - stats('untrained')[0]) < 0.006
        assert all(r['n_seeds'] == '1' and 'one seed' in r['note'] for r in rows if r['x'] != 'control')
    # Figure 4: the study's seed-0 MLO-MAE run drawn; its Stage II accuracies over seeds; what T learns
    fig4 = json.loads((out/'fig4_masks.json').read_text())
    assert fig4['run'] == folder['mlo_mae', 0]
    assert fig4['stage2_accuracy']['mlo_mae']['values'] == [acc['mlo_mae', 0], acc['mlo_mae', 1]]
    assert sorted(fig4['stage2_accuracy']) == ['mae', 'mlo_mae', 'untrained'] and 'No prior-control run' in fig4['note']
    w = fig4['what_t_learns']
    assert w['split'] == 'D_val' and w['position_only_iou'] == 1.0 and 0 < w['random_iou'] < 1 and 0 < w['mean_pairwise_iou'] <= 1
    assert abs(sum(w['position_frequency']) - w['masked_per_image']) < 0.01   # every image masks k patches: the shares sum to k
    # Figure 5 and Table 13: every seed measured, seed 0 drawn, the control among them
    fig5 = json.loads((out/'fig5_gradcam.json').read_text())
    assert {m: v['n'] for m, v in fig5['centre_share_all_test'].items()} == {'untrained': 2, 'mae': 2, 'mlo_mae': 2}
    assert fig5['runs']['untrained']['run'] == folder['untrained', 0] and fig5['seed_runs']['mae']['1'] == folder['mae', 1]
    t13 = {r['method']: r for r in csv.DictReader(open(out/'table13_similarity.csv')) if r['source'] == 'ours'}
    assert sorted(t13) == ['MAE', 'MLO-MAE', 'untrained encoder (control)']
    for r in t13.values():
        per_seed = [float(v) for v in r['ratio_per_seed'].split()]
        assert r['n_seeds'] == '2' and abs(float(r['ratio']) - statistics.fmean(per_seed)) < 1e-3
        assert abs(float(r['ratio_std']) - statistics.stdev(per_seed)) < 1e-3


def known_answer(tmp_path, **parameters):
    "Run nbs/46 through papermill as a user does (IN_TEST unset), its parameters given."
    import papermill as pm

    env = os.environ.pop('IN_TEST', None)
    try:
        return pm.execute_notebook(
            str(ROOT / 'nbs' / '46_known_answer.ipynb'),
            str(tmp_path / 'executed.ipynb'),
            parameters=parameters,
            cwd=str(ROOT / 'nbs'),
            progress_bar=False,
            kernel_name='python3',
        )
    finally:
        if env is not None:
            os.environ['IN_TEST'] = env


def test_known_answer_takes_its_parameters(tmp_path):
    "46's parameters reach it: a quick run lands in out_dir, nothing is written into figures/."
    figures = listing(ROOT / 'figures')
    out = tmp_path / 'ka'
    known_answer(tmp_path, quick=True, out_dir=str(out))
    assert [p.name for p in out.iterdir() if (p / 'study_runs.csv').exists()]  # the quick studies were written there
    assert (out / 'known_answer.png').exists()
    assert listing(ROOT / 'figures') == figures


def test_known_answer_refuses_a_misspelt_parameter(tmp_path):
    import papermill as pm

    with pytest.raises(
        pm.PapermillExecutionError, match='out_dri is not a parameter of this notebook: did you mean out_dir'
    ):
        known_answer(tmp_path, out_dri=str(tmp_path / 'x'))
    assert not (tmp_path / 'x').exists()
