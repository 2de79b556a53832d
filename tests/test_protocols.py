"""A protocol of one's own is one class: registered here (a nearest-class-mean classifier on frozen features, which needs
nothing of any dataset but its labels), it runs through `evaluate_run`, its option is a flag, and a 1 x 1 study (one
method, one seed) reports it in the CSV column, the figure's axis label and the README's table header that its `Measure`
declares; nothing else is touched. The accuracy is checked against a plain loop over the features."""
import argparse, csv, importlib.util, json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlo_mae.evaluate import extract_features
from mlo_mae.evaluate_run import PROTOCOLS, Measure, Protocol, register_protocol, evaluate_run, add_protocol_flags
from mlo_mae.study import run_study, plot_study
from mlo_mae.train import train

ROOT = Path(__file__).resolve().parent.parent


class NearestClassMean(Protocol):
    "Top-1 test accuracy of the nearest class mean of the frozen training features."
    name, label = 'ncm', 'nearest class mean'
    measures = (Measure('ncm', 'nearest-class-mean test accuracy (%)', 'NCM'),)
    options = dict(cosine=(True, 'L2-normalised features and means (else Euclidean distance)'))

    def run(self, run, cosine):
        enc = run.model.encoder
        (trf, trl), (tef, tel) = (extract_features(enc, run.loader(ds)) for ds in (run.train_set, run.test_set))
        if cosine: trf, tef = F.normalize(trf, dim=1), F.normalize(tef, dim=1)
        means = torch.stack([trf[trl == c].mean(0) for c in range(int(trl.max()) + 1)])
        pred = (tef @ F.normalize(means, dim=1).T).argmax(1) if cosine else torch.cdist(tef, means).argmin(1)
        return dict(cosine=cosine, accuracy=100 * (pred == tel).float().mean().item())

    def row(self, result): return dict(ncm=result['accuracy'])


@pytest.fixture(scope='module')
def toy():
    register_protocol(NearestClassMean)
    yield NearestClassMean
    PROTOCOLS.pop('ncm')


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp('toy') / 'run'
    train(out_dir=str(out), method='mae', max_steps=2, progress=False, num_workers=0, threads=1)
    return out


def by_hand(run_dir, cosine):
    "The same classifier as plain loops over numpy features (the features themselves: the run's encoder, no augmentation)."
    from mlo_mae.runs import load_run
    from mlo_mae.data import load_dataset, BatchLoader
    cfg, model = load_run(run_dir)
    train_set, test_set, spec = load_dataset(cfg.dataset, cfg.data_dir)
    def feats(ds):
        xs, ys = [], []
        with torch.no_grad():
            for x, y in BatchLoader(ds, spec, 100, train=False, drop_last=False).epoch(0):
                xs.append(model.encoder.forward_features(x).double().numpy()); ys.append(np.asarray(y))
        return np.concatenate(xs), np.concatenate(ys)
    (trf, trl), (tef, tel) = feats(train_set), feats(test_set)
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)
    if cosine: trf, tef = unit(trf), unit(tef)
    means = {c: trf[trl == c].mean(0) for c in sorted(set(trl.tolist()))}
    right = 0
    for f, y in zip(tef, tel):
        score = {c: (unit(m) @ f if cosine else -np.linalg.norm(f - m)) for c, m in means.items()}
        right += max(score, key=score.get) == y
    return 100 * right / len(tel)


def test_evaluate_run_runs_a_registered_protocol(toy, run):
    r = evaluate_run(run, 'ncm', progress=False)
    assert r['protocol'] == 'ncm' and r['cosine'] is True and r['method'] == 'mae'
    assert json.loads((run / 'eval_ncm.json').read_text()) == r
    assert r['accuracy'] == pytest.approx(by_hand(run, True), abs=1e-4)   # one image of 500 is 0.2 points
    e = evaluate_run(run, 'ncm', overwrite=True, cosine=False, progress=False)
    assert e['accuracy'] == pytest.approx(by_hand(run, False), abs=1e-4)
    with pytest.raises(ValueError, match='protocol ncm takes no option k'): evaluate_run(run, 'ncm', overwrite=True, k=3)


