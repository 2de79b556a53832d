"""Your own data, through the README's commands: a 28-px two-split image folder with unequal classes trains at 28 px
(patch 4), resumes, and is reported (per-class report, reconstruction picture) by the CLIs; a patch that does not divide
the size is refused in one line before any work."""
import csv, json, os, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
COUNTS = {'benign': 40, 'malignant': 16, 'rare': 8}     # unequal on purpose (DermaMNIST-like imbalance)
TEST_PER_CLASS = 4
TRAIN = ('--dataset', 'imagefolder', '--preset', 'smoke', '--batch_size', '8', '--num_workers', '0', '--class_balance')


def write_folder(root: Path, size=28) -> Path:
    "train/<class>/*.png with COUNTS images, test/<class>/*.png with TEST_PER_CLASS each; each class its own tint."
    rng = np.random.default_rng(0)
    for split, per in (('train', COUNTS), ('test', dict.fromkeys(COUNTS, TEST_PER_CLASS))):
        for k, (c, n) in enumerate(per.items()):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 128, (size, size, 3), dtype=np.uint8)
                a[..., k] += 127                                   # class k: channel k brighter
                Image.fromarray(a).save(root / split / c / f'{i}.png')
    return root


def cli(module, *args):
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, '-m', module, *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT)
    return r, time.perf_counter() - t


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "The README's two commands: train for 2 iterations, then resume to 4 (the resume continues the same run)."
    d = tmp_path_factory.mktemp('own')
    data, run = write_folder(d / 'skin'), d / 'run'
    r, t1 = cli('mlo_mae.train', *TRAIN, '--data_dir', data, '--out_dir', run, '--max_steps', '2')
    assert r.returncode == 0, r.stderr[-2000:]
    r2, t2 = cli('mlo_mae.train', '--out_dir', run, '--resume', '--max_steps', '4', '--data_dir', data, '--progress', 'false')
    assert r2.returncode == 0, r2.stderr[-2000:]
    print(f"\n28-px folder: train 2 iterations {t1:.1f} s, resume to 4 {t2:.1f} s (wall, incl. start-up)")
    return data, run, r.stderr, json.loads(r2.stdout.strip().splitlines()[-1])


def test_trains_at_its_own_size_and_resumes(trained):
    data, run, stderr, summary = trained
    cfg = json.loads((run / 'config.json').read_text())
    assert (cfg['img_size'], cfg['model_kw'], cfg['class_balance']) == (28, {'img_size': 28, 'patch_size': 4}, True)
    assert "imagefolder: images per class {'benign': 40, 'malignant': 16, 'rare': 8}" in stderr   # imbalance said at load
    assert summary['steps'] == 4 and summary['test_images'] == 3 * TEST_PER_CLASS
    steps = [json.loads(l)['step'] for l in (run / 'metrics.jsonl').read_text().splitlines()]
    assert steps == [1, 2, 3, 4]                                       # resumed: appended, not restarted


def test_report_and_reconstruct_through_the_cli(trained):
    data, run, _, summary = trained
    r, t = cli('mlo_mae.evaluate_run', run, '--protocol', 'report')
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    print(f"report: {t:.1f} s; accuracy {rep['accuracy']:.1f}%, macro F1 {rep['macro']['f1']:.3f}")
    assert list(rep['per_class']) == list(COUNTS) and [v['support'] for v in rep['per_class'].values()] == [TEST_PER_CLASS] * 3
    assert rep['accuracy'] == pytest.approx(summary['stage2_test_accuracy'])   # the run's own classifier, the same number
    rows = list(csv.reader(open(rep['confusion_csv'])))
    assert rows[0][1:] == list(COUNTS) and [r[0] for r in rows[1:]] == list(COUNTS)
    cm = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    assert cm.sum() == 3 * TEST_PER_CLASS and (cm.sum(1) == TEST_PER_CLASS).all()
    assert rep['accuracy'] == pytest.approx(100 * np.trace(cm) / cm.sum())
    assert Image.open(rep['confusion_png']).size[0] > 100
    r, t = cli('mlo_mae.evaluate_run', run, '--protocol', 'reconstruct', '--images', '3')
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(r.stdout)
    print(f"reconstruct: {t:.1f} s")
    assert rec['images'] == 3 and rec['masks'] == ['MLO-MAE mask', 'random mask'] and Path(rec['png']).is_file()


def test_a_patch_that_does_not_divide_is_refused_in_one_line(tmp_path):
    data = write_folder(tmp_path / 'skin')
    r, t = cli('mlo_mae.train', *TRAIN, '--data_dir', data, '--out_dir', tmp_path / 'run', '--patch_size', '5')
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'image size 28 is not divisible by the patch size 5: choose patch_size among 1, 2, 4, 7, 14' in r.stderr
    assert not (tmp_path / 'run').exists()
