"""The benchmark's command line in its quick form on the CPU: one JSON line per record, with the fields every record carries."""
import json, subprocess, sys
from pathlib import Path

import pytest

STEP_FIELDS = {
    'kind', 'setting', 'model', 'batch_size', 'img_size', 'amp', 'synthetic', 'unroll_steps',
    'device', 'device_name', 'threads', 'torch', 'date', 'tf32_default',
    'mae_ms', 'mae_img_s', 'mae_peak_gib',
    'mlo_ms', 'mlo_img_s', 'mlo_peak_gib', 'ratio',
    'mlo5_ms', 'mlo5_img_s', 'mlo5_peak_gib', 'ratio5',
    'hg_alpha', 'hg_cosine', 'hg_rel_err', 'hg_exact_ms', 'hg_fd_ms', 'hg_forward_cosine', 'hg_forward_rel_err', 'hg_forward_ms',
    'mlo_tf32_ms', 'ratio_tf32', 'epoch50k_unroll2_s',
}


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench') / 'sub' / 'bench.json'
    p = subprocess.run([sys.executable, '-m', 'mlo_mae.benchmark', '--device', 'cpu', '--quick', '--threads', '1',
                        '--out', str(out)], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[1])
    assert p.returncode == 0, p.stderr[-3000:]
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()], out


def test_cli_prints_json_lines_with_the_fields(run):
    records, _ = run
    steps = [r for r in records if r['kind'] == 'step']
    loaders = [r for r in records if r['kind'] == 'loader']
    assert len(steps) == 1 and len(loaders) == 1
    r = steps[0]
    assert STEP_FIELDS <= set(r), STEP_FIELDS - set(r)
    assert r['device'] == 'cpu' and r['setting'] == 'micro' and r['threads'] == 1
    assert r['mae_peak_gib'] is None and r['mlo_peak_gib'] is None      # no GPU memory on the CPU
    assert r['mlo_tf32_ms'] is None                                      # TF32 only on a GPU
    for k in ('mae_ms', 'mlo_ms', 'mlo5_ms', 'mae_img_s', 'mlo_img_s', 'hg_exact_ms', 'hg_fd_ms'):
        assert r[k] > 0, k
    # the derived figures follow from the measured ones
    assert abs(r['mae_img_s'] - r['batch_size'] * 1000 / r['mae_ms']) < 1e-6 * r['mae_img_s']
    assert abs(r['ratio'] - r['mlo_ms'] / r['mae_ms']) < 1e-9 * r['ratio']
    assert abs(r['ratio5'] - r['mlo5_ms'] / r['mae_ms']) < 1e-9 * r['ratio5']
    assert -1 <= r['hg_cosine'] <= 1 and r['hg_rel_err'] >= 0
    assert loaders[0]['loader_img_s'] > 0 and loaders[0]['dataset'] == 'cifar10_mini'


def test_cli_writes_the_same_records_to_out(run):
    records, out = run
    assert json.loads(out.read_text()) == records


def test_cli_refuses_bad_input():
    p = subprocess.run([sys.executable, '-m', 'mlo_mae.benchmark', '--device', 'cpu', '--settings', 'nope'],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and 'unknown setting' in p.stderr


def test_forward_mode_hypergradient_agrees_with_exact(run):
    "The forward-mode T path is exact: against kind='exact' on the timed setting (float32) it agrees to rounding."
    r = next(r for r in run[0] if r['kind'] == 'step')
    assert r['hg_forward_cosine'] > 0.9999 and r['hg_forward_rel_err'] < 1e-3, (r['hg_forward_cosine'], r['hg_forward_rel_err'])


def test_cli_paths_and_flops_records():
    "--paths times every solver path; --flops counts them at a setting (meta device)."
    p = subprocess.run([sys.executable, '-m', 'mlo_mae.benchmark', '--device', 'cpu', '--quick', '--threads', '1', '--no-check',
                        '--paths', '--flops', 'micro'], capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).resolve().parents[1])
    assert p.returncode == 0, p.stderr[-3000:]
    records = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    paths = next(r for r in records if r['kind'] == 'paths')
    flops = next(r for r in records if r['kind'] == 'flops')
    assert set(paths['paths']) == {'default', 'forward', 'default_reuse', 'forward_reuse', 'exact'}
    assert all(v['ms'] > 0 for v in paths['paths'].values())
    assert set(flops['paths']) == {'default', 'forward', 'default_reuse', 'forward_reuse', 'exact', 'reference'}
    F = flops['paths']
    # reusing Stage I's gradient drops Eq. 6's masked forward and backward, and nothing else
    assert F['default_reuse']['parts']['eq6_rec_grad'] == 0 < F['default']['parts']['eq6_rec_grad']
    assert abs(F['default']['stage_three'] - F['default_reuse']['stage_three'] - F['default']['parts']['eq6_rec_grad']) < 1e-9


def test_memory_measure_prints_no_profiler_lines():
    "The CPU memory measure runs torch.profiler: its start/stop lines and a no-GPU 'gpuGetDeviceCount failed' line stay quiet."
    code = ("from mlo_mae.benchmark import measure_paths\n"
            "r = measure_paths('micro', 'cpu', repeats=1, threads=1, paths=['default'])\n"
            "print('peak', r)")
    env = {k: v for k, v in __import__('os').environ.items() if k != 'KINETO_LOG_LEVEL'}
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'peak' in r.stdout
    for line in ('gpuGetDeviceCount', 'profiler_start', 'profiler_stop'):
        assert line not in r.stderr, r.stderr[-2000:]
