"""`head_pool='avg'`: Stage II's head reads the patch tokens' mean in training, in the run's reported Stage II test
accuracy and in the `stage2` protocol alike. The accuracy is recomputed here by hand from the run's weights: MAE's
encoder with no patch masked, the mean of its patch tokens, the head, the argmax."""
import json, subprocess, sys
from pathlib import Path

import torch

from mlo_mae.data import load_dataset, normalize_images
from mlo_mae.evaluate_run import evaluate_run
from mlo_mae.masking import random_masking
from mlo_mae.runs import load_run
from mlo_mae.train import train


def by_hand(model, test, spec):
    "Top-1 % of the head on the mean patch token, every patch visible."
    x = normalize_images(test.images, spec)
    with torch.no_grad():
        tokens = model.mae.forward_encoder(x, random_masking(len(x), model.mae.num_patches, 0.0))
        pred = model.head(tokens[:, 1:].mean(1)).argmax(1)
    return 100 * (pred == test.labels).float().mean().item()


def test_a_run_with_head_pool_avg_reads_the_mean_token(tmp_path):
    out = tmp_path / 'run'
    final = train(dataset='cifar10_mini', method='mae', preset='smoke', max_steps=3, head_pool='avg',
                  out_dir=str(out), progress=False)
    assert json.loads((out / 'config.json').read_text())['head_pool'] == 'avg'
    cfg, model = load_run(out)
    assert model.head_pool == 'avg'
    _, test, spec = load_dataset('cifar10_mini')
    want = by_hand(model, test, spec)
    assert abs(final['stage2_test_accuracy'] - want) <= 100 * 2 / len(test)  # a tie or two in float32
    res = evaluate_run(out, 'stage2', progress=False)
    assert abs(res['accuracy'] - want) <= 100 * 2 / len(test)


def test_head_pool_is_a_flag_with_its_choices():
    r = subprocess.run([sys.executable, '-m', 'mlo_mae.train', '--head_pool', 'max'], capture_output=True, text=True)
    assert r.returncode == 2 and 'head_pool' in r.stderr and 'avg' in r.stderr, r.stderr
