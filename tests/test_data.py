"""Slower data checks: the embedded subset against the full CIFAR-10, and the real cifar10 loader.

They need ../shared/data/cifar10 (the project's offline CIFAR-10 pack; or $MLO_MAE_CIFAR10_PACK) and are skipped without it.
"""
import os, subprocess, sys, tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mlo_mae.data import BatchLoader, load_dataset, mlo_splits

PACK = Path(os.environ.get('MLO_MAE_CIFAR10_PACK', Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'cifar10'))


@pytest.fixture(scope='session')
def cifar10_dir(tmp_path_factory):
    if not (PACK / 'build.py').exists(): pytest.skip('no ../shared/data/cifar10 pack here')
    out = tmp_path_factory.mktemp('cifar10')
    subprocess.run([sys.executable, str(PACK / 'build.py'), str(out)], check=True, capture_output=True)
    return out


def test_mini_labels_and_pixels_are_cifar10s(cifar10_dir):
    "Every embedded image carries the label the full dataset gives its index, and the exact subset's pixels."
    d = np.load(Path(__file__).resolve().parents[1] / 'mlo_mae' / 'assets' / 'cifar10_mini.npz')
    train, test, _ = load_dataset('cifar10', cifar10_dir, download=False)
    assert len(train) == 50_000 and len(test) == 10_000
    assert torch.equal(train.labels[torch.as_tensor(d['train_index'])], torch.as_tensor(d['y_train']))
    assert torch.equal(test.labels[torch.as_tensor(d['test_index'])], torch.as_tensor(d['y_test']))
    exact = np.load(cifar10_dir / 'cifar10_exact_subset.npz')
    pos = {int(k): i for i, k in enumerate(exact['train_index'])}
    rows = [pos[int(k)] for k in d['train_index']]
    assert np.array_equal(exact['x_train'][rows], d['x_train'])
    # the JPEG-derived full pack is close to the exact pixels (README: mean abs error ~5.8 levels)
    full = train.images[torch.as_tensor(d['train_index'])].permute(0, 2, 3, 1).numpy().astype(float)
    assert np.abs(full - d['x_train']).mean() < 10


def test_cifar10_full_splits_and_loader(cifar10_dir):
    train, test, spec = load_dataset('cifar10', cifar10_dir, download=False)
    s = mlo_splits(train, seed=0)
    assert (len(s.dtr), len(s.dval), len(s.du)) == (40_000, 10_000, 40_000)
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    x, y = next(iter(BatchLoader(s.du, spec, 128).epoch(0)))
    assert x.shape == (128, 3, 32, 32) and x.dtype == torch.float32
    # normalised training pixels: mean near 0 (zero padding of random crops pulls it a little down)
    assert abs(float(x.mean())) < 0.3


def test_check_dataset_on_full_cifar10(cifar10_dir):
    "check_dataset reads all six real batches (shapes checked) and names a truncated test_batch beside good train batches."
    from mlo_mae.data import check_dataset
    assert check_dataset('cifar10', cifar10_dir, download=False) is None
    with tempfile.TemporaryDirectory() as d:
        src, dst = cifar10_dir / 'cifar-10-batches-py', Path(d) / 'cifar-10-batches-py'
        dst.mkdir()
        for f in src.iterdir():
            if f.name != 'test_batch': (dst / f.name).symlink_to(f)
        (dst / 'test_batch').write_bytes((src / 'test_batch').read_bytes()[:1_000_000])
        check_dataset('cifar10', d, splits=('train',), download=False)
        with pytest.raises(ValueError) as e:
            check_dataset('cifar10', d, download=False)
        msg = str(e.value)
        assert msg.startswith(f"{dst / 'test_batch'} is corrupt") and 'delete the folder' in msg and '\n' not in msg


class _Toy:
    "A dataset of one's own, as a user writes it: random 32-px images in memory, 4 classes."
    @staticmethod
    def spec():
        from mlo_mae.data import DatasetSpec, InMemoryImages

        class Toy(DatasetSpec):
            name, img_size, mean, std, num_classes = 'toy', 32, (0.5,) * 3, (0.29,) * 3, 4
            def load(self, data_dir, splits=('train', 'test'), download=True):
                def make(split, n):
                    g = torch.Generator().manual_seed(('train', 'test').index(split))
                    return InMemoryImages(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                                          torch.randint(0, 4, (n,), generator=g), ['a', 'b', 'c', 'd'])
                return tuple(make(s, {'train': 64, 'test': 16}[s]) for s in splits)
        return Toy


@pytest.fixture
def toy():
    from mlo_mae.data import DATASETS, register_dataset
    register_dataset(_Toy.spec())
    try: yield DATASETS['toy']
    finally: DATASETS.pop('toy', None)   # unregistered whatever happens: the other tests see the built-ins only


def test_a_registered_toy_dataset_trains_with_nothing_else_touched(toy, tmp_path):
    "One registered spec is all a new dataset needs: load, check, the config's choices, the recipe row, 2 training iterations."
    from mlo_mae.config import TrainConfig
    from mlo_mae.data import check_dataset, DATASETS
    from mlo_mae.runs import resolve_config
    from mlo_mae.train import train
    train_set, test_set, spec = load_dataset('toy')
    assert spec is toy and (len(train_set), len(test_set)) == (64, 16)
    check_dataset('toy')
    assert TrainConfig(dataset='toy').dataset == 'toy'
    cfg = resolve_config(dataset='toy', out_dir=str(tmp_path / 'cfg'))
    assert (cfg.preset, cfg.model, cfg.epochs) == ('paper', 'vit_base_patch2_32', 200)   # the 32-px row of its recipe_size
    summary = train(dataset='toy', preset='smoke', max_steps=2, batch_size=8, out_dir=str(tmp_path / 'run'), progress=False,
                    num_workers=0, device='cpu')
    assert summary['steps'] == 2 and summary['chance'] == 25.0 and 0 <= summary['stage2_test_accuracy'] <= 100
    assert '"dataset": "toy"' in (tmp_path / 'run' / 'config.json').read_text()
    DATASETS.pop('toy')
    with pytest.raises(ValueError, match="unknown dataset 'toy'"): load_dataset('toy')


def test_no_dataset_is_named_outside_the_registry():
    "Nothing in the package or the tools compares against a registered dataset's name (00_data's specs hold each one's facts)."
    import re
    from mlo_mae.data import DATASETS
    root = Path(__file__).resolve().parents[1]
    names = '|'.join(map(re.escape, DATASETS))
    pattern = re.compile(rf"""(==|!=|\bin)\s*[(\[{{]?\s*['"]({names})['"]|['"]({names})['"]\s*(==|!=|\bin\b)"""
                         rf"""|\b(dataset|spec\.name)\s*(==|!=)|(?<!\w)_CIFAR\b""")
    hits = [f'{p.relative_to(root)}:{i}: {line.strip()}'
            for p in [*sorted((root / 'mlo_mae').glob('*.py')), *sorted((root / 'tools').glob('*.py'))]
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, '\n'.join(hits)
