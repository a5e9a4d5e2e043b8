"""course_utils.voc_generated: the generated stand-in for PASCAL VOC (layout, labels, determinism, locking)."""
from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pytest

from course_utils import voc, voc_generated

N_TOY = 24  # the size of the shared `toy_root` fixture (tests/conftest.py)


def test_toy_layout_read_by_torchvision(toy_root):
    from torchvision.datasets import VOCSegmentation  # only this test needs torchvision

    for image_set, n in (("train", N_TOY // 2), ("val", N_TOY - N_TOY // 2), ("trainval", N_TOY)):
        ds = VOCSegmentation(str(toy_root), year="2012", image_set=image_set, download=False)
        assert len(ds) == n
    image, target = ds[7]  # every 40th image, starting at 7, is a grayscale JPEG
    assert image.mode == "RGB" and target.mode == "P"
    assert np.array_equal(np.asarray(target.getpalette(), np.uint8).reshape(-1, 3)[:256], voc.VOC_COLORMAP)
    w, h = image.size
    assert target.size == (w, h) and max(w, h) == 500 and min(w, h) >= 281


def test_toy_masks_classes_void_band_and_all_classes(tmp_path):
    root = voc_generated.make_toy_voc(tmp_path, 50, seed=0)
    seen = set()
    for i in range(50):
        image, mask = voc.load_voc_sample(voc.voc_folder(root), f"toy_{i:06d}")
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
    a = voc_generated.make_toy_voc(tmp_path / "a", 6, seed=1)
    b = voc_generated.make_toy_voc(tmp_path / "b", 6, seed=1)
    c = voc_generated.make_toy_voc(tmp_path / "c", 6, seed=2)
    for sub in ("JPEGImages/toy_000004.jpg", "SegmentationClass/toy_000004.png"):
        assert (voc.voc_folder(a) / sub).read_bytes() == (voc.voc_folder(b) / sub).read_bytes()
        assert (voc.voc_folder(a) / sub).read_bytes() != (voc.voc_folder(c) / sub).read_bytes()


def test_toy_appearance_is_unique_per_class_but_no_single_cue_suffices():
    looks = [voc_generated.toy_class_appearance(k) for k in range(1, 21)]
    assert len({(l["shape"], l["texture"], l["hue"]) for l in looks}) == 20
    for cue in ("shape", "texture", "hue"):
        assert len({l[cue] for l in looks}) < 20
    with pytest.raises(ValueError):
        voc_generated.toy_class_appearance(0)


def test_toy_is_cached_and_never_overwrites_real_data(tmp_path, toy_root):
    marker = voc.voc_folder(toy_root) / voc.GENERATED_MARKER
    before = marker.stat().st_mtime_ns
    voc_generated.make_toy_voc(toy_root, N_TOY, seed=3)
    assert marker.stat().st_mtime_ns == before
    real = tmp_path / "real"
    (voc.voc_folder(real) / "JPEGImages").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a generated dataset"):
        voc_generated.make_toy_voc(real, 6)
    with pytest.raises(ValueError):
        voc_generated.make_toy_voc(tmp_path / "x", 2)


def _build_small_toy(root: str) -> float:
    voc_generated.make_toy_voc(root, 12, seed=3)
    return time.time()


def test_make_toy_voc_in_parallel_processes_builds_once(tmp_path):
    """pytest -n 2 runs two notebooks at once; both may ask for the generated set at the same moment."""
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_build_small_toy, [str(tmp_path)] * 2)
    assert voc.voc_is_complete(tmp_path)
    stamp = (voc.voc_folder(tmp_path) / "JPEGImages").stat().st_mtime_ns
    voc_generated.make_toy_voc(tmp_path, 12, seed=3)  # same arguments: nothing rebuilt
    assert (voc.voc_folder(tmp_path) / "JPEGImages").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".toy-voc-")]  # no leftovers


def test_a_complete_generated_set_is_used_without_writing_to_it(tmp_path, toy_root):
    """The grader's sandbox sees the data read-only: finding a complete set must not write a lock file."""
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(toy_root, copy)
    (copy / ".build.lock").unlink(missing_ok=True)
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    assert voc_generated.make_toy_voc(copy, N_TOY, seed=3) == copy
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before
    voc_generated.make_toy_voc(copy, N_TOY + 2, seed=3)  # other arguments: rebuilt, under the lock
    assert (copy / ".build.lock").exists() and len(voc.trainval_ids(copy)) == N_TOY + 2
