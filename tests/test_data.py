"""Tests for the VOC pipeline in course_utils.data (issue 6): generated dataset, splits, transforms,
DataLoader, get_voc offline, download (against a local HTTP server) and the in-memory fast path."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from course_utils import data as D

# Albumentations only *warns* about wrong or outdated arguments and then ignores them: fail instead.
pytestmark = pytest.mark.filterwarnings("error::UserWarning", "error::DeprecationWarning:albumentations.*")

N_TOY = 24


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return D.make_toy_voc(tmp_path_factory.mktemp("toy"), N_TOY, seed=3)


def test_toy_layout_read_by_torchvision(toy_root):
    from torchvision.datasets import VOCSegmentation

    for image_set, n in (("train", N_TOY // 2), ("val", N_TOY - N_TOY // 2), ("trainval", N_TOY)):
        ds = VOCSegmentation(str(toy_root), year="2012", image_set=image_set, download=False)
        assert len(ds) == n
    image, target = ds[7]  # every 40th image, starting at 7, is a grayscale JPEG
    assert image.mode == "RGB" and target.mode == "P"
    assert np.array_equal(np.asarray(target.getpalette(), np.uint8).reshape(-1, 3)[:256], D.VOC_COLORMAP)
    w, h = image.size
    assert target.size == (w, h) and max(w, h) == 500 and min(w, h) >= 281


def test_toy_masks_classes_void_band_and_all_classes(tmp_path):
    root = D.make_toy_voc(tmp_path, 120, seed=0)
    seen = set()
    for i in range(120):
        image, mask = D.load_voc_sample(D.voc_folder(root), f"toy_{i:06d}")
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        values = set(np.unique(mask).tolist())
        assert values <= set(range(21)) | {255}
        objects = values - {0, 255}
        assert objects, "every image has at least one object"
        assert 255 in values, "objects are outlined by void"
        seen |= objects
        # the void band separates every object from the background: no 4-neighbours 0 | object
        a, b = mask[:, 1:], mask[:, :-1]
        assert not np.any(((a == 0) & (b != 0) & (b != 255)) | ((b == 0) & (a != 0) & (a != 255)))
    assert seen == set(range(1, 21)), f"missing classes: {set(range(1, 21)) - seen}"


def test_toy_deterministic_and_seed_dependent(tmp_path):
    a = D.make_toy_voc(tmp_path / "a", 6, seed=1)
    b = D.make_toy_voc(tmp_path / "b", 6, seed=1)
    c = D.make_toy_voc(tmp_path / "c", 6, seed=2)
    for sub in ("JPEGImages/toy_000004.jpg", "SegmentationClass/toy_000004.png"):
        assert (D.voc_folder(a) / sub).read_bytes() == (D.voc_folder(b) / sub).read_bytes()
        assert (D.voc_folder(a) / sub).read_bytes() != (D.voc_folder(c) / sub).read_bytes()


def test_toy_appearance_is_unique_per_class_but_no_single_cue_suffices():
    looks = [D.toy_class_appearance(k) for k in range(1, 21)]
    assert len({(l["shape"], l["texture"], l["hue"]) for l in looks}) == 20
    for cue in ("shape", "texture", "hue"):
        assert len({l[cue] for l in looks}) < 20
    with pytest.raises(ValueError):
        D.toy_class_appearance(0)


def test_toy_is_cached_and_never_overwrites_real_data(tmp_path, toy_root):
    marker = D.voc_folder(toy_root) / D.TOY_MARKER
    before = marker.stat().st_mtime_ns
    D.make_toy_voc(toy_root, N_TOY, seed=3)
    assert marker.stat().st_mtime_ns == before
    real = tmp_path / "real"
    (D.voc_folder(real) / "JPEGImages").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a generated dataset"):
        D.make_toy_voc(real, 6)
    with pytest.raises(ValueError):
        D.make_toy_voc(tmp_path / "x", 2)


def test_splits_disjoint_deterministic_cover_trainval():
    ids = [f"2008_{i:06d}" for i in range(2913)]
    parts = {s: D.voc_split_ids(ids, s, seed=0) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [1456, 728, 729]
    assert set().union(*map(set, parts.values())) == set(ids)
    assert sum(map(len, parts.values())) == len(ids)
    assert D.voc_split_ids(list(reversed(ids)), "val", seed=0) == parts["val"]  # order of the file irrelevant
    assert D.voc_split_ids(ids, "val", seed=1) != parts["val"]
    with pytest.raises(ValueError, match="split"):
        D.voc_split_ids(ids, "trainval")


def test_variation_on_toy(toy_root):
    sets = {s: D.VOCVariation(toy_root, s) for s in ("train", "val", "test")}
    assert [len(sets[s]) for s in ("train", "val", "test")] == [12, 6, 6]
    assert sets["train"].kind == "generated"
    trainval = (D.voc_folder(toy_root) / "ImageSets/Segmentation/trainval.txt").read_text().split()
    assert sorted(sum((sets[s].ids for s in sets), [])) == sorted(trainval)
    image, mask = sets["train"][0]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
    assert isinstance(sets["train"], torch.utils.data.Dataset)
    with pytest.raises(IndexError):
        sets["val"][6]


def test_grayscale_jpeg_comes_back_rgb(toy_root):
    from PIL import Image

    ds = D.VOCVariation(toy_root, "train")
    ds.ids = ["toy_000007"]
    assert Image.open(D.voc_folder(toy_root) / "JPEGImages/toy_000007.jpg").mode == "L"
    image, _ = ds[0]
    assert image.shape[2] == 3 and np.array_equal(image[..., 0], image[..., 2])


def test_missing_dataset_error_names_path_and_remedies(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        D.VOCVariation(tmp_path, "train")
    msg = str(info.value)
    assert str(D.voc_folder(tmp_path)) in msg and "download_voc" in msg and "make_toy_voc" in msg
    with pytest.raises(ValueError, match="split"):
        D.VOCVariation(tmp_path, "trainval")


@pytest.mark.parametrize("train", [True, False])
def test_transforms_shapes_dtypes_and_labels(toy_root, train):
    ds = D.VOCVariation(toy_root, "train", transform=D.voc_transforms(64, train=train))
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 64, 64) and x.dtype == torch.float32
        assert y.shape == (64, 64) and y.dtype == torch.int64
        assert set(y.unique().tolist()) <= set(range(21)) | {255}
    assert -3 < float(x.mean()) < 3  # ImageNet normalisation, not raw 0..255


def test_eval_transform_is_deterministic_and_pads_with_void():
    t = D.voc_transforms(64, train=False)
    image = np.full((375, 500, 3), 200, np.uint8)
    mask = np.full((375, 500), 7, np.uint8)
    a, b = t(image=image, mask=mask), t(image=image, mask=mask)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    values, counts = np.unique(a["mask"].numpy(), return_counts=True)
    assert values.tolist() == [7, 255]  # 500x375 -> 64x48 plus 16 rows of void padding
    assert counts.tolist() == [64 * 48, 64 * 16]


def test_train_transform_uses_nearest_for_masks():
    # a fine checkerboard of two classes: any interpolation but nearest would create other values
    mask = ((np.indices((300, 400)).sum(0) % 2) * 13 + 2).astype(np.uint8)
    image = np.zeros((300, 400, 3), np.uint8)
    t = D.voc_transforms(48, train=True)
    for _ in range(10):
        assert set(np.unique(t(image=image, mask=mask)["mask"].numpy()).tolist()) <= {2, 15}
    with pytest.raises(ValueError):
        D.voc_transforms(0)


def test_dataloader_batch_shapes(toy_root):
    ds = D.VOCVariation(toy_root, "train", transform=D.voc_transforms(64))
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True)))
    assert x.shape == (5, 3, 64, 64) and y.shape == (5, 64, 64) and y.dtype == torch.int64
    loss = torch.nn.functional.cross_entropy(torch.zeros(5, 21, 64, 64), y, ignore_index=D.IGNORE_INDEX)
    assert torch.isfinite(loss)


def test_get_voc_offline_generates_once_and_keeps_real_place_free(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")

    def no_network(*a, **k):
        raise AssertionError("get_voc touched the network in offline mode")

    monkeypatch.setattr(D, "download_voc", no_network)
    monkeypatch.setattr("socket.create_connection", no_network)
    root, kind = D.get_voc(tmp_path, toy_images=8)
    assert kind == "generated" and root == tmp_path / "toy-voc"
    assert not D.voc_folder(tmp_path).exists()
    out = capsys.readouterr().out
    assert "GENERATED" in out and "built now" in out and str(tmp_path) not in out
    again = D.get_voc(tmp_path, toy_images=8)
    assert again == (root, "generated") and "reused" in capsys.readouterr().out


def test_get_voc_prefers_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    D.make_toy_voc(tmp_path / "fake", 4)
    # a "real" dataset: the same files without the generated marker
    import shutil

    shutil.copytree(D.voc_folder(tmp_path / "fake"), D.voc_folder(tmp_path))
    (D.voc_folder(tmp_path) / D.TOY_MARKER).unlink()
    assert D.get_voc(tmp_path) == (tmp_path, "real")
