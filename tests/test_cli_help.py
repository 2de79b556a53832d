"""Every command's `--help` is answered by its parser alone, torch never imported: the console scripts as `settings.ini`
names them (called as the installed script calls them: it is not reinstalled here) and the `python -m` forms as a user
runs them. The help of evaluate_run and study lists every registered protocol's label and options: the protocols'
modules (evaluate_run, reports, known_answer) are imported for it, torch not."""
import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def console_scripts() -> dict:
    "{script: 'module:function'} of settings.ini's console_scripts."
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'settings.ini')
    return dict(s.split('=', 1) for s in cfg['DEFAULT']['console_scripts'].split())


# what pip's console-script wrapper does: import the module, call the function, which reads sys.argv
WRAPPER = ("import importlib, sys\n"
           "module, function = sys.argv.pop(1).split(':')\n"
           "try:\n    getattr(importlib.import_module(module), function)()\n"
           "except SystemExit as e:\n    print('exit', e.code)\n"
           "print('torch imported:', 'torch' in sys.modules)")


def script(name: str, *args):
    return subprocess.run([sys.executable, '-c', WRAPPER, console_scripts()[name], *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_the_four_console_scripts_are_read():
    assert sorted(console_scripts()) == ['mlo_mae_evaluate', 'mlo_mae_export', 'mlo_mae_study', 'mlo_mae_train']


@pytest.mark.parametrize('name', ['mlo_mae_train', 'mlo_mae_evaluate', 'mlo_mae_study', 'mlo_mae_export'])
def test_console_script_help_imports_no_torch(name):
    r = script(name, '--help')
    assert r.stdout.startswith('usage: ') and r.stdout.splitlines()[-2:] == ['exit 0', 'torch imported: False'], \
        r.stdout[-300:] + r.stderr[-2000:]


def test_a_misspelt_flag_of_mlo_mae_train_is_refused_before_torch():
    r = script('mlo_mae_train', '--mask_ration', '0.5')
    assert r.stdout.splitlines() == ['exit 2', 'torch imported: False'], r.stdout + r.stderr[-2000:]
    assert 'unrecognized arguments: --mask_ration' in r.stderr


def imported(*args):
    "The run of `python -X importtime *args` and the modules it imported (read from its import-time lines)."
    r = subprocess.run([sys.executable, '-X', 'importtime', *args], capture_output=True, text=True, cwd=ROOT)
    return r, {line.rsplit('|', 1)[1].strip() for line in r.stderr.splitlines() if line.startswith('import time:')}


def test_the_import_check_sees_torch():
    "The check can fail: a command that imports torch is seen to."
    r, modules = imported('-c', 'import torch')
    assert r.returncode == 0 and 'torch' in modules and 'json' in imported('-c', 'import json')[1]


@pytest.mark.parametrize('module', ['mlo_mae.train', 'mlo_mae.evaluate_run', 'mlo_mae.study', 'mlo_mae.export'])
def test_python_m_help_imports_no_torch(module):
    r, modules = imported('-m', module, '--help')
    assert r.returncode == 0 and r.stdout.startswith('usage: '), r.stderr[-2000:]
    assert 'torch' not in modules
    if module in ('mlo_mae.evaluate_run', 'mlo_mae.study'):  # every protocol's module was read, torch or not
        from mlo_mae.registry import declared
        missing = [p for p in declared('protocol') if p not in r.stdout]
        assert not missing and '--mask_seed' in r.stdout and '--batches' in r.stdout, missing
