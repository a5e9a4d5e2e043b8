"""course_utils.voc_dataset: the lecture's split, the VOCVariation dataset, the transforms, get_voc, preloading."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import voc, voc_dataset, voc_generated

# Albumentations only *warns* about wrong or outdated arguments and then ignores them: fail instead.
pytestmark = pytest.mark.filterwarnings("error::UserWarning", "error::DeprecationWarning:albumentations.*")


def test_splits_disjoint_deterministic_cover_trainval():
    ids = [f"2008_{i:06d}" for i in range(2913)]
    parts = {s: voc_dataset.voc_split_ids(ids, s, seed=0) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [1456, 728, 729]
    assert set().union(*map(set, parts.values())) == set(ids)
    assert sum(map(len, parts.values())) == len(ids)
    assert voc_dataset.voc_split_ids(list(reversed(ids)), "val", seed=0) == parts["val"]  # order of the file irrelevant
    assert voc_dataset.voc_split_ids(ids, "val", seed=1) != parts["val"]
    with pytest.raises(ValueError, match="split"):
        voc_dataset.voc_split_ids(ids, "trainval")


def test_variation_on_toy(toy_root):
    sets = {s: voc_dataset.VOCVariation(toy_root, s) for s in ("train", "val", "test")}
    assert [len(sets[s]) for s in ("train", "val", "test")] == [12, 6, 6]
    assert sets["train"].kind == "generated"
    trainval = (voc.voc_folder(toy_root) / "ImageSets/Segmentation/trainval.txt").read_text().split()
    assert sorted(sum((sets[s].ids for s in sets), [])) == sorted(trainval)
    image, mask = sets["train"][0]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
    assert isinstance(sets["train"], torch.utils.data.Dataset)
    with pytest.raises(IndexError):
        sets["val"][6]


def test_grayscale_jpeg_comes_back_rgb(toy_root):
    ds = voc_dataset.VOCVariation(toy_root, "train")
    ds.ids = ["toy_000007"]
    assert Image.open(voc.voc_folder(toy_root) / "JPEGImages/toy_000007.jpg").mode == "L"
    image, _ = ds[0]
    assert image.shape[2] == 3 and np.array_equal(image[..., 0], image[..., 2])


def test_missing_dataset_error_names_path_and_remedies(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        voc_dataset.VOCVariation(tmp_path, "train")
    msg = str(info.value)
    assert str(voc.voc_folder(tmp_path)) in msg and "download_voc" in msg and "make_toy_voc" in msg
    with pytest.raises(ValueError, match="split"):
        voc_dataset.VOCVariation(tmp_path, "trainval")


@pytest.mark.parametrize("train", [True, False])
def test_transforms_shapes_dtypes_and_labels(toy_root, train):
    ds = voc_dataset.VOCVariation(toy_root, "train", transform=voc_dataset.voc_transforms(64, train=train))
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 64, 64) and x.dtype == torch.float32
        assert y.shape == (64, 64) and y.dtype == torch.int64
        assert set(y.unique().tolist()) <= set(range(21)) | {255}
    assert -3 < float(x.mean()) < 3  # ImageNet normalisation, not raw 0..255


def test_eval_transform_is_deterministic_and_pads_with_void():
    t = voc_dataset.voc_transforms(64, train=False)
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
    t = voc_dataset.voc_transforms(48, train=True)
    for _ in range(10):
        assert set(np.unique(t(image=image, mask=mask)["mask"].numpy()).tolist()) <= {2, 15}
    with pytest.raises(ValueError):
        voc_dataset.voc_transforms(0)


def test_train_transform_seed_makes_augmentation_repeatable():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    mask = rng.integers(0, 21, (120, 160), dtype=np.uint8)

    def draws(t, n=5):
        return [t(image=image, mask=mask)["image"] for _ in range(n)]

    a, b = draws(voc_dataset.voc_transforms(32, seed=7)), draws(voc_dataset.voc_transforms(32, seed=7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = draws(voc_dataset.voc_transforms(32, seed=8))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    t = voc_dataset.voc_transforms(32, seed=7)
    draws(t)
    t.set_random_seed(7)                      # restart the same sequence
    assert all(torch.equal(x, y) for x, y in zip(a, draws(t)))
    # torch's global seed does not reach Albumentations: two unseeded pipelines differ
    torch.manual_seed(0)
    d = draws(voc_dataset.voc_transforms(32))
    torch.manual_seed(0)
    e = draws(voc_dataset.voc_transforms(32))
    assert not all(torch.equal(x, y) for x, y in zip(d, e))


def test_dataloader_batch_shapes(toy_root):
    ds = voc_dataset.VOCVariation(toy_root, "train", transform=voc_dataset.voc_transforms(64))
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True)))
    assert x.shape == (5, 3, 64, 64) and y.shape == (5, 64, 64) and y.dtype == torch.int64
    loss = torch.nn.functional.cross_entropy(torch.zeros(5, 21, 64, 64), y, ignore_index=voc.IGNORE_INDEX)
    assert torch.isfinite(loss)


def test_get_voc_offline_generates_once_and_keeps_real_place_free(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")

    def no_network(*a, **k):
        raise AssertionError("get_voc touched the network in offline mode")

    monkeypatch.setattr(voc_dataset, "download_voc", no_network)
    monkeypatch.setattr("socket.create_connection", no_network)
    root, kind = voc_dataset.get_voc(tmp_path, toy_images=8)
    assert kind == "generated" and root == tmp_path / "toy-voc"
    assert not voc.voc_folder(tmp_path).exists()
    out = capsys.readouterr().out
    assert "GENERATED" in out and "built now" in out and str(tmp_path) not in out
    again = voc_dataset.get_voc(tmp_path, toy_images=8)
    assert again == (root, "generated") and "reused" in capsys.readouterr().out


def test_get_voc_download_false_never_touches_the_network_even_online(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "0")

    def no_network(*a, **k):
        raise AssertionError("get_voc(download=False) touched the network")

    monkeypatch.setattr(voc_dataset, "download_voc", no_network)
    monkeypatch.setattr(voc_dataset, "is_online", no_network)
    root, kind = voc_dataset.get_voc(tmp_path, download=False, toy_images=8)
    assert (root, kind) == (tmp_path / "toy-voc", "generated") and "download=False" in capsys.readouterr().out


def test_get_voc_prefers_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    voc_generated.make_toy_voc(tmp_path / "fake", 4)
    # a "real" dataset: the same files without the generated marker
    shutil.copytree(voc.voc_folder(tmp_path / "fake"), voc.voc_folder(tmp_path))
    (voc.voc_folder(tmp_path) / voc.GENERATED_MARKER).unlink()
    assert voc_dataset.get_voc(tmp_path) == (tmp_path, "real")


def test_preload_same_samples_smaller_and_cached(toy_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(toy_root, root)
    naive = voc_dataset.VOCVariation(root, "val", voc_dataset.voc_transforms(64, train=False))
    mem = voc_dataset.VOCVariation(root, "val", voc_dataset.voc_transforms(64, train=False), preload_px=80)
    assert mem.ids == naive.ids and len(mem) == len(naive)
    for i in range(len(mem)):
        small, small_mask = mem.load(i)
        full = naive.load(i)[0]
        assert min(small.shape[:2]) == 80 and small.dtype == np.uint8 and small_mask.shape == small.shape[:2]
        assert abs(small.shape[1] / small.shape[0] - full.shape[1] / full.shape[0]) < 0.02  # aspect kept
        (xa, ya), (xb, yb) = naive[i], mem[i]
        assert ya.dtype == yb.dtype == torch.int64
        assert (ya == yb).float().mean() > 0.93  # same labels up to resampling at object borders
        assert (xa - xb).abs().mean() < 0.1  # normalised units: a few grey levels
    assert list((root / voc_dataset.CACHE_SUBDIR).glob("*.npz"))
    # a second dataset reads the cache file: it works with the split's JPEGs gone (all but the two
    # that voc_is_complete looks for)
    ends = {voc.trainval_ids(root)[0], voc.trainval_ids(root)[-1]}
    for image_id in set(mem.ids) - ends:
        (voc.voc_folder(root) / "JPEGImages" / f"{image_id}.jpg").unlink()
    again = voc_dataset.VOCVariation(root, "val", preload_px=80)
    assert all(np.array_equal(again.load(i)[0], mem.load(i)[0]) for i in range(len(mem)))
    with pytest.raises(FileNotFoundError):
        voc_dataset.VOCVariation(root, "val", preload_px=80, cache=False)  # without the cache it must decode
    with pytest.raises(ValueError, match="preload_px"):
        voc_dataset.VOCVariation(root, "val", preload_px=0)