def test_its_option_is_a_flag(toy):
    p = argparse.ArgumentParser(); add_protocol_flags(p)
    assert p.parse_args(['--no-cosine']).cosine is False and p.parse_args([]).cosine is None


def test_a_one_by_one_study_reports_it_by_the_registry(toy, tmp_path):
    root = tmp_path / 'study'
    res = run_study(root, methods=('mae',), seeds=(0,), max_steps=2, protocols=('ncm',), threads=1, device='cpu')
    rows = list(csv.DictReader(open(root / 'study_runs.csv')))
    saved = json.loads((root / 'runs' / rows[0]['run'] / 'eval_ncm.json').read_text())
    assert len(rows) == 1 and float(rows[0]['ncm']) == pytest.approx(saved['accuracy'], abs=1e-4)   # the CSV keeps 4 decimals
    summary = list(csv.DictReader(open(root / 'study_summary.csv')))
    assert [(s['measure'], s['n']) for s in summary] == [('ncm', '1')]
    fig = plot_study(res['summary'])
    assert [a.get_ylabel() for a in fig.axes] == [NearestClassMean.measures[0].label]
    spec = importlib.util.spec_from_file_location('render_readme', ROOT / 'tools' / 'render_readme.py')
    readme = importlib.util.module_from_spec(spec); spec.loader.exec_module(readme)
    header = readme.study_table(root).splitlines()[0]
    assert '| NCM |' in header and 'NCM: minus mae (paired)' in header
    # a second call reads the saved result, computes nothing
    again = run_study(root, methods=('mae',), seeds=(0,), max_steps=2, protocols=('ncm',), threads=1, device='cpu', figure=False)
    assert again['done'] == {rows[0]['run']: 'reused'} and again['rows'] == res['rows']


def test_a_toy_dataset_and_a_toy_protocol_need_nothing_else(toy, tmp_path):
    "Issue 17's check: a dataset and a protocol registered here, in the test, train, evaluate and report through a 1 x 1 study."
    from mlo_mae.data import DATASETS, DatasetSpec, InMemoryImages, register_dataset

    class Squares(DatasetSpec):
        "32-px images of 4 classes: a bright square in one of the 4 quadrants (the class), on noise."
        name, img_size, mean, std, num_classes = 'squares', 32, (0.5,) * 3, (0.29,) * 3, 4
        def load(self, data_dir=None, splits=('train', 'test'), download=True):
            def make(split, n):
                g = torch.Generator().manual_seed(('train', 'test').index(split))
                x = torch.randint(0, 128, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
                y = torch.randint(0, 4, (n,), generator=g)
                for i, c in enumerate(y.tolist()): x[i, :, 16 * (c // 2):16 * (c // 2) + 16, 16 * (c % 2):16 * (c % 2) + 16] = 255
                return InMemoryImages(x, y, ['tl', 'tr', 'bl', 'br'])
            return tuple(make(s, {'train': 160, 'test': 40}[s]) for s in splits)

    register_dataset(Squares())
    try:
        root = tmp_path / 'study'
        run_study(root, methods=('mae',), seeds=(0,), dataset='squares', preset='smoke', max_steps=2, protocols=('ncm', 'knn'),
                  common=dict(batch_size=16), threads=1, device='cpu', figure=False)
        row = next(csv.DictReader(open(root / 'study_runs.csv')))
        assert {'ncm', 'knn'} <= set(row) and json.loads((root / 'runs' / row['run'] / 'config.json').read_text())['dataset'] == 'squares'
        r = evaluate_run(root / 'runs' / row['run'], 'ncm', overwrite=True, progress=False)
        assert r['accuracy'] == pytest.approx(float(row['ncm']), abs=1e-4) and r['dataset'] == 'squares'
    finally:
        DATASETS.pop('squares')
