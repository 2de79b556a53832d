#!/usr/bin/env python
"""Regenerate the paper's figures that this project reproduces: run every figure notebook with papermill.

    python tools/make_figures.py                      # small runs on cifar10_mini, trained here or reused from figures/runs/
    python tools/make_figures.py --steps 300          # another budget (new runs, cached beside the old ones)
    python tools/make_figures.py --jobs 1             # train the small runs one at a time (default: 2 processes)
    python tools/make_figures.py --study figures/study_cpu   # Figures 2, 4, 5, 6 and Table 13 from a study's runs, every seed
    python tools/make_figures.py --study DIR DIR            # several studies (e.g. one holding the prior control)
    python tools/make_figures.py --seeds 0 1 2              # the sweeps (Figure 3, Table 7) and their control over three seeds
    python tools/make_figures.py --runs_mae DIR --runs_mlo DIR [--runs_untrained DIR]   # Figures 4-6 and Table 13 from your runs
    python tools/make_figures.py --runs_mlo DIR --runs_blo DIR --runs_ratio DIR DIR ... --runs_unroll DIR DIR ...
    python tools/make_figures.py --only 41 43         # some notebooks only

With --study, the notebooks that compare methods at the default setting (41, 42, 43 and Figure 2 of 45) take their runs from
the study's study_runs.csv (mlo_mae.study.run_study): every seed for the numbers (mean +- std over seeds), seed 0 for the
pictures; the sweeps stay small runs, and only the small runs the study does not provide at --steps are trained.
First the small runs that the notebooks would train are trained (or found cached) in --jobs processes of one thread
each; then each notebook writes NAME.png and NAME.csv/.json into --out_dir (default: the repository's figures/); the executed
notebooks go to OUT_DIR/notebooks/, never into nbs/. Notebooks run with nbs/ as their working folder.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from mlo_mae.figures import (
    read_study,
    study_runs,
    COMPARED,
    DEFAULT_STEPS,
    FIG2_METHODS,
    MASK_RATIOS,
    UNROLL_STEPS,
    figure_run_specs,
    train_runs,
)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {
    '41': '41_fig_masks.ipynb',
    '42': '42_fig_gradcam.ipynb',
    '43': '43_fig_tsne.ipynb',
    '45': '45_fig_ablations.ipynb',
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog='make_figures', description='Run the figure notebooks (nbs/41-45) with papermill.')
    p.add_argument('--out_dir', default=str(ROOT / 'figures'), help='where the figures go (default: figures/)')
    p.add_argument('--runs_root', default=None, help='cache of the small runs (default: OUT_DIR/runs)')
    p.add_argument(
        '--steps', type=int, default=DEFAULT_STEPS, help=f'iterations of each small run (default {DEFAULT_STEPS})'
    )
    p.add_argument('--mask_ratios', type=float, nargs='+', default=list(MASK_RATIOS), help='masking ratios of Figure 3')
    p.add_argument(
        '--unroll_steps', type=int, nargs='+', default=list(UNROLL_STEPS), help='unrolling depths of Table 7'
    )
    p.add_argument('--jobs', type=int, default=min(2, os.cpu_count() or 1), help='processes training the small runs')
    p.add_argument(
        '--seeds', type=int, nargs='+', default=[0], help='seeds of each sweep point and its control (default: 0)'
    )
    p.add_argument(
        '--study', nargs='+', help='study folder(s) written by mlo_mae.study.run_study (Figures 2, 4, 5, 6, Table 13)'
    )
    p.add_argument('--runs_untrained', help='an untrained-encoder control run folder (Figures 2-6, Table 13)')
    p.add_argument('--runs_mae', help='an MAE run folder (Figures 2, 5, 6, Table 13)')
    p.add_argument('--runs_mlo', help='an MLO-MAE run folder (Figures 2, 4, 5, 6, Table 13)')
    p.add_argument('--runs_blo', help='a BLO-MAE run folder (Figure 2)')
    p.add_argument('--runs_ratio', nargs='+', help='MLO-MAE run folders at several masking ratios (Figure 3)')
    p.add_argument('--runs_unroll', nargs='+', help='MLO-MAE run folders at several unrolling depths (Table 7)')
    p.add_argument('--only', nargs='+', choices=sorted(NOTEBOOKS), help='run these notebooks only')
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error(f'--steps must be >= 1, got {a.steps}')
    if a.jobs < 1:
        p.error(f'--jobs must be >= 1, got {a.jobs}')
    if a.study:
        given = [n for n in ('runs_mae', 'runs_mlo', 'runs_blo', 'runs_untrained') if getattr(a, n)]
        if given:
            p.error(f"--study provides the runs at the default setting: give it or --{', --'.join(given)}, not both")
        for d in a.study:
            if not (Path(d) / 'study_runs.csv').exists():
                p.error(f'--study {d} is not a study folder (no study_runs.csv)')
            if not (Path(d) / 'runs').is_dir():  # the figures read the runs' weights, which are not committed
                made = Path(d) / 'study.json'
                how = (
                    json.loads(made.read_text())['command']
                    if made.exists()
                    else f'python -m mlo_mae.study {d} ... (the same arguments as the study)'
                )
                sys.exit(
                    f'make_figures: --study {d} has its tables but not its runs (runs are not committed): make them first with `{how}`, then run this again'
                )
    if bool(a.runs_mae) != bool(a.runs_mlo) and (a.only is None or {'42', '43'} & set(a.only)):
        p.error('Figures 5 and 6 compare two runs: give both --runs_mae and --runs_mlo, or neither')
    if len(set(a.seeds)) != len(a.seeds):
        p.error('--seeds must not repeat')
    for name in ('runs_mae', 'runs_mlo', 'runs_blo', 'runs_untrained'):
        if getattr(a, name) and not (Path(getattr(a, name)) / 'final.json').exists():
            p.error(f'--{name} {getattr(a, name)} is not a finished run folder (no final.json)')
    for name in ('runs_ratio', 'runs_unroll'):
        for d in getattr(a, name) or []:
            if not (Path(d) / 'final.json').exists():
                p.error(f'--{name} {d} is not a finished run folder (no final.json)')
    return a


def notebook_parameters(a) -> dict:
    "{notebook: papermill parameters} from the command line (paths made absolute: the notebooks run in nbs/)."
    absolute = lambda p: str(Path(p).resolve())
    common = dict(out_dir=absolute(a.out_dir), steps=a.steps)
    if a.runs_root:
        common['runs_root'] = absolute(a.runs_root)
    study = {'study': [absolute(d) for d in a.study]} if a.study else {}
    control = dict(untrained=absolute(a.runs_untrained)) if a.runs_untrained else {}
    pair = (
        dict(mae=absolute(a.runs_mae), mlo_mae=absolute(a.runs_mlo), **control) if a.runs_mae and a.runs_mlo else None
    )
    ablation = {
        k: v
        for k, v in dict(
            mlo_mae=a.runs_mlo and absolute(a.runs_mlo),
            blo_mae=a.runs_blo and absolute(a.runs_blo),
            mae=a.runs_mae and absolute(a.runs_mae),
            **control,
            mask_ratio=[absolute(d) for d in a.runs_ratio or []],
            unroll_steps=[absolute(d) for d in a.runs_unroll or []],
        ).items()
        if v
    }
    given_ablation = a.runs_blo or a.runs_ratio or a.runs_unroll
    mlo = (pair or {'mlo_mae': absolute(a.runs_mlo), **control}) if a.runs_mlo else None
    params = {
        '41': dict(common, **study, **({'runs': mlo} if mlo else {})),
        '42': dict(common, **study, **({'runs': pair} if pair else {})),
        '43': dict(common, **study, **({'runs': pair} if pair else {})),
        '45': dict(
            common,
            **study,
            mask_ratios=a.mask_ratios,
            unroll_steps=a.unroll_steps,
            seeds=a.seeds,
            **({'runs': ablation} if given_ablation else {}),
        ),
    }
    return {k: v for k, v in params.items() if a.only is None or k in a.only}


def study_has(a) -> tuple:
    "The methods of Figures 2-6 that --study provides at the default setting and at --steps iterations (none to train for them)."
    if not a.study:
        return ()
    rows = read_study(a.study)
    return tuple(
        m
        for m in dict.fromkeys((*COMPARED, *FIG2_METHODS))
        if (found := study_runs(rows, m)) and all(r.get('steps') == a.steps for r in found.values())
    )


def runs_to_train(a, params) -> list:
    "[(method, settings)] of the small runs the selected notebooks would train themselves."
    pair = any('runs' not in params[k] and 'study' not in params[k] for k in ('41', '42', '43') if k in params)
    ablations = '45' in params and 'runs' not in params['45']
    return figure_run_specs(
        a.steps, a.mask_ratios, a.unroll_steps, ablations=ablations, pair=pair, seeds=a.seeds, have=study_has(a)
    )


def main(argv=None):
    a = parse_args(argv)
    import papermill as pm

    out = Path(a.out_dir).resolve()
    executed = out / 'notebooks'
    executed.mkdir(parents=True, exist_ok=True)
    failed, t_all = [], time.time()
    params = notebook_parameters(a)
    specs = runs_to_train(a, params)
    if os.environ.get('IN_TEST'):  # the notebooks then train tiny runs in temporary folders of their own
        print(
            "IN_TEST is set: the notebooks run their quick test versions (temporary folders, 2 iterations)", flush=True
        )
    elif specs:
        root = Path(a.runs_root).resolve() if a.runs_root else out / 'runs'
        print(f"{len(specs)} small runs of {a.steps} iterations in {root} ({a.jobs} processes)", flush=True)
        train_runs(root, specs, a.jobs)
        print(f"small runs ready in {time.time() - t_all:.0f} s", flush=True)
    for key, nb_params in params.items():
        nb = NOTEBOOKS[key]
        t = time.time()
        print(f"{nb}: {nb_params}", flush=True)
        try:
            pm.execute_notebook(
                str(ROOT / 'nbs' / nb),
                str(executed / nb),
                parameters=nb_params,
                cwd=str(ROOT / 'nbs'),
                kernel_name='python3',
                progress_bar=False,
            )
            print(f"{nb}: done in {time.time() - t:.0f} s", flush=True)
        except Exception as e:  # papermill's execution error: say which notebook, go on with the others
            failed.append(nb)
            print(
                f"{nb}: FAILED after {time.time() - t:.0f} s: {type(e).__name__}: {str(e)[-2000:]}",
                file=sys.stderr,
                flush=True,
            )
    print(f"all done in {time.time() - t_all:.0f} s; figures in {out}, executed notebooks in {executed}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (see their executed copies in {executed})")


if __name__ == '__main__':
    main()
