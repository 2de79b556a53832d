"""tools/make_figures.py end to end, as a user runs it: every figure notebook executes through papermill, the
parameters reach the notebooks, the figures land in --out_dir and nothing is written into nbs/ or figures/."""
import importlib.util, json, os, subprocess, sys
from pathlib import Path

import pytest

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


def test_every_notebook_runs_under_in_test(tmp_path):
    "IN_TEST: each notebook runs its quick version in a temporary folder of its own; only the executed copies land in --out_dir."
    nbs, figures = listing(ROOT/'nbs'), listing(ROOT/'figures')
    r = tool('--out_dir', tmp_path, env={**ENV, 'IN_TEST': '1'}, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path/'notebooks').iterdir()) == sorted(load_tool().NOTEBOOKS.values())
    assert not list(tmp_path.glob('*.png')) and not (tmp_path/'runs').exists()
    assert listing(ROOT/'nbs') == nbs and listing(ROOT/'figures') == figures


def test_given_runs_reach_the_notebooks(tmp_path):
    "Run folders passed on the command line are what the figures are drawn from: no small run is trained."
    sys.path.insert(0, str(ROOT))
    from mlo_mae.figures import small_run
    runs = {m: small_run(tmp_path/'mine', m, max_steps=1) for m in ('mae', 'mlo_mae')}
    out = tmp_path/'out'
    r = tool('--out_dir', out, '--runs_mae', runs['mae'], '--runs_mlo', runs['mlo_mae'], '--only', '41', '42', timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ['fig4_masks.json', 'fig4_masks.png', 'fig5_gradcam.json', 'fig5_gradcam.png', 'notebooks']
    assert json.loads((out/'fig4_masks.json').read_text())['run'] == str(runs['mlo_mae'])
    assert json.loads((out/'fig5_gradcam.json').read_text())['runs']['mae']['run'] == str(runs['mae'])
    # a second run replaces the figures and says so, one line per file
    r = tool('--out_dir', out, '--runs_mae', runs['mae'], '--runs_mlo', runs['mlo_mae'], '--only', '41', timeout=600)
    assert r.returncode == 0
    executed = json.loads((out/'notebooks'/'41_fig_masks.ipynb').read_text())
    text = ''.join(''.join(o.get('text', '')) for c in executed['cells'] for o in c.get('outputs', []))
    assert text.count('replacing') == 2 and 'fig4_masks.png' in text


def test_parameters_and_refusals(tmp_path):
    mod = load_tool()
    a = mod.parse_args(['--out_dir', str(tmp_path), '--steps', '7', '--mask_ratios', '0.5', '--unroll_steps', '1', '3'])
    p = mod.notebook_parameters(a)
    assert p['41'] == dict(out_dir=str(tmp_path.resolve()), steps=7)
    assert p['45'] == dict(out_dir=str(tmp_path.resolve()), steps=7, mask_ratios=[0.5], unroll_steps=[1, 3])
    specs = mod.runs_to_train(a, p)
    assert len(specs) == 6 and all(kw['max_steps'] == 7 for _, kw in specs)   # MAE, MLO-MAE, BLO-MAE, 0.5, 1 and 3 steps
    assert mod.runs_to_train(mod.parse_args(['--only', '45']), {'45': {'runs': {}}}) == []
    for args, msg in ((['--runs_mae', tmp_path], 'give both --runs_mae and --runs_mlo'),
                      (['--runs_mae', tmp_path, '--runs_mlo', tmp_path], 'is not a finished run folder'),
                      (['--steps', '0'], '--steps must be >= 1'), (['--only', '44'], 'invalid choice')):
        r = tool(*args, timeout=120)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
