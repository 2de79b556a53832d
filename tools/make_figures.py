#!/usr/bin/env python
"""Regenerate the paper's figures that this project reproduces: run every figure notebook with papermill.

    python tools/make_figures.py                      # small runs on cifar10_mini, trained here or reused from figures/runs/
    python tools/make_figures.py --steps 300          # another budget (new runs, cached beside the old ones)
    python tools/make_figures.py --jobs 1             # train the small runs one at a time (default: 2 processes)
    python tools/make_figures.py --runs_mae DIR --runs_mlo DIR              # Figures 4-6 and Table 13 from your runs
    python tools/make_figures.py --runs_mlo DIR --runs_blo DIR --runs_ratio DIR DIR ... --runs_unroll DIR DIR ...
    python tools/make_figures.py --only 41 43         # some notebooks only

First the small runs that the notebooks would train are trained (or found cached) in --jobs processes of one thread
each; then each notebook writes NAME.png and NAME.csv/.json into --out_dir (default: the repository's figures/); the executed
notebooks go to OUT_DIR/notebooks/, never into nbs/. Notebooks run with nbs/ as their working folder.
"""
import argparse, os, sys, time
from pathlib import Path

from mlo_mae.figures import DEFAULT_STEPS, MASK_RATIOS, UNROLL_STEPS, figure_run_specs, train_runs

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {'41': '41_fig_masks.ipynb', '42': '42_fig_gradcam.ipynb', '43': '43_fig_tsne.ipynb', '45': '45_fig_ablations.ipynb'}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog='make_figures', description='Run the figure notebooks (nbs/41-45) with papermill.')
    p.add_argument('--out_dir', default=str(ROOT/'figures'), help='where the figures go (default: figures/)')
    p.add_argument('--runs_root', default=None, help='cache of the small runs (default: OUT_DIR/runs)')
    p.add_argument('--steps', type=int, default=DEFAULT_STEPS, help=f'iterations of each small run (default {DEFAULT_STEPS})')
    p.add_argument('--mask_ratios', type=float, nargs='+', default=list(MASK_RATIOS), help='masking ratios of Figure 3')
    p.add_argument('--unroll_steps', type=int, nargs='+', default=list(UNROLL_STEPS), help='unrolling depths of Table 7')
    p.add_argument('--jobs', type=int, default=min(2, os.cpu_count() or 1), help='processes training the small runs')
    p.add_argument('--runs_mae', help='an MAE run folder (Figures 5, 6, Table 13)')
    p.add_argument('--runs_mlo', help='an MLO-MAE run folder (Figures 2, 4, 5, 6, Table 13)')
    p.add_argument('--runs_blo', help='a BLO-MAE run folder (Figure 2)')
    p.add_argument('--runs_ratio', nargs='+', help='MLO-MAE run folders at several masking ratios (Figure 3)')
    p.add_argument('--runs_unroll', nargs='+', help='MLO-MAE run folders at several unrolling depths (Table 7)')
    p.add_argument('--only', nargs='+', choices=sorted(NOTEBOOKS), help='run these notebooks only')
    a = p.parse_args(argv)
    if a.steps < 1: p.error(f'--steps must be >= 1, got {a.steps}')
    if a.jobs < 1: p.error(f'--jobs must be >= 1, got {a.jobs}')
    if bool(a.runs_mae) != bool(a.runs_mlo) and (a.only is None or {'42', '43'} & set(a.only)):
        p.error('Figures 5 and 6 compare two runs: give both --runs_mae and --runs_mlo, or neither')
    for name in ('runs_mae', 'runs_mlo', 'runs_blo'):
        if getattr(a, name) and not (Path(getattr(a, name))/'final.json').exists():
            p.error(f'--{name} {getattr(a, name)} is not a finished run folder (no final.json)')
    for name in ('runs_ratio', 'runs_unroll'):
        for d in getattr(a, name) or []:
            if not (Path(d)/'final.json').exists(): p.error(f'--{name} {d} is not a finished run folder (no final.json)')
    return a


def notebook_parameters(a) -> dict:
    "{notebook: papermill parameters} from the command line (paths made absolute: the notebooks run in nbs/)."
    absolute = lambda p: str(Path(p).resolve())
    common = dict(out_dir=absolute(a.out_dir), steps=a.steps)
    if a.runs_root: common['runs_root'] = absolute(a.runs_root)
    pair = dict(mae=absolute(a.runs_mae), mlo_mae=absolute(a.runs_mlo)) if a.runs_mae and a.runs_mlo else None
    ablation = {k: v for k, v in dict(mlo_mae=a.runs_mlo and absolute(a.runs_mlo), blo_mae=a.runs_blo and absolute(a.runs_blo),
                                       mask_ratio=[absolute(d) for d in a.runs_ratio or []],
                                       unroll_steps=[absolute(d) for d in a.runs_unroll or []]).items() if v}
    given_ablation = a.runs_blo or a.runs_ratio or a.runs_unroll
    params = {'41': dict(common, **({'runs': {'mlo_mae': absolute(a.runs_mlo)}} if a.runs_mlo else {})),
              '42': dict(common, **({'runs': pair} if pair else {})),
              '43': dict(common, **({'runs': pair} if pair else {})),
              '45': dict(common, mask_ratios=a.mask_ratios, unroll_steps=a.unroll_steps, **({'runs': ablation} if given_ablation else {}))}
    return {k: v for k, v in params.items() if a.only is None or k in a.only}


def runs_to_train(a, params) -> list:
    "[(method, settings)] of the small runs the selected notebooks would train themselves."
    pair = any('runs' not in params[k] for k in ('41', '42', '43') if k in params)
    ablations = '45' in params and 'runs' not in params['45']
    return figure_run_specs(a.steps, a.mask_ratios, a.unroll_steps, ablations=ablations, pair=pair)


def main(argv=None):
    a = parse_args(argv)
    import papermill as pm
    out = Path(a.out_dir).resolve()
    executed = out/'notebooks'
    executed.mkdir(parents=True, exist_ok=True)
    failed, t_all = [], time.time()
    params = notebook_parameters(a)
    specs = runs_to_train(a, params)
    if os.environ.get('IN_TEST'):   # the notebooks then train tiny runs in temporary folders of their own
        print("IN_TEST is set: the notebooks run their quick test versions (temporary folders, 2 iterations)", flush=True)
    elif specs:
        root = Path(a.runs_root).resolve() if a.runs_root else out/'runs'
        print(f"{len(specs)} small runs of {a.steps} iterations in {root} ({a.jobs} processes)", flush=True)
        train_runs(root, specs, a.jobs)
        print(f"small runs ready in {time.time() - t_all:.0f} s", flush=True)
    for key, nb_params in params.items():
        nb = NOTEBOOKS[key]
        t = time.time()
        print(f"{nb}: {nb_params}", flush=True)
        try:
            pm.execute_notebook(str(ROOT/'nbs'/nb), str(executed/nb), parameters=nb_params, cwd=str(ROOT/'nbs'),
                                kernel_name='python3', progress_bar=False)
            print(f"{nb}: done in {time.time() - t:.0f} s", flush=True)
        except Exception as e:   # papermill's execution error: say which notebook, go on with the others
            failed.append(nb)
            print(f"{nb}: FAILED after {time.time() - t:.0f} s: {type(e).__name__}: {str(e)[-2000:]}", file=sys.stderr, flush=True)
    print(f"all done in {time.time() - t_all:.0f} s; figures in {out}, executed notebooks in {executed}")
    if failed: sys.exit(f"failed: {', '.join(failed)} (see their executed copies in {executed})")


if __name__ == '__main__':
    main()
