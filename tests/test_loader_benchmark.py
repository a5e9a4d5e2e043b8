"""course_utils.authoring.loader_benchmark: the whole-batch loader and the benchmark (an author's tool)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils import voc_dataset
from course_utils.authoring import loader_benchmark

# Albumentations only *warns* about wrong or outdated arguments and then ignores them: fail instead.
pytestmark = pytest.mark.filterwarnings("error::UserWarning", "error::DeprecationWarning:albumentations.*")


@pytest.fixture(scope="module")
def mem_train(toy_root):
    return voc_dataset.VOCVariation(toy_root, "train", preload_px=80, cache=False)


def test_fast_loader_batches(mem_train):
    loader = loader_benchmark.FastVOCLoader(mem_train, batch_size=5, seed=1)
    assert len(loader) == 3  # 12 images: 5 + 5 + 2
    batches = list(loader)
    assert [len(x) for x, _ in batches] == [5, 5, 2]
    for x, y in batches:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 64, 64)
        assert y.dtype == torch.int64 and y.shape[1:] == (64, 64)
        assert set(y.unique().tolist()) <= set(range(21)) | {255}
    # deterministic for a seed, different across epochs
    again = list(loader_benchmark.FastVOCLoader(mem_train, batch_size=5, seed=1))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    assert not torch.equal(next(iter(loader))[0][:2], batches[0][0][:2])
    assert len(loader_benchmark.FastVOCLoader(mem_train, batch_size=5, drop_last=True)) == 2
    with pytest.raises(TypeError):
        loader_benchmark.FastVOCLoader([1, 2, 3])


def test_fast_loader_eval_matches_albumentations(mem_train):
    loader = loader_benchmark.FastVOCLoader(mem_train, batch_size=4, train=False)
    t = voc_dataset.voc_transforms(64, train=False)
    x, y = next(iter(loader))
    for j in range(4):
        image, mask = mem_train.load(j)
        ref = t(image=image, mask=mask)
        assert torch.equal(y[j], ref["mask"].long())
        assert torch.allclose(x[j], ref["image"], atol=1e-4)


def test_fast_loader_train_sanity(mem_train):
    # normalised images, and crops of the images (mostly labelled pixels, not padding)
    loader = loader_benchmark.FastVOCLoader(mem_train, batch_size=12, seed=0)
    x, y = next(iter(loader))
    assert x.mean().abs() < 3 and (y == 255).float().mean() < 0.5


def test_colour_matrices():
    rng = np.random.default_rng(0)
    m, c, on = loader_benchmark._colour_matrices(rng, 200, 1.0, 0.0, 0.0, 0.0, 0.3)  # hue only
    grey = np.full(3, 100.0)
    assert np.allclose(m @ grey, grey)  # a hue rotation leaves grey alone
    m, c, on = loader_benchmark._colour_matrices(rng, 50, 0.0, 0.2, 0.2, 0.2, 0.02)  # p = 0: identity
    assert np.allclose(m, np.eye(3)) and np.allclose(c, 1) and not on.any()
    m, _, _ = loader_benchmark._colour_matrices(rng, 50, 1.0, 0.0, 0.0, 1.0, 0.0)  # saturation factor in [0, 2]
    red = np.array([200.0, 0.0, 0.0])
    assert np.allclose((m @ red) @ np.array([0.299, 0.587, 0.114]), 0.299 * 200)  # gray value kept


def test_rrc_boxes_inside_images_and_scaled():
    rng = np.random.default_rng(0)
    hw = np.array([[80, 107]] * 500 + [[107, 80]] * 500)
    boxes = loader_benchmark._rrc_boxes(rng, hw, (0.25, 1.0), (0.8, 1.25))
    y, x, h, w = boxes.T
    assert (y >= 0).all() and (x >= 0).all() and (y + h <= hw[:, 0]).all() and (x + w <= hw[:, 1]).all()
    frac = h * w / (hw[:, 0] * hw[:, 1])
    assert frac.min() >= 0.2 and frac.max() <= 1.0 and 0.45 < frac.mean() < 0.75
    assert (0.7 < w / h).all() and (w / h < 1.35).all()


def test_benchmark_runs_small(toy_root, capsys):
    res = loader_benchmark.benchmark(toy_root, repeats=1, n_naive=4, n_fast=24)
    assert set(res) == {"naive", "memory", "fast"} and all(v[0] > 0 for v in res.values())
    assert "fast / naive" in capsys.readouterr().out
