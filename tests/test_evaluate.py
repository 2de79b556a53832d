"""Slower evaluation checks (a few seconds each on 2 CPU cores): end-to-end paths the notebook leaves out."""
import copy

import numpy as np
import pytest
import torch

from mlo_mae.data import BatchLoader, DatasetSpec, dataset_spec, load_dataset
from mlo_mae.evaluate import (EncoderClassifier, class_similarities, _classifier_accuracy, extract_features, finetune,
                              gradcam, knn_accuracy, linear_probe, robustness_eval, similarity_ratio,
                              stage_two_test_accuracy, tsne_embedding)
from mlo_mae.models import ClassificationHead, mae_model


@pytest.fixture(scope='module')
def mini():
    torch.set_num_threads(1)
    return load_dataset('cifar10_mini')


@pytest.fixture(scope='module')
def micro():
    torch.manual_seed(0)
    return mae_model('vit_micro_patch4_32')


def test_linear_probe_on_the_fly_with_augmentation(mini, micro):
    "precompute=False: features of augmented batches every epoch; a random micro ViT still beats chance clearly."
    train, test, spec = mini
    acc = linear_probe(micro, BatchLoader(train, spec, 250, train=True), BatchLoader(test, spec, 500, train=False),
                       epochs=8, precompute=False)
    assert acc >= 0.2, acc


def test_knn_and_similarity_on_random_vit_features(mini, micro):
    "k-NN on random micro-ViT features beats chance; the similarity ratio is finite and intra >= inter there."
    train, test, spec = mini
    ftr, ytr = extract_features(micro, BatchLoader(train, spec, 500, train=False))
    fte, yte = extract_features(micro, BatchLoader(test, spec, 500, train=False))
    acc = knn_accuracy(ftr, ytr, fte, yte)
    assert acc >= 0.18, acc
    intra, inter = class_similarities(fte, yte)
    assert 0 < inter <= intra < 1
    assert similarity_ratio(fte, yte) == pytest.approx(intra / inter)
    # per-class and pooled averages agree closely on a balanced set (50 test images per class)
    assert class_similarities(fte, yte, average='class') == pytest.approx((intra, inter), abs=2e-3)


def test_finetune_b4_recipe_one_epoch_beats_chance(mini, micro):
    "One epoch of B.4's recipe (AdamW 1e-4, wd 5e-5, batch 64, augmented) on 2,500 images: test accuracy above chance."
    train, test, spec = mini
    torch.manual_seed(0)
    enc, head = copy.deepcopy(micro), ClassificationHead(32, 10)
    acc = finetune(enc, head, BatchLoader(train, spec, 64, train=True), BatchLoader(test, spec, 500, train=False),
                   epochs=2, lr=1e-3, progress=False)
    assert acc >= 0.2, acc
    assert acc == stage_two_test_accuracy(enc, head, BatchLoader(test, spec, 100, train=False))


def test_robustness_eval_end_to_end_matches_classifier_accuracy(tmp_path, micro):
    "A real micro classifier on a 32-px class-folder tree: equals the accuracy computed on the same images directly."
    root = dataset_spec('imagefolder').write_example(tmp_path, classes=('automobile', 'airplane', 'truck'), per_class=4, size=32)
    spec = DatasetSpec('tiny', 32, dataset_spec('cifar10').mean, dataset_spec('cifar10').std, 'crop_flip')
    classes = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']
    torch.manual_seed(1)
    clf = EncoderClassifier(copy.deepcopy(micro), ClassificationHead(32, 10))
    res = robustness_eval(clf, {'v': root/'val'}, spec, classes, batch_size=5, subset_logits=False)
    from torchvision.datasets import ImageFolder
    ds = ImageFolder(str(root/'val'))
    to_model = torch.tensor([classes.index(c) for c in ds.classes])
    batches = [(x, to_model[y]) for x, y in BatchLoader(ds, spec, 12, train=False).epoch(0)]
    assert res['v'] == pytest.approx(_classifier_accuracy(clf, batches))
    # over the present classes only: the argmax among the 3 present logits, computed directly
    with torch.no_grad():
        clf.eval(); x, y = batches[0]; logits = clf(x)
    direct = (to_model[logits[:, to_model].argmax(1)] == y).float().mean().item()
    assert robustness_eval(clf, {'v': root/'val'}, spec, classes)['v'] == pytest.approx(direct)


def test_gradcam_and_tsne_on_micro_features(mini, micro):
    "Grad-CAM at a given layer (an earlier block) has the input's size; t-SNE of real features is finite."
    train, test, spec = mini
    clf = EncoderClassifier(copy.deepcopy(micro), ClassificationHead(32, 10))
    x, y = next(iter(BatchLoader(test, spec, 4, train=False)))
    maps = gradcam(clf, x, target_layer=clf.encoder.blocks[0].norm1, targets=y.tolist())
    assert maps.shape == (4, 32, 32) and np.isfinite(maps).all()
    f, _ = extract_features(micro, BatchLoader(test.subset(range(200)), spec, 200, train=False))
    emb = tsne_embedding(f)
    assert emb.shape == (200, 2) and np.isfinite(emb).all()


def test_linear_probe_of_a_trained_micro_encoder_beats_chance(tmp_path):
    "A micro MLO-MAE run of a few dozen iterations, then MAE's linear probe on the embedded data: clearly above 10%."
    from mlo_mae.train import train
    from mlo_mae.evaluate_run import evaluate_run
    run = tmp_path / 'run'
    train(out_dir=str(run), max_steps=40, progress=False, num_workers=0, device='cpu')
    r = evaluate_run(run, 'linear_probe', epochs=20, progress=False)
    assert r['accuracy'] >= 20, r
