"""Your own masking method and protocol from your own file, without editing the package: `--plugins my_masking.py` on the
training CLI imports it before any name is checked; the run keeps the setting, so a resume and `evaluate_run` import it
again by themselves; `evaluate_run --plugins` and $MLO_MAE_PLUGINS make its protocols choices of the command line.
The plugin's masking is checked against what it must do (the first N*r patches of every image), not against a saved output."""
import json, os, subprocess, sys, textwrap

PLUGIN = textwrap.dedent('''
    import torch
    from mlo_mae.config import UNIT_INTERVAL, register_method, setting
    from mlo_mae.mlo import Method
    from mlo_mae.masking import topk_masking
    from mlo_mae.evaluate_run import Measure, Protocol, register_protocol

    @register_method
    class FirstPatches(Method):
        "Mask the first N*r patches of every image (row by row): a masking rule of one's own."
        name, label = 'first_patches', 'first patches'
        options = dict(first_share=setting(1.0, 'the share of the masked patches taken from the first ones', **UNIT_INTERVAL))

        def masking(self, model, xu, mask_ratio, maps=None):
            N = model.mae.num_patches
            score = torch.arange(N, 0, -1, device=xu.device, dtype=torch.float32).expand(xu.shape[0], N)
            return topk_masking(score, mask_ratio), None

    @register_protocol
    class MaskedShare(Protocol):
        "Share of the first N*r positions among those the run's method masks (1.0 for first_patches)."
        name, label = 'first_share', 'share of the first patches masked'
        measures = (Measure('first_share', 'share of the first patches masked', 'first share', percent=False),)
        def run(self, run):
            x = next(iter(run.loader(run.test_set)))[0]
            m = run.method.masking(run.model, x, run.cfg.mask_ratio)[0].mask.float()
            k = int(m[0].sum())
            return dict(share=float(m[:, :k].mean()))
        def row(self, result): return dict(first_share=result['share'])
''')


def cli(module, *args, env=None):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}
    return subprocess.run([sys.executable, '-m', module, *args], capture_output=True, text=True, env=env)


def test_a_plugin_method_and_protocol_from_a_file(tmp_path):
    plugin, run = tmp_path / 'my_masking.py', tmp_path / 'run'
    plugin.write_text(PLUGIN)
    common = ['--out_dir', str(run), '--batch_size', '16', '--progress', 'false', '--num_workers', '0', '--device', 'cpu']
    r = cli('mlo_mae.train', '--method', 'first_patches', '--max_steps', '2', *common)
    assert r.returncode != 0 and 'first_patches' in r.stderr                      # unknown without the plugin
    r = cli('mlo_mae.train', '--plugins', str(plugin), '--method', 'first_patches', '--first_share', '1.5', '--max_steps', '2', *common)
    assert r.returncode != 0 and 'first_share must be in [0, 1], got 1.5' in r.stderr and not run.exists()   # its own rule
    r = cli('mlo_mae.train', '--plugins', str(plugin), '--method', 'first_patches', '--first_share', '0.5', '--max_steps', '2', *common)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.loads((run / 'config.json').read_text())
    assert cfg['plugins'] == str(plugin.resolve()) and cfg['method'] == 'first_patches'
    assert cfg['options'] == {'first_share': 0.5}                                  # the plugin method's own setting, from its flag
    r = cli('mlo_mae.train', '--resume', '--out_dir', str(run), '--max_steps', '3', '--progress', 'false')  # the run's own plugin
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((run / 'config.json').read_text())['options'] == {'first_share': 0.5}   # and its own options
    assert json.loads((run / 'final.json').read_text())['steps'] == 3
    r = cli('mlo_mae.evaluate_run', str(run), '--protocol', 'first_share', '--device', 'cpu')
    assert r.returncode == 2 and 'first_share' in r.stderr                        # not a choice without the plugin
    r = cli('mlo_mae.evaluate_run', str(run), '--protocol', 'first_share', '--device', 'cpu', env={'MLO_MAE_PLUGINS': str(plugin)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)['share'] == 1.0                                    # every one of the first N*r masked
    r = cli('mlo_mae.evaluate_run', str(run), '--protocol', 'knn', '--device', 'cpu')   # the run's method, from its settings
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_taken_name_and_a_nameless_method_are_refused_in_one_line(tmp_path):
    for body, says in (("class Mine(Method):\n    name = 'mae'\n", "method name 'mae' is taken by mlo_mae.mlo.Method"),
                       ("class Mine(Method):\n    label = 'no name'\n", 'method Mine declares no name of its own')):
        plugin = tmp_path / 'clash.py'
        plugin.write_text(f"from mlo_mae.config import register_method\nfrom mlo_mae.mlo import Method\n@register_method\n{body}")
        r = cli('mlo_mae.train', '--plugins', str(plugin), '--out_dir', str(tmp_path / 'run'), '--max_steps', '1')
        assert r.returncode != 0 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / 'run').exists()


def test_a_broken_plugin_is_one_line(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('import no_such_module_here\n')
    r = cli('mlo_mae.evaluate_run', str(tmp_path), '--plugins', str(bad))
    assert r.returncode == 1 and 'could not be imported (ModuleNotFoundError' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
