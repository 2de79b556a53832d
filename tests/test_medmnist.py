"""MedMNIST by name through the command lines: a run of `--dataset dermamnist` from a small file in MedMNIST's layout
trains (with the set's own val split as D_val), resumes and reports; bad settings are one line before any work; the
package declares every 2D flag as an entry point, as a plugin package declares its datasets."""
import importlib.util, json, os, subprocess, sys
from configparser import ConfigParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _medmnist_env() -> dict:
    "The environment of the CLIs: mlo_mae.medmnist imported as a plugin where the installed metadata predates its entry points."
    from mlo_mae.registry import declared
    stale = 'dermamnist' not in declared('dataset')   # an editable install made before settings.ini named them
    return {'OMP_NUM_THREADS': '1', **({'MLO_MAE_PLUGINS': 'mlo_mae.medmnist'} if stale else {})}


def cli(module, *args):
    return subprocess.run([sys.executable, '-m', module, *args], capture_output=True, text=True,
                          env={**os.environ, **_medmnist_env()})


def test_settings_ini_declares_every_2d_flag():
    "Each flag is an entry point `name = mlo_mae.medmnist` of the datasets group, next to the built-in datasets."
    from mlo_mae.medmnist import FLAGS
    cfg = ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini', encoding='utf-8')
    entries = dict(e.split('=') for e in cfg['DEFAULT']['datasets'].split())
    assert {f: entries.get(f) for f in FLAGS} == {f: 'mlo_mae.medmnist' for f in FLAGS}
    assert cfg['DEFAULT']['medmnist_requirements'].split() == ['medmnist>=3.0']


def test_the_installed_entry_points_import_the_module():
    "Looked up by name with no plugin named, `dermamnist` imports mlo_mae.medmnist (needs an install made from this settings.ini)."
    from mlo_mae.registry import declared
    if 'dermamnist' not in declared('dataset'):
        pytest.skip("the installed mlo_mae's entry points predate MedMNIST's: pip install --no-deps -e .")
    code = "from mlo_mae.data import DATASETS; s = DATASETS['dermamnist']; print(type(s).__module__, s.num_classes)"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != 'MLO_MAE_PLUGINS'})
    assert r.returncode == 0 and r.stdout.split() == ['mlo_mae.medmnist', '7'], r.stderr


def test_dermamnist_trains_resumes_and_reports_through_the_clis(tmp_path):
    from mlo_mae.data import dataset_spec
    import mlo_mae.medmnist  # noqa: F401  registers the flags in this process too
    data, run = dataset_spec('dermamnist').write_example(tmp_path / 'derma', size=64, images=(40, 16, 14)), tmp_path / 'run'
    common = ['--device', 'cpu', '--progress', 'false', '--num_workers', '0']
    r = cli('mlo_mae.train', '--dataset', 'dermamnist', '--data_dir', str(data), '--img_size', '64', '--dval', 'val',
            '--preset', 'smoke', '--epochs', '10', '--batch_size', '8', '--max_steps', '3', '--out_dir', str(run), *common)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.loads((run / 'config.json').read_text())
    assert (cfg['dataset'], cfg['img_size'], cfg['dval']) == ('dermamnist', 64, 'val')
    # D_val is the file's 16 val images, not a fifth of its 40 training images (8)
    assert json.loads((run / 'mask_map.json').read_text())['images'] == 16
    final = json.loads((run / 'final.json').read_text())
    assert (final['steps'], final['test_images'], final['chance']) == (3, 14, 100 / 7)
    r = cli('mlo_mae.train', '--resume', '--out_dir', str(run), '--max_steps', '5', *common)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((run / 'final.json').read_text())['steps'] == 5
    r = cli('mlo_mae.evaluate_run', str(run), '--protocol', 'report', '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((run / 'eval_report.json').read_text())
    assert len(rep['classes']) == 7
    if importlib.util.find_spec('medmnist') is None:   # else medmnist.INFO's names
        assert rep['classes'] == ['0', '1', '2', '3', '4', '5', '6']
    assert sum(c['support'] for c in rep['per_class'].values()) == 14                   # every test image, once


def test_bad_medmnist_settings_are_one_line_before_any_work(tmp_path):
    from mlo_mae.data import dataset_spec
    import mlo_mae.medmnist  # noqa: F401
    data = dataset_spec('dermamnist').write_example(tmp_path / 'derma')
    dataset_spec('chestmnist').write_example(data)
    common = ['--device', 'cpu', '--progress', 'false', '--max_steps', '1']
    for args, says in (
        (['--dataset', 'cifar10_mini', '--dval', 'val'],
         'dataset cifar10_mini has no validation split of its own: pass --dval split'),
        (['--dataset', 'dermamnist', '--data_dir', str(data), '--img_size', '32'],
         'dermamnist comes at 28, 64, 128, 224 px, one file each'),
        (['--dataset', 'dermamnist', '--data_dir', str(data), '--img_size', '64'],
         f"no {data / 'dermamnist_64.npz'}: put dermamnist_64.npz"),
        (['--dataset', 'chestmnist', '--data_dir', str(data)],
         'chestmnist is multi-label, binary-class: 14 yes/no labels per image'),
    ):
        out = tmp_path / 'run'
        r = cli('mlo_mae.train', *args, '--out_dir', str(out), *common)
        assert r.returncode != 0 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
