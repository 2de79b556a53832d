"""`python -m mlo_mae.export RUN DIR`: a tiny finished run exported through the command line and loaded back by timm
alone (`local-dir:`), with the run's own features; its help answers without importing torch."""
import json, subprocess, sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    from mlo_mae.train import train
    out = tmp_path_factory.mktemp('export') / 'run'
    train(out_dir=str(out), method='mae', max_steps=2, progress=False, num_workers=0, threads=1)
    return out


def cli(*args):
    return subprocess.run([sys.executable, '-m', 'mlo_mae.export', *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_help_imports_no_torch():
    code = ("import sys\nfrom mlo_mae.export import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
            "print('torch' in sys.modules, 'timm' in sys.modules)")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == 'False False', r.stdout + r.stderr
    assert 'mlo_mae_export=mlo_mae.cli:export' in (ROOT / 'settings.ini').read_text()


def test_the_cli_exports_what_timm_loads_back(run, tmp_path):
    import timm
    from safetensors.torch import load_file
    from mlo_mae.runs import load_run
    r = cli(run, tmp_path / 'model')
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res['out_dir'] == str(tmp_path / 'model') and res['method'] == 'mae' and res['steps'] == 2
    assert len(r.stderr.strip().splitlines()) == 1 and 'local-dir:' in r.stderr
    vit = timm.create_model(f"local-dir:{tmp_path / 'model'}", pretrained=True).eval()
    file = load_file(str(tmp_path / 'model' / 'model.safetensors'))
    assert set(vit.state_dict()) == set(file) == set(load_file(str(run / 'encoder_timm.safetensors')))
    _, model = load_run(run)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(vit(x), model.mae.forward_features(x), rtol=1e-5, atol=1e-6)
    # again: refused in one line, the folder as it was; --overwrite replaces it
    before = (tmp_path / 'model' / 'model.safetensors').read_bytes()
    r = cli(run, tmp_path / 'model')
    assert r.returncode == 1 and 'pass --overwrite' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (tmp_path / 'model' / 'model.safetensors').read_bytes() == before
    assert cli(run, tmp_path / 'model', '--overwrite').returncode == 0


def test_the_cli_refuses_a_folder_that_is_no_run(tmp_path):
    (tmp_path / 'config.json').write_text('{"lr": 0.1}')
    r = cli(tmp_path, tmp_path.parent / f'{tmp_path.name}-model')
    assert r.returncode == 1 and 'is not a run of mlo_mae' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path.parent / f'{tmp_path.name}-model').exists()
