"""The known-answer study on the glyph benchmark: a handful of ordinary studies (`mlo_mae.study`), one folder each under
figures/known_answer/, their run folders under <study>/runs/ (not committed). A finished run or evaluation is reused, so an
interrupted study resumes and a second call with more seeds trains only the new cells.

    python tools/known_answer.py                                   # every study of the README, seeds 0 1 2
    python tools/known_answer.py --only glyphs_flat --seeds 0 1 2 3 4   # more seeds of one study (FIVE: cells with their own)
    python tools/known_answer.py --quick --out /tmp/ka             # one seed, a few steps: what nbdev_test runs
    python tools/known_answer.py --only cells_copies cells cells_distractor cells_copies_mae_1250 cells_mae_1250 \
        cells_copies_lr_t cells_copies_1000 cells_copies_prior --seeds 0 1 2 3 4   # the grey-cell studies

The grey-cell studies (`cell_studies()`) train seed by seed (every cell of seed 0, then of seed 1, ...), so a study cut
short has whole seeds.
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')

# The regime (the prototype): ViT width 64, depth 3, patch 4, decoder 64 x 1, batch 64, ratio 0.5, one Stage I
# step per iteration, AdamW at a constant 1e-3 (at 400 iterations the cosine leaves MAE at the control: SCHEDULES below);
# the glyph datasets train without augmentation (their class is a shape: 08_glyphs).
COMMON = dict(
    model_kw=dict(embed_dim=64, depth=3, num_heads=4, decoder_embed_dim=64, decoder_depth=1, decoder_num_heads=4),
    batch_size=64,
    mask_ratio=0.5,
    unroll_steps=1,
    t_hidden=64,
    lr_mae=1e-3,
    lr_head=1e-3,
    lr_t=1e-3,
    lr_schedule='constant',
)
PROTOCOLS = ['knn', 'linear_probe', 'stage2', 'object_share', 'feedback']
OPTIONS = dict(pool='avg', epochs=30)  # mean-pooled patch tokens: on these images the CLS token reads little
STEPS = 400
# the cells whose spreads overlap MAE's at three seeds (the controls, AttMask, q = 0.25-0.75, MLO-MAE, the prior)
FIVE = dict(seeds=[0, 1, 2, 3, 4])
# B.2's T and the per-patch T
MLO = [dict(method='mlo_mae', t_arch='mlp'), dict(method='mlo_mae', t_arch='per_patch')]
# label-free learned masking
HARD = [dict(method='hard_patches', t_arch='per_patch')]
GUIDED = [dict(method='guided', guide_q=q) for q in (0.0, 0.25, 0.5, 0.75, 1.0)]  # the oracle sweep
# the regime search
SCHEDULES = [dict(method='mae', lr_schedule='cosine'), dict(method='mae', lr_schedule='cosine', lr_mae=6e-3)]


def studies(root: Path, steps=STEPS, seconds=60.0):
    "{name: run_study arguments}, in the order they run (the prior reads the MLO-MAE run of `glyphs`)."
    base = dict(common=COMMON, protocols=PROTOCOLS, protocol_options=OPTIONS, max_steps=steps)
    return {
        'glyphs': dict(
            base,
            dataset='glyphs',
            methods=['untrained', 'mae', 'attmask'],
            settings=[
                FIVE,
                GUIDED[0],
                *(dict(g, **FIVE) for g in GUIDED[1:4]),
                GUIDED[4],
                *HARD,
                *(dict(m, **FIVE) for m in MLO),
                *SCHEDULES,
            ],
        ),
        'glyphs_distractor': dict(
            base, dataset='glyphs_distractor', methods=['untrained', 'mae'], settings=[{}, *HARD, *MLO]
        ),
        'glyphs_seconds': dict(
            base,
            dataset='glyphs',
            methods=['mae'],
            settings=[{}, GUIDED[2], *HARD, *MLO],
            max_steps=None,
            budget_seconds=seconds,
        ),
        **{
            f'glyphs_{v}': dict(base, dataset=f'glyphs_{v}', methods=['untrained', 'mae'], protocols=PROTOCOLS[:4])
            for v in ('flat', 'clutter', 'shape_only')
        },
        **{
            f'mae_{s}_steps': dict(
                base, dataset='glyphs', methods=['mae'], max_steps=s, protocols=['feedback'], protocol_options={}
            )
            for s in (steps // 4, steps // 2)
        },
    }


# The grey-cell images (08_glyphs: grey noise, 4 x 4-cell class shapes): the same regime, the head reading mean-pooled
# patch tokens (`head_pool='avg'`: the CLS token reads little here), which Stage III's L_val then passes to T; the
# paper's CLS head as a setting of MLO-MAE beside it.
CELLS_COMMON = dict(COMMON, head_pool='avg')
CELL_PROTOCOLS = ['knn', 'knn_val', 'linear_probe', 'stage2', 'object_share', 'feedback']
# MLO-MAE: B.2's T with each head, the per-patch T, and B.2's T at unit weights (Eq. 1's sigma forward off: A.4's
# straight-through, so its masks are used as the guided ones are)
CELL_MLO = [
    dict(method='mlo_mae', t_arch='mlp'),
    dict(method='mlo_mae', t_arch='mlp', head_pool='token'),
    dict(method='mlo_mae', t_arch='per_patch'),
    dict(method='mlo_mae', t_arch='mlp', straight_through=True),
]
KEEP_ONE_COPY = dict(method='guided', guide_q=1.0, guide_keep=True)  # the positive control of two copies


# MAE given the iterations MLO-MAE's training seconds buy: MLO-MAE (B.2's T) took 174 s and MAE 56 s for 400
# iterations in cells_copies (seeds 0 and 1, one thread, the two sharing this 2-core machine), a ratio of 3.1
SECONDS_MATCHED_STEPS = 1250
# the second budget: an MLO-MAE cell of 1,000 iterations takes about 7 minutes of one thread, within the 15
SECOND_BUDGET = 1000


def cell_studies(steps=STEPS):
    "{name: run_study arguments} of the grey-cell studies: the two-copy positive control first, then the main images, the distractor, MAE at MLO-MAE's seconds, T's learning rate, the second budget."
    base = dict(common=CELLS_COMMON, protocols=CELL_PROTOCOLS, protocol_options=OPTIONS, max_steps=steps)
    return {
        'cells_copies': dict(
            base,
            dataset='glyphs_cells_copies',
            methods=['untrained', 'mae', 'attmask'],
            settings=[{}, KEEP_ONE_COPY, *GUIDED, *CELL_MLO, *HARD],
        ),
        'cells': dict(base, dataset='glyphs_cells', methods=['untrained', 'mae'], settings=[{}, *GUIDED, CELL_MLO[0]]),
        'cells_distractor': dict(
            base, dataset='glyphs_cells_distractor', methods=['untrained', 'mae'], settings=[{}, CELL_MLO[0]]
        ),
        **{
            f'{name}_mae_{SECONDS_MATCHED_STEPS}': dict(
                base, dataset=dataset, methods=['mae'], max_steps=SECONDS_MATCHED_STEPS
            )
            for name, dataset in (('cells_copies', 'glyphs_cells_copies'), ('cells', 'glyphs_cells'))
        },
        # beside cells_copies' 1e-3: chosen by k-NN on D_val
        'cells_copies_lr_t': dict(
            base,
            dataset='glyphs_cells_copies',
            methods=[],
            settings=[dict(CELL_MLO[0], lr_t=lr) for lr in (1e-4, 1e-2)],
        ),
        f'cells_copies_{SECOND_BUDGET}': dict(
            base,
            dataset='glyphs_cells_copies',
            methods=['untrained', 'mae'],
            settings=[{}, KEEP_ONE_COPY, CELL_MLO[0]],
            max_steps=SECOND_BUDGET if steps == STEPS else steps,
        ),
    }


def quick_studies(steps=3):
    "(studies, grey-cell studies) of the quick version: a few cells of `glyphs` and of `cells_copies`, the cheap protocols."
    quick = dict(
        protocols=['knn', 'stage2', 'object_share', 'feedback'],
        protocol_options=dict(pool='avg', batches=2, max_images=256),
    )
    glyphs = dict(studies(Path('.'), steps)['glyphs'], methods=['untrained', 'mae'], settings=[{}, GUIDED[-1], MLO[0]])
    copies = dict(cell_studies(steps)['cells_copies'], methods=['mae'], settings=[{}, KEEP_ONE_COPY])
    return {'glyphs': dict(glyphs, **quick)}, {
        'cells_copies': dict(copies, protocols=['object_share'], protocol_options=dict(max_images=256))
    }


# the position-prior studies: {study: the study whose seed-0 MLO-MAE run (B.2's T) gives the prior}
PRIORS = {'prior': 'glyphs', 'cells_copies_prior': 'cells_copies'}


def prior_study(root: Path, steps=STEPS, of='glyphs'):
    "The position prior of seed 0's MLO-MAE run (B.2's T, the study's first such cell) of the study `of`, as a study of its own."
    from mlo_mae.study import plan_study

    kw = {k: v for k, v in {**studies(root, steps), **cell_studies(steps)}[of].items() if k != 'reference'}
    run = next(c.out for c in plan_study(root / of, seeds=[0], **kw) if c.method == 'mlo_mae' and c.cfg.t_arch == 'mlp')
    return dict(
        common=dict(kw['common'], prior_from=str(run)),
        protocols=[p for p in kw['protocols'] if p != 'feedback'],
        protocol_options=kw['protocol_options'],
        max_steps=steps,
        dataset=kw['dataset'],
        methods=['prior'],
        settings=[FIVE],
        reference='prior',
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default='figures/known_answer', help='the folder of the studies')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument(
        '--only', nargs='+', default=None, help='only these studies (names: glyphs, glyphs_distractor, ..., prior)'
    )
    p.add_argument(
        '--quick',
        action='store_true',
        help='one seed, a few steps, a few cells of glyphs and cells_copies (what nbdev_test runs)',
    )
    a = p.parse_args(argv)
    import torch
    from mlo_mae.study import run_study

    torch.set_num_threads(1)
    root = Path(a.out)
    steps, seeds = (3, [0]) if a.quick else (STEPS, a.seeds)
    todo = studies(root, steps)
    todo, cells = quick_studies(steps) if a.quick else (todo, cell_studies(steps))
    for name, kw in todo.items():
        if a.only and name not in a.only:
            continue
        print(f"== {name}", flush=True)
        res = run_study(root / name, seeds=seeds, threads=1, **kw)
        print(json.dumps(res['done']), flush=True)
    for name, kw in cells.items():
        if a.only and name not in a.only:
            continue
        for k in range(1, len(seeds) + 1):  # seed by seed: a study cut short has whole seeds
            print(f"== {name}, seeds {seeds[:k]}", flush=True)
            res = run_study(root / name, seeds=seeds[:k], threads=1, **kw)
        print(json.dumps(res['done']), flush=True)
    for name, of in PRIORS.items():
        if not a.quick and (a.only is None or name in a.only):
            print(f"== {name}", flush=True)
            run_study(root / name, seeds=seeds, threads=1, **prior_study(root, steps, of))


if __name__ == '__main__':
    main()
