"""The known-answer study on the glyph benchmark: one process, one thread, cells run in order, each row appended to
figures/known_answer/study.csv as it finishes (a cell already there is skipped, so an interrupted study resumes).

    python tools/known_answer.py --seeds 0 1 --steps 400            # the study of the README
    python tools/known_answer.py --seeds 0 --steps 20 --out /tmp/ka  # a quick check
"""
import argparse, csv, json, os, time
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch

from mlo_mae.known_answer import known_answer_run, _glyph_data

# (label, method, dataset, settings): the q-sweep, the controls, the two T's, the label-free learned masking
CELLS = [('untrained', 'untrained', 'glyphs', {}), ('mae', 'mae', 'glyphs', {}),
         ('guided q=0', 'guided', 'glyphs', dict(guide_q=0.0)), ('guided q=0.5', 'guided', 'glyphs', dict(guide_q=0.5)),
         ('guided q=1', 'guided', 'glyphs', dict(guide_q=1.0)), ('hard patches', 'hard_patches', 'glyphs', dict(t_arch='per_patch')),
         ('MLO-MAE (B.2 T)', 'mlo_mae', 'glyphs', dict(t_arch='mlp')), ('MLO-MAE (per-patch T)', 'mlo_mae', 'glyphs', dict(t_arch='per_patch')),
         ('mae', 'mae', 'glyphs_distractor', {}), ('MLO-MAE (B.2 T)', 'mlo_mae', 'glyphs_distractor', dict(t_arch='mlp')),
         ('MLO-MAE (per-patch T)', 'mlo_mae', 'glyphs_distractor', dict(t_arch='per_patch'))]
COLUMNS = ['label', 'method', 'dataset', 'seed', 'steps', 'knn', 'linear', 'object_share', 'object_share_std', 'object_minus_random',
           'distractor_share', 'distractor_share_std', 'random_share', 'seconds', 'settings']

def _done(path):
    if not path.exists(): return set()
    with open(path) as f: return {(r['label'], r['dataset'], int(r['seed']), int(r['steps'])) for r in csv.DictReader(f)}

def _append(path, row, columns):
    new = not path.exists()
    with open(path, 'a', newline='') as f:
        w = csv.DictWriter(f, columns, extrasaction='ignore')
        if new: w.writeheader()
        w.writerow(row)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    p.add_argument('--steps', type=int, default=400)
    p.add_argument('--out', default='figures/known_answer')
    p.add_argument('--feedback_at', type=int, nargs='*', default=[0, 100, 200, 400], help='MAE steps at which the feedback signal is measured')
    p.add_argument('--datasets', nargs='+', default=['glyphs', 'glyphs_distractor'])
    p.add_argument('--labels', nargs='+', default=None, help='only these cells (default: all of CELLS)')
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    done, data = _done(out/'study.csv'), {}
    for seed in a.seeds:
        for label, method, dataset, settings in CELLS:
            if dataset not in a.datasets or (a.labels and label not in a.labels) or (label, dataset, seed, a.steps) in done: continue
            data.setdefault(dataset, _glyph_data(dataset))
            fb = tuple(s for s in a.feedback_at if s <= a.steps) if method == 'mae' else ()
            t = time.time()
            r = known_answer_run(method, seed, a.steps, dataset, data=data[dataset], feedback_at=fb, **settings)
            _append(out/'study.csv', dict(r, label=label, settings=json.dumps(settings)), COLUMNS)
            for step, groups in r['feedback'].items():
                for g, v in groups.items():
                    _append(out/'feedback.csv', dict(dataset=dataset, seed=seed, step=step, group=g, **v),
                            ['dataset', 'seed', 'step', 'group', 'mean', 'ci95', 'n'])
            with open(out/'masks.jsonl', 'a') as f:   # the first 16 D_val images' masks: the figure's examples
                f.write(json.dumps(dict(label=label, dataset=dataset, seed=seed, steps=a.steps, masks=r['masks'][:16].int().tolist())) + '\n')
            print(f"{label:24s} {dataset:18s} seed {seed}: knn {r['knn']:.1f} lin {r['linear']:.1f} object {r['object_share']:.3f} "
                  f"distractor {r.get('distractor_share', float('nan')):.3f} ({time.time() - t:.0f} s)", flush=True)

if __name__ == '__main__': main()
